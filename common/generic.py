"""Generic corpora: JSONL with a text field, plain text (one document a line), or a hub dataset.

A corpus is returned either in memory (a list of documents) or, with streaming, as a function
that opens a fresh shuffled pass over a `datasets` IterableDataset for each epoch, for corpora
that do not fit in memory.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from common.jsonl import read_jsonl
from common.utterance import looks_like_local_path
from common.run import UsageError, file_fingerprint

TEXT_SUFFIXES = (".jsonl", ".json", ".txt", ".text")


@dataclass
class GenericCorpus:
    name: str
    fingerprints: list
    documents: Optional[list] = None  # in memory
    open_stream: Optional[Callable] = None  # open_stream(epoch) -> iterator of documents


def local_files(source):
    path = Path(source)
    if path.is_dir():
        files = sorted(f for f in path.iterdir() if f.suffix in TEXT_SUFFIXES)
        if not files:
            raise UsageError(f"{source}: folder holds no .jsonl or .txt files")
        return files
    if not path.is_file():
        raise UsageError(f"{source}: no such file")
    return [path]


def read_documents(path, text_field, field_flag="--generic-text-field"):
    """The documents of one file: JSONL rows' text field, or the lines of a text file."""
    if path.suffix in (".jsonl", ".json"):
        docs = []
        for number, row in read_jsonl(path):
            if text_field not in row:
                raise UsageError(f"{path}:{number}: no field {text_field!r} (set {field_flag})")
            if not isinstance(row[text_field], str):
                raise UsageError(f"{path}:{number}: field {text_field!r} is not a string")
            docs.append(row[text_field])
        return docs
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f]
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None


def load_generic(sources, text_field="text", config=None, split="train", streaming=False, seed=0,
                 field_flag="--generic-text-field"):
    """Load the generic corpus from local files/folders or a hub dataset name. field_flag: the option
    that sets text_field, named in errors."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    sources = [str(s) for s in sources]
    local = [looks_like_local_path(s) for s in sources]
    if any(local) and not all(local):
        raise UsageError("--generic-data: mix of local files and hub names; give one kind")
    if all(local):
        files = [f for s in sources for f in local_files(s)]
        fingerprints = [file_fingerprint(f) for f in files]
        if streaming:
            return GenericCorpus(",".join(sources), fingerprints,
                                 open_stream=_stream_opener(_open_local_stream(files), text_field, seed, field_flag))
        docs = [d for f in files for d in read_documents(f, text_field, field_flag)]
        return GenericCorpus(",".join(sources), fingerprints, documents=[d for d in docs if d.strip()])

    if len(sources) != 1:
        raise UsageError("--generic-data: give one hub dataset name")
    name = sources[0]
    fingerprint = {"dataset": name, "config": config, "split": split, "streaming": streaming}
    opener = lambda: _load_hub(name, config, split, streaming)  # noqa: E731
    if streaming:
        return GenericCorpus(name, [fingerprint], open_stream=_stream_opener(opener, text_field, seed, field_flag))
    data = opener()
    if text_field not in data.column_names:
        raise UsageError(f"dataset {name!r} has no column {text_field!r} (set {field_flag}; "
                         f"columns: {', '.join(data.column_names)})")
    fingerprint["fingerprint"] = data._fingerprint
    return GenericCorpus(name, [fingerprint], documents=[d for d in data[text_field] if d and d.strip()])


def _load_hub(name, config, split, streaming):
    import datasets
    try:
        return datasets.load_dataset(name, config, split=split, streaming=streaming)
    except Exception as err:  # many error types; the user needs the one line
        raise UsageError(f"could not load dataset {name!r} (config {config}, split {split}): "
                         f"{str(err).splitlines()[0]}") from None


def _open_local_stream(files):
    def opener():
        import datasets
        kind = "json" if files[0].suffix in (".jsonl", ".json") else "text"
        return datasets.load_dataset(kind, data_files=[str(f) for f in files], split="train", streaming=True)
    return opener


def _stream_opener(opener, text_field, seed, field_flag):
    """open_stream(epoch): a shuffled pass (buffered shuffle, reseeded per epoch) over the stream."""
    def open_stream(epoch):
        data = opener()
        if text_field not in (data.column_names or [text_field]):
            raise UsageError(f"streamed dataset has no column {text_field!r} (set {field_flag})")
        data = data.shuffle(seed=seed + epoch, buffer_size=10_000)
        return (row[text_field] for row in data if row[text_field] and row[text_field].strip())
    return open_stream
