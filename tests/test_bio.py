from transformers import AutoTokenizer

from common.bio import slot_label_names, spans_from_tags, token_tags
from common.massive import load_massive
from conftest import MASSIVE


def roundtrip_share(tokenizer, utterances):
    """Share of utterances whose slots come back exactly from the token tags."""
    ok = 0
    for u in utterances:
        enc = tokenizer(u.utt, return_offsets_mapping=True)
        tags = token_tags(enc["offset_mapping"], u.slots)
        ok += spans_from_tags(enc["offset_mapping"], tags, u.utt) == u.slots
    return ok / len(utterances)


def test_english_bio_tags(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    u = [x for x in load_massive(MASSIVE / "en-US.jsonl", partitions=["train"])[0] if x.slots][0]
    enc = tok(u.utt, return_offsets_mapping=True)
    tags = token_tags(enc["offset_mapping"], u.slots)
    assert tags[0] is None and tags[-1] is None  # [CLS], [SEP]
    for (start, end), tag in zip(enc["offset_mapping"], tags):
        if tag and tag.startswith("B-"):
            assert any(s.start == start and tag[2:] == s.type for s in u.slots)
    assert roundtrip_share(tok, load_massive(MASSIVE / "en-US.jsonl", partitions=["dev"])[0]) > 0.99


def test_japanese_bio_tags_follow_characters_not_words(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    u = load_massive(MASSIVE / "ja-JP.jsonl", partitions=["train"])[0][0]  # 金曜日の午前九時に起こしてください
    enc = tok(u.utt, return_offsets_mapping=True)
    tags = token_tags(enc["offset_mapping"], u.slots)
    spans = spans_from_tags(enc["offset_mapping"], tags, u.utt)
    assert [(s.type, u.utt[s.start:s.end]) for s in spans] == [("date", "金曜日"), ("time", "午前九時")]
    assert roundtrip_share(tok, load_massive(MASSIVE / "ja-JP.jsonl", partitions=["dev"])[0][:500]) > 0.9


def test_label_names():
    assert slot_label_names({"time", "date"}) == ["O", "B-date", "I-date", "B-time", "I-time"]
