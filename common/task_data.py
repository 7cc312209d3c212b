"""Labelled task data in the formats NLU datasets ship in, read into MASSIVE's utterance record.

Formats (detected from the files; --data-format forces one):
  massive  MASSIVE JSONL: files, folders of <locale>.jsonl, hub dataset names (common.massive)
  bio      a folder per split (train/, dev/ or valid/, test/), each holding seq.in (space-separated
           tokens), seq.out (one tag per token) and label (the intent), one utterance a line
  conll    a file per split (train.conll, dev.conll, ...; .txt and .tsv too): a line per token
           (tab or spaces), a blank line between utterances, in one of the column layouts of
           common.conll (token tag; token tag intent; index token tag; index token intent tag);
           `# intent = X`, `# domain = X` and `# text = X` comment lines
  csv, tsv, jsonl
           a file per split with a text and a label column (--text-column, --label-column):
           classification, for DC-style tasks (any label set: a domain, a topic, an intent)

Every format becomes the record the metrics use (common.utterance.Utterance): BIO and CoNLL tokens
are joined by one space (CoNLL with `# text`: found in the original text) and each slot is the
character span of its tokens; tags become slots as
seqeval reads them (its get_entities: an I- that does not continue a slot of its type opens one),
so span metrics on the records equal seqeval's on the tags. The label of classification data is
the record's `domain`, what DC predicts (and its `intent`). Formats without locales or domains get UNDETERMINED and
NO_DOMAIN; --locales filters MASSIVE only.
"""
import csv
import json
import re
from pathlib import Path

from seqeval.metrics.sequence_labeling import get_entities

from common.conll import parse_columns, read_blocks, token_offsets
from common.jsonl import read_jsonl
from common.massive import load_massive
from common.run import UsageError, file_fingerprint
from common.tasks import TASKS
from common.utterance import NO_DOMAIN, SPLITS, UNDETERMINED, Slot, Utterance, looks_like_local_path

FORMATS = ("massive", "bio", "conll", "csv", "tsv", "jsonl")
CLASSIFICATION = ("csv", "tsv", "jsonl")
SPLIT_NAMES = {"train": ("train",), "dev": ("dev", "valid", "validation"), "test": ("test",)}
SPLIT_SUFFIXES = {".conll": "conll", ".csv": "csv", ".tsv": None, ".txt": None, ".jsonl": "jsonl"}  # None: sniffed
BIO_FILES = ("seq.in", "seq.out", "label")
_TAG = re.compile(r"^(O|[BIES]-\S+)$")
_MASSIVE_FIELDS = {"utt", "annot_utt", "partition"}


def add_data_args(parser, required=False, what="train/dev for finetuning"):
    """The labelled-data flags of finetune.py, evaluate.py and export.py."""
    g = parser.add_argument_group("labelled data (MASSIVE, BIO, CoNLL, CSV/TSV/JSONL classification)")
    g.add_argument("--data", nargs="+", required=required,
                   help=f"MASSIVE JSONL files/folders/hub name, or a folder of split files ({what})")
    g.add_argument("--data-format", choices=("auto",) + FORMATS, default="auto", help="default: detected from the files")
    g.add_argument("--text-column", default="text", help="classification data: the text column / JSONL field")
    g.add_argument("--label-column", default="label", help="classification data: the label column / JSONL field")
    g.add_argument("--locales", nargs="+", help="MASSIVE locales to keep (other formats have none and are kept whole)")
    g.add_argument("--conll-columns", type=parse_columns, metavar="ROLE=N,...",
                   help="CoNLL: which column holds what, from 1, e.g. token=2,intent=3,tag=4 (default: detected)")


def load_task_data(args, split, task=None):
    """(utterances, fingerprints, format) of one split of --data, checked to suit `task` when given."""
    return load_labelled(args.data, split, args.data_format, args.text_column, args.label_column, args.locales, task,
                         getattr(args, "conll_columns", None))


