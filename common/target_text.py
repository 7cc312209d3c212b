"""Target-domain text, the unlabelled utterances of the target transfer set and of masked-LM adaptation.

--target-data takes, per source:
  a plain-text file (.txt, .text)  one utterance a line
  a JSONL file                     MASSIVE rows (detected by their fields), or any rows with a text
                                   field (--target-text-field, default "text")
  a folder                         MASSIVE <locale>.jsonl files or a labelled dataset folder
                                   (common.task_data: BIO, CoNLL, CSV/TSV/JSONL): the text of its
                                   train split; else the .txt / .jsonl files in it
  a hub dataset name               with --target-text-field: that column of its train split;
                                   without: MASSIVE, as before
Only train text enters, so that no dev or test utterance leaks into a student: MASSIVE's train
partition, a labelled folder's train split. Dev text (masked-LM adaptation's dev loss) comes from
the dev partition or split where there is one; plain text has none, and the caller holds some out.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from common.generic import load_generic, local_files
from common.utterance import looks_like_local_path
from common.run import UsageError
from common.task_data import SPLIT_NAMES, detect_format, has_split, is_massive_jsonl, load_labelled

FIELD_FLAG = "--target-text-field"


@dataclass
class TargetText:
    texts: list
    fingerprints: list
    kinds: list  # the format of each source, for run.json
    dev_texts: Optional[list] = field(default=None)  # None: the data has no dev split


def load_target_text(sources, text_field=None, locales=None, with_dev=False):
    """The train text of every source (and its dev text when with_dev and every source has one)."""
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    result = TargetText([], [], [], [] if with_dev else None)
    for source in sources:
        kind = source_kind(source, text_field)
        result.kinds.append(kind)
        if kind == "text":
            corpus = load_generic(source, text_field or "text", field_flag=FIELD_FLAG)
            result.texts += corpus.documents
            result.fingerprints += corpus.fingerprints
            result.dev_texts = None  # plain text has no dev split
            continue
        train, fingerprints, _ = load_labelled(source, "train", kind, text_column=text_field or "text",
                                               label_column=None, locales=locales)
        result.texts += [u.text for u in train]
        result.fingerprints += fingerprints
        if result.dev_texts is not None and not has_split(source, "dev", kind):
            result.dev_texts = None
        if result.dev_texts is not None:
            result.dev_texts += [u.text for u in load_labelled(source, "dev", kind, text_column=text_field or "text",
                                                              label_column=None, locales=locales)[0]]
    if not result.texts:
        raise UsageError(f"--target-data {' '.join(sources)} has no train utterances"
                         f"{' for locales ' + ' '.join(locales) if locales else ''}")
    return result


def source_kind(source, text_field):
    """"text", or the labelled format (common.task_data) whose train split is the text."""
    path = Path(source)
    if not looks_like_local_path(source):
        return "text" if text_field else "massive"
    if path.is_file():
        return "massive" if path.suffix == ".jsonl" and is_massive_jsonl(path) else "text"
    if not path.is_dir():
        raise UsageError(f"--target-data {source}: no such file or folder")
    split_entries = [p for name in SPLIT_NAMES["train"] for p in path.glob(f"{name}*")]
    massive = any(is_massive_jsonl(f) for f in sorted(path.glob("*.jsonl"))[:1])
    if split_entries or massive:
        return detect_format(source)
    local_files(source)  # a one-line error when the folder holds no text files either
    return "text"
