"""The labelled utterance every reader produces (MASSIVE, BIO, CoNLL, CSV / TSV / JSONL) and every
task consumes, and what is done to lists of them.

Slots are character offsets into `text`, never word indices: MASSIVE's ja-JP text has no spaces
while its bracketed annotation adds them, so only characters line up.
"""
import random
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "dev", "test")
UNDETERMINED = "und"  # BCP 47's "undetermined language": the locale of data that does not name one
NO_DOMAIN = "-"       # the domain of data that has none (BIO folders, CoNLL without '# domain = X')


@dataclass(frozen=True)
class Slot:
    type: str
    start: int  # character offset into the text, inclusive
    end: int    # character offset into the text, exclusive


@dataclass
class Utterance:
    id: str
    locale: str
    split: str   # train, dev or test
    domain: str  # the DC label: MASSIVE's scenario, a classification dataset's label, or NO_DOMAIN
    intent: str  # the ICNER intent (a classification dataset's label again)
    text: str
    slots: list = field(default_factory=list)

    def slot_text(self, slot):
        return self.text[slot.start:slot.end]


def sample(items, n, seed=0):
    """A fixed random sample of n items, kept in their original order. The same for every run, so
    all conditions of a study see the same utterances, and spread over every locale and domain
    (the first n would be one locale's first domains)."""
    if not n or n >= len(items):
        return list(items)
    keep = sorted(random.Random(seed).sample(range(len(items)), n))
    return [items[i] for i in keep]


def looks_like_local_path(source):
    """A string is a local path if it exists, or if it is written like one (suffix, ./, /)."""
    path = Path(source)
    return path.exists() or source.startswith((".", "/", "~")) or path.suffix in (".jsonl", ".json", ".txt")