def load_labelled(sources, split, data_format="auto", text_column="text", label_column="label", locales=None,
                  task=None, conll_columns=None):
    """(utterances, fingerprints, format) of one split (train, dev or test) of labelled data; with a
    task (dc, icner), data that cannot train or score it is refused."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r} (use one of {', '.join(SPLITS)})")
    sources = [str(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    kinds = {s: detect_format(s) if data_format == "auto" else data_format for s in sources}
    if len(set(kinds.values())) > 1:
        raise UsageError("--data: sources of different formats (" +
                         ", ".join(f"{s}: {k}" for s, k in kinds.items()) + "); give one dataset")
    kind = kinds[sources[0]]
    task = TASKS[task] if task else None  # dc, icner: what the data must hold
    if task:
        task.check_format(kind, sources)
    if kind == "massive":
        return (*load_massive(sources, locales, splits=[split]), kind)
    utterances, fingerprints = [], []
    for source in sources:
        path = split_path(source, split, kind)
        fingerprints.extend(file_fingerprint(f) for f in ([path / n for n in BIO_FILES] if kind == "bio" else [path]))
        if kind == "bio":
            rows = read_bio_folder(path, split)
        elif kind == "conll":
            rows, info = read_conll(path, split, conll_columns)
            fingerprints[-1].update(info)  # the layout read, and where the spacing came from: run.json says
        else:
            rows = read_classification(path, split, kind, text_column, label_column)
        if not rows:
            raise UsageError(f"{path}: no utterances (the {split} split is empty)")
        utterances.extend(rows)
    if task:
        task.check_utterances(utterances, kind, sources)
    return utterances, fingerprints, kind


# ---- where the files are --------------------------------------------------------------------------

def detect_format(source):
    """The format of a --data source, from its files."""
    path = Path(source)
    if not looks_like_local_path(source):
        return "massive"  # a hub dataset name
    if path.is_file():
        if path.suffix in (".jsonl", ".json"):  # the one single-file format: MASSIVE's errors name what is missing
            return "massive"
        raise UsageError(f"--data {source}: give the folder holding the split files (train, dev, test), "
                         "or MASSIVE JSONL")
    if not path.is_dir():
        raise UsageError(f"--data {source}: no such file or folder")
    kinds = {}
    for split, names in SPLIT_NAMES.items():
        for name in names:
            if (path / name).is_dir() and (path / name / "seq.in").is_file():
                kinds[f"{name}/"] = "bio"
                # a file of another format inside a BIO split folder would be ignored without a word
                for f in sorted((path / name).iterdir()):
                    if f.is_file() and f.suffix in SPLIT_SUFFIXES:
                        kinds[f"{name}/{f.name}"] = SPLIT_SUFFIXES[f.suffix] or _sniff(f)
            for f in sorted(path.glob(f"{name}.*")):
                if f.is_file() and f.suffix in SPLIT_SUFFIXES:
                    kinds[f.name] = SPLIT_SUFFIXES[f.suffix] or _sniff(f)
    if len(set(kinds.values())) > 1:
        raise UsageError(f"--data {source}: the folder mixes formats (" +
                         ", ".join(f"{name}: {kind}" for name, kind in sorted(kinds.items())) +
                         "); keep one format per folder")
    if kinds:
        return next(iter(kinds.values()))
    if any(is_massive_jsonl(f) for f in sorted(path.glob("*.jsonl"))[:1]):
        return "massive"
    raise UsageError(f"--data {source}: no MASSIVE JSONL, BIO split folders (train/seq.in) or split files "
                     f"(train.csv, train.conll, ...) in this folder")


def has_split(source, split, kind):
    """Whether a dataset has `split` (MASSIVE always has its three partitions)."""
    if kind == "massive":
        return True
    names = SPLIT_NAMES[split]
    folder = Path(source)
    if kind == "bio":
        return any((folder / name / "seq.in").is_file() for name in names)
    return any(f.suffix in SPLIT_SUFFIXES for name in names for f in folder.glob(f"{name}.*"))


def split_path(source, split, kind):
    """The folder (bio) or file holding `split` of a dataset folder."""
    folder = Path(source)
    found = []
    for name in SPLIT_NAMES[split]:
        if kind == "bio":
            found += [folder / name] if (folder / name / "seq.in").is_file() else []
        else:
            found += [f for f in sorted(folder.glob(f"{name}.*")) if f.suffix in SPLIT_SUFFIXES]
    if not found:
        expected = "/, ".join(SPLIT_NAMES[split]) + "/" if kind == "bio" else ", ".join(f"{n}.*" for n in SPLIT_NAMES[split])
        raise UsageError(f"--data {source}: no {split} split ({expected})")
    if len(found) > 1:
        raise UsageError(f"--data {source}: several {split} splits ({', '.join(f.name for f in found)}); keep one")
    return found[0]


def is_massive_jsonl(path):
    for _, row in read_jsonl(path):
        return _MASSIVE_FIELDS <= row.keys()
    return False


def _sniff(path):
    """A .tsv or .txt split file is CoNLL when its first line has 2-4 columns, one a tag after the first, else TSV."""
    for number, line in _lines(path):
        if line.strip() and not line.startswith("#"):
            fields = line.split("\t") if "\t" in line else line.split()
            if 2 <= len(fields) <= 4 and any(_TAG.match(f.strip()) for f in fields[1:]):
                return "conll"
            if "\t" in line:
                return "tsv"
            raise UsageError(f"{path}:{number}: neither a CoNLL line (token, tag) nor a TSV header; "
                             "set --data-format")
    raise UsageError(f"{path}: no utterances (the file is empty)")


def _lines(path):
    """(line number, line without its newline) of a UTF-8 text file."""
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            for number, line in enumerate(f, start=1):
                yield number, line.rstrip("\r\n")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise UsageError(f"{path}: cannot read ({err.strerror})") from None


# ---- readers ----------------------------------------------------------------------------------------

def utterance_from_tags(tokens, tags, intent, where, split, domain=NO_DOMAIN, text=None, starts=None):
    """The record of one tagged utterance, slots as seqeval reads the tags: character spans into
    text at the tokens' starts when given, else into the tokens joined by one space."""
    for token, tag in zip(tokens, tags):
        if not _TAG.match(tag):
            raise UsageError(f"{where}: tag {tag!r} of token {token!r} is not O, B-type, I-type (or E-/S-type)")
    if starts is None:
        starts, position = [], 0
        for token in tokens:
            starts.append(position)
            position += len(token) + 1
    slots = [Slot(kind, starts[first], starts[last] + len(tokens[last]))
             for kind, first, last in get_entities(list(tags))]
    return Utterance(id=where, locale=UNDETERMINED, split=split, domain=domain, intent=intent,
                     text=" ".join(tokens) if text is None else text, slots=slots)


