import json
import re

import pytest

from common.massive import load_massive, parse_annot_utt
from common.utterance import Slot, sample
from common.run import UsageError
from conftest import MASSIVE, write_jsonl


def test_parse_english_slots_are_char_offsets():
    utt = "wake me up at five am this week"
    slots = parse_annot_utt("wake me up at [time : five am] [date : this week]", utt)
    assert slots == [Slot("time", 14, 21), Slot("date", 22, 31)]
    assert [utt[s.start:s.end] for s in slots] == ["five am", "this week"]


def test_parse_japanese_ignores_spaces_added_by_annot_utt():
    utt = "今週は午前五時に起こして"
    slots = parse_annot_utt("[date : 今週] は [time : 午前五時] に起こして", utt)
    assert [(s.type, utt[s.start:s.end]) for s in slots] == [("date", "今週"), ("time", "午前五時")]
    assert slots[1].start == 3


def test_slot_words_may_contain_colons():
    utt = "wake me at 5:30 am"
    slots = parse_annot_utt("wake me at [time : 5:30 am]", utt)
    assert utt[slots[0].start:slots[0].end] == "5:30 am"


@pytest.mark.parametrize("annot", ["wake me [time : five am", "wake me [time five am]", "wake me [time : five [am]]"])
def test_bad_brackets_raise(annot):
    with pytest.raises(ValueError):
        parse_annot_utt(annot, "wake me five am")


def test_text_mismatch_raises():
    with pytest.raises(ValueError, match="does not match"):
        parse_annot_utt("wake me at [time : six am]", "wake me at five am")
    with pytest.raises(ValueError, match="longer"):
        parse_annot_utt("wake me", "wake me up")


# The bracketed slots of annot_utt, read here independently of parse_annot_utt: [type : words]
ANNOTATED_SLOT = re.compile(r"\[([^\[\]:]+?) : ([^\[\]]*)\]")


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "es-ES", "fr-FR", "ja-JP"])
def test_every_real_line_parses_and_slot_text_is_the_bracketed_text(locale):
    utterances, fingerprints = load_massive(MASSIVE / f"{locale}.jsonl")
    assert len(utterances) == 16521 and len(fingerprints[0]["sha256"]) == 64
    with open(MASSIVE / f"{locale}.jsonl", encoding="utf-8") as f:
        annotations = [json.loads(line)["annot_utt"] for line in f]
    assert sum(map(len, (u.slots for u in utterances))) > 15000
    for u, annot in zip(utterances, annotations):
        assert [(s.type, u.slot_text(s)) for s in u.slots] == ANNOTATED_SLOT.findall(annot), (u.id, annot)


def test_folder_locales_and_partitions(data_dir):
    train, _ = load_massive(data_dir / "massive", locales=["en-US", "ja-JP"], splits=["train"])
    assert {u.locale for u in train} == {"en-US", "ja-JP"}
    assert {u.split for u in train} == {"train"}
    everything, _ = load_massive(data_dir / "massive", locales=["en-US"])
    assert {u.split for u in everything} == {"train", "dev", "test"}


def test_hub_style_dataset_folder(tmp_path, data_dir):
    """A dataset name goes through datasets.load_dataset; ClassLabel ids become names."""
    import datasets
    rows = [json.loads(line) for line in (data_dir / "massive" / "en-US.jsonl").open()][:50]
    rows = [r for r in rows if r["partition"] == "train"]
    scenarios = sorted({r["scenario"] for r in rows})
    features = datasets.Features({"id": datasets.Value("string"), "locale": datasets.Value("string"),
                                  "partition": datasets.Value("string"),
                                  "scenario": datasets.ClassLabel(names=scenarios), "intent": datasets.Value("string"),
                                  "utt": datasets.Value("string"), "annot_utt": datasets.Value("string"),
                                  "worker_id": datasets.Value("string")})
    ds = datasets.Dataset.from_list(rows, features=features)
    folder = tmp_path / "massive_hub"
    folder.mkdir()
    ds.to_parquet(str(folder / "train.parquet"))
    # A folder without JSONL is a dataset for load_dataset, as a hub name is.
    utterances, fingerprints = load_massive(str(folder), splits=["train"])
    assert [u.text for u in utterances] == [r["utt"] for r in rows]
    assert utterances[0].domain == rows[0]["scenario"]
    assert fingerprints[0]["dataset"] == str(folder)


def test_errors_name_file_and_line(tmp_path):
    good = {"id": "1", "locale": "en-US", "partition": "train", "scenario": "alarm", "intent": "alarm_set",
            "utt": "wake me up", "annot_utt": "wake me up"}
    path = write_jsonl(tmp_path / "x.jsonl", [good])
    with open(path, "a") as f:
        f.write("{not json\n")
    with pytest.raises(UsageError, match=r"x\.jsonl:2: malformed JSON"):
        load_massive(path)
    bad = dict(good, annot_utt="wake me [time : up")
    path = write_jsonl(tmp_path / "y.jsonl", [good, good, bad])
    with pytest.raises(UsageError, match=r"y\.jsonl:3: unbalanced brackets"):
        load_massive(path)
    path = write_jsonl(tmp_path / "z.jsonl", [dict(good, annot_utt="wake you up")])
    with pytest.raises(UsageError, match=r"z\.jsonl:1: .*does not match"):
        load_massive(path)
    with pytest.raises(UsageError, match="no such file"):
        load_massive(tmp_path / "missing.jsonl")
    with pytest.raises(UsageError, match="no file for locale"):
        load_massive(tmp_path, locales=["xx-XX"])
    with pytest.raises(UsageError, match="no such file"):
        load_massive(str(tmp_path / "not_there"))


def test_sample_is_fixed_ordered_and_spread_over_the_whole_list():
    items = list(range(1000))
    picked = sample(items, 100)
    assert picked == sample(items, 100) and picked == sorted(picked) and len(set(picked)) == 100
    assert max(picked) > 900  # not the first 100: every locale file gets its share
    assert sample(items, None) == items and sample(items, 5000) == items
