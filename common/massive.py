"""MASSIVE utterances: loading (JSONL files, folders, hub datasets) and annot_utt parsing, each
row mapped onto the record every reader produces (common.utterance): its partition is the split,
its scenario the domain, its utt the text.

Slots are kept as character offsets into `utt`, never as word indices: ja-JP `utt` has no
spaces while its `annot_utt` adds spaces around the brackets, so only characters line up.
"""
import re
from pathlib import Path

from common.jsonl import read_jsonl
from common.run import UsageError, file_fingerprint
from common.utterance import SPLITS, Slot, Utterance, looks_like_local_path
# The hub release calls the dev partition "validation".
HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}


_BRACKET = re.compile(r"\[([^\[\]]*)\]")


def parse_annot_utt(annot_utt, utt):
    """Return the slots of annot_utt as Slot(type, start, end) with offsets into utt.

    `[type : words]` marks a slot. Whitespace is not compared (annot_utt adds spaces in ja-JP),
    every other character of annot_utt must match utt in order. Raises ValueError otherwise.
    """
    if annot_utt.count("[") != annot_utt.count("]"):
        raise ValueError(f"unbalanced brackets in annot_utt {annot_utt!r}")
    segments = []  # (text, slot type or None)
    pos = 0
    for match in _BRACKET.finditer(annot_utt):
        segments.append((annot_utt[pos:match.start()], None))
        slot_type, sep, words = match.group(1).partition(":")
        if not sep or not slot_type.strip() or not words.strip():
            raise ValueError(f"slot {match.group(0)!r} is not of the form [type : words]")
        segments.append((words, slot_type.strip()))
        pos = match.end()
    segments.append((annot_utt[pos:], None))
    if any("[" in text or "]" in text for text, slot in segments if slot is None):
        raise ValueError(f"nested or stray brackets in annot_utt {annot_utt!r}")

    slots, cursor = [], 0
    for text, slot_type in segments:
        start = end = None
        for char in text:
            if char.isspace():
                continue
            while cursor < len(utt) and utt[cursor].isspace():
                cursor += 1
            if cursor >= len(utt) or utt[cursor] != char:
                raise ValueError(f"annot_utt {annot_utt!r} does not match utt {utt!r}")
            if start is None:
                start = cursor
            cursor += 1
            end = cursor
        if slot_type is not None:
            slots.append(Slot(slot_type, start, end))
    if utt[cursor:].strip():
        raise ValueError(f"annot_utt {annot_utt!r} does not match utt {utt!r} (utt is longer)")
    return slots


def utterance_from_row(row, where):
    """Build an Utterance from a MASSIVE row; `where` names the row in error messages."""
    missing = [k for k in ("locale", "partition", "scenario", "intent", "utt", "annot_utt") if k not in row]
    if missing:
        raise UsageError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        slots = parse_annot_utt(row["annot_utt"], row["utt"])
    except ValueError as err:
        raise UsageError(f"{where}: {err}") from None
    return Utterance(id=str(row.get("id", where)), locale=row["locale"], split=row["partition"],
                     domain=row["scenario"], intent=row["intent"], text=row["utt"], slots=slots)


def _jsonl_files(source, locales):
    path = Path(source)
    if path.is_dir():
        files = sorted(path.glob("*.jsonl"))
        if locales:
            wanted = [path / f"{locale}.jsonl" for locale in locales]
            missing = [str(f) for f in wanted if not f.is_file()]
            if missing:
                raise UsageError(f"{source}: no file for locale(s): {', '.join(missing)}")
            files = wanted
        if not files:
            raise UsageError(f"{source}: folder holds no .jsonl files")
        return files
    return [path]


def load_massive(sources, locales=None, splits=SPLITS):
    """Load MASSIVE utterances from JSONL files, folders of <locale>.jsonl, or hub dataset names.

    Returns (utterances, fingerprints). Only rows of the given splits (MASSIVE's partitions) and locales are kept.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    splits = tuple(splits)
    for split in splits:
        if split not in SPLITS:
            raise UsageError(f"unknown MASSIVE split {split!r} (use one of {', '.join(SPLITS)})")
    utterances, fingerprints = [], []
    for source in map(str, sources):
        # A JSONL file or a folder of them is MASSIVE's own format; anything else (a hub name, a
        # local dataset folder such as a hub snapshot) goes through datasets.load_dataset.
        folder_of_jsonl = Path(source).is_dir() and any(Path(source).glob("*.jsonl"))
        if folder_of_jsonl or (looks_like_local_path(source) and not Path(source).is_dir()):
            for path in _jsonl_files(source, locales):
                fingerprints.append(file_fingerprint(path) if path.is_file() else {"path": str(path)})
                for number, row in read_jsonl(path):
                    if row.get("partition") in splits and (not locales or row.get("locale") in locales):
                        utterances.append(utterance_from_row(row, f"{path}:{number}"))
        else:
            rows, fingerprint = _load_hub_massive(source, locales, splits)
            fingerprints.append(fingerprint)
            utterances.extend(rows)
    return utterances, fingerprints


def _load_hub_massive(name, locales, splits):
    """A MASSIVE-format dataset from the hub (or a local dataset folder datasets can open)."""
    import datasets

    configs = list(locales) if locales else [None]
    utterances, fingerprint = [], {"dataset": name, "configs": configs, "fingerprints": []}
    for config in configs:
        for split in splits:
            try:
                data = datasets.load_dataset(name, config, split=HUB_SPLIT[split])
            except Exception as err:  # datasets raises many types; the user needs the one line
                raise UsageError(f"could not load dataset {name!r} (config {config}, split "
                                 f"{HUB_SPLIT[split]}): {str(err).splitlines()[0]}") from None
            fingerprint["fingerprints"].append(data._fingerprint)
            label_names = {k: f.names for k, f in data.features.items() if hasattr(f, "names")}
            for index, row in enumerate(data):
                row = {k: (label_names[k][v] if k in label_names else v) for k, v in row.items()}
                row["partition"] = split
                if locales and row.get("locale") not in locales:
                    continue
                utterances.append(utterance_from_row(row, f"{name}[{HUB_SPLIT[split]}][{index}]"))
    return utterances, fingerprint