def read_bio_folder(folder, split):
    """seq.in / seq.out / label, line by line."""
    texts, tags, labels = ([line for _, line in _lines(folder / name)] for name in BIO_FILES)
    for name, lines in (("seq.out", tags), ("label", labels)):
        if len(lines) != len(texts):
            raise UsageError(f"{folder / name}: {len(lines)} lines for the {len(texts)} of {folder / 'seq.in'} "
                             f"(one {'tag line' if name == 'seq.out' else 'intent'} per utterance)")
    utterances = []
    for number, (text, tag_line, intent) in enumerate(zip(texts, tags, labels), start=1):
        tokens, token_tags = text.split(), tag_line.split()
        if not tokens:
            raise UsageError(f"{folder / 'seq.in'}:{number}: empty utterance")
        if len(tokens) != len(token_tags):
            raise UsageError(f"{folder / 'seq.out'}:{number}: {len(token_tags)} tags for the {len(tokens)} tokens "
                             f"of {folder / 'seq.in'}:{number}")
        if not intent.strip():
            raise UsageError(f"{folder / 'label'}:{number}: empty intent")
        utterances.append(utterance_from_tags(tokens, token_tags, intent.strip(), f"{folder / 'seq.out'}:{number}", split))
    return utterances


def read_conll(path, split, columns=None):
    """(utterances, layout info) of a CoNLL file (common.conll: its column layouts and comments)."""
    blocks, info = read_blocks(path, _lines(path), columns)
    utterances = []
    for where, tokens, tags, intent, domain, text in blocks:
        starts = token_offsets(tokens, text, where) if text is not None else None
        utterances.append(utterance_from_tags(tokens, tags, intent, where, split, domain or NO_DOMAIN, text, starts))
    return utterances, info


