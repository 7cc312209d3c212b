"""MASSIVE utterances: loading (JSONL files, folders, hub datasets) and annot_utt parsing.

Slots are kept as character offsets into `utt`, never as word indices: ja-JP `utt` has no
spaces while its `annot_utt` adds spaces around the brackets, so only characters line up.
"""
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from common.jsonl import read_jsonl
from common.run import UsageError, file_fingerprint

PARTITIONS = ("train", "dev", "test")
# The hub release calls the dev partition "validation".
HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}


@dataclass(frozen=True)
class Slot:
    type: str
    start: int  # character offset into utt, inclusive
    end: int    # character offset into utt, exclusive


@dataclass
class Utterance:
    id: str
    locale: str
    partition: str
    scenario: str  # = domain
    intent: str
    utt: str
    slots: list = field(default_factory=list)

    def slot_text(self, slot):
        return self.utt[slot.start:slot.end]


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
    return Utterance(id=str(row.get("id", where)), locale=row["locale"], partition=row["partition"],
                     scenario=row["scenario"], intent=row["intent"], utt=row["utt"], slots=slots)


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


def looks_like_local_path(source):
    """A string is a local path if it exists, or if it is written like one (suffix, ./, /)."""
    path = Path(source)
    return path.exists() or source.startswith((".", "/", "~")) or path.suffix in (".jsonl", ".json", ".txt")


def load_massive(sources, locales=None, partitions=PARTITIONS):
    """Load MASSIVE utterances from JSONL files, folders of <locale>.jsonl, or hub dataset names.

    Returns (utterances, fingerprints). Only rows of the given partitions and locales are kept.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    partitions = tuple(partitions)
    for partition in partitions:
        if partition not in PARTITIONS:
            raise UsageError(f"unknown MASSIVE partition {partition!r} (use one of {', '.join(PARTITIONS)})")
    utterances, fingerprints = [], []
    for source in map(str, sources):
        # A JSONL file or a folder of them is MASSIVE's own format; anything else (a hub name, a
        # local dataset folder such as a hub snapshot) goes through datasets.load_dataset.
        folder_of_jsonl = Path(source).is_dir() and any(Path(source).glob("*.jsonl"))
        if folder_of_jsonl or (looks_like_local_path(source) and not Path(source).is_dir()):
            for path in _jsonl_files(source, locales):
                fingerprints.append(file_fingerprint(path) if path.is_file() else {"path": str(path)})
                for number, row in read_jsonl(path):
                    if row.get("partition") in partitions and (not locales or row.get("locale") in locales):
                        utterances.append(utterance_from_row(row, f"{path}:{number}"))
        else:
            rows, fingerprint = _load_hub_massive(source, locales, partitions)
            fingerprints.append(fingerprint)
            utterances.extend(rows)
    return utterances, fingerprints


def sample(items, n, seed=0):
    """A fixed random sample of n items, kept in their original order. The same for every run, so
    all conditions of a study see the same utterances, and spread over every locale and domain
    (the first n would be one locale's first domains)."""
    if not n or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def _load_hub_massive(name, locales, partitions):
    """A MASSIVE-format dataset from the hub (or a local dataset folder datasets can open)."""
    import datasets

    configs = list(locales) if locales else [None]
    utterances, fingerprint = [], {"dataset": name, "configs": configs, "fingerprints": []}
    for config in configs:
        for partition in partitions:
            try:
                data = datasets.load_dataset(name, config, split=HUB_SPLIT[partition])
            except Exception as err:  # datasets raises many types; the user needs the one line
                raise UsageError(f"could not load dataset {name!r} (config {config}, split "
                                 f"{HUB_SPLIT[partition]}): {str(err).splitlines()[0]}") from None
            fingerprint["fingerprints"].append(data._fingerprint)
            label_names = {k: f.names for k, f in data.features.items() if hasattr(f, "names")}
            for index, row in enumerate(data):
                row = {k: (label_names[k][v] if k in label_names else v) for k, v in row.items()}
                row.setdefault("partition", partition)
                row["partition"] = partition
                if locales and row.get("locale") not in locales:
                    continue
                utterances.append(utterance_from_row(row, f"{name}[{HUB_SPLIT[partition]}][{index}]"))
    return utterances, fingerprint