def read_classification(path, split, kind, text_column, label_column):
    """CSV / TSV with a header row, or JSONL: one utterance and its label per row (label_column None:
    text only, for target text)."""
    utterances = []
    for where, row in _rows(path, kind, text_column, label_column):
        text, label = row[text_column], row[label_column] if label_column is not None else NO_DOMAIN
        if not isinstance(text, str) or not text.strip():
            raise UsageError(f"{where}: empty text in column {text_column!r}")
        if label is None or not str(label).strip():
            raise UsageError(f"{where}: empty label in column {label_column!r}")
        label = str(label).strip()
        utterances.append(Utterance(id=where, locale=UNDETERMINED, split=split, domain=label, intent=label,
                                    text=text.strip(), slots=[]))
    return utterances


def _rows(path, kind, text_column, label_column):
    """(where, row dict) of a classification file; unknown columns named with the ones there are."""
    def check(columns, where):
        for flag, name in (("--text-column", text_column), ("--label-column", label_column)):
            if name is not None and name not in columns:
                raise UsageError(f"{where}: no column {name!r} (columns: {', '.join(map(str, columns))}); set {flag}")

    if kind == "jsonl":
        for number, row in read_jsonl(path):
            check(list(row), f"{path}:{number}")
            yield f"{path}:{number}", row
        return
    delimiter = "," if kind == "csv" else "\t"
    try:  # utf-8-sig: a byte-order mark (spreadsheet exports) is not part of the first column's name
        with open(path, encoding="utf-8-sig", newline="") as f:
            reader = csv.reader(f, delimiter=delimiter)  # quoted fields may hold the delimiter or a newline
            columns = next(reader, None)
            if columns is None:
                return
            check(columns, str(path))
            for values in reader:
                if not any(v.strip() for v in values):
                    continue
                if len(values) != len(columns):
                    raise UsageError(f"{path}:{reader.line_num}: {len(values)} fields for the {len(columns)} "
                                     "columns of the header")
                yield f"{path}:{reader.line_num}", dict(zip(columns, values))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text") from None
    except csv.Error as err:
        raise UsageError(f"{path}: malformed {kind.upper()} ({err})") from None


# ---- writers: MASSIVE (or any records) in these formats, for trying the readers on known data ------

def words_and_tags(utterance):
    """Whitespace tokens of an utterance and their BIO tags. Raises UsageError when a slot edge falls
    inside a token (the format cannot say it)."""
    tokens, tags, position = [], [], 0
    for token in utterance.text.split(" "):
        start, end = position, position + len(token)
        position = end + 1
        inside = [s for s in utterance.slots if start < s.end and end > s.start]
        if any(s.start > start or s.end < end for s in inside):
            raise UsageError(f"{utterance.id}: a slot edge falls inside the token {token!r}")
        tags.append("O" if not inside else ("B-" if start <= inside[0].start else "I-") + inside[0].type)
        tokens.append(token)
    return tokens, tags


def write_bio(folder, utterances):
    """seq.in, seq.out and label in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tagged = [words_and_tags(u) for u in utterances]
    (folder / "seq.in").write_text("".join(" ".join(t) + "\n" for t, _ in tagged), encoding="utf-8")
    (folder / "seq.out").write_text("".join(" ".join(g) + "\n" for _, g in tagged), encoding="utf-8")
    (folder / "label").write_text("".join(u.intent + "\n" for u in utterances), encoding="utf-8")


def write_conll(path, utterances):
    """token<TAB>tag lines with `# intent` and `# domain` comments."""
    blocks = []
    for u in utterances:
        tokens, tags = words_and_tags(u)
        blocks.append(f"# intent = {u.intent}\n# domain = {u.domain}\n" +
                      "".join(f"{t}\t{g}\n" for t, g in zip(tokens, tags)))
    Path(path).write_text("\n".join(blocks), encoding="utf-8")


def write_classification(path, utterances, text_column="text", label_column="label"):
    """CSV, TSV (by the suffix) or JSONL of text and domain."""
    path = Path(path)
    rows = [{text_column: u.text, label_column: u.domain} for u in utterances]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[text_column, label_column], delimiter="\t" if path.suffix == ".tsv" else ",")
        writer.writeheader()
        writer.writerows(rows)
