"""CoNLL files in the column layouts SLU corpora ship (common.conll), written here in each layout."""
import json

import pytest
from conftest import expect_usage_error

import evaluate
import finetune
from common.massive import load_massive
from common.task_data import load_labelled, words_and_tags

# The layout of the corpus: 1-based index, token, intent, tag; '# text' keeps the spacing.
FOUR = """# id = 1
# text = Regnet es heute?
# intent = weather/find
1\tRegnet\tweather/find\tB-weather/attribute
2\tes\tweather/find\tO
3\theute\tweather/find\tB-datetime
4\t?\tweather/find\tO

# text = Wecker für 7 Uhr, bitte
# intent = alarm/set
1\tWecker\talarm/set\tO
2\tfür\talarm/set\tO
3\t7\talarm/set\tB-datetime
4\tUhr\talarm/set\tI-datetime
5\t,\talarm/set\tO
6\tbitte\talarm/set\tO
"""
TWO = "# intent = play_music\nplay\tO\nsome\tO\njazz\tB-music_genre\n\n# intent = wake_up\nwake\tO\nme\tO\n"
THREE_INTENT = "play\tO\tplay_music\nsome\tO\tplay_music\njazz\tB-music_genre\tplay_music\n"
THREE_INDEX = "# intent = play_music\n1 play O\n2 some O\n3 jazz B-music_genre\n"


def folder_of(tmp_path, text, name="data"):
    folder = tmp_path / name
    folder.mkdir()
    for split in ("train", "dev", "test"):
        (folder / f"{split}.conll").write_text(text, encoding="utf-8")
    return folder


def slots(u):
    return [(s.type, u.text[s.start:s.end], s.start, s.end) for s in u.slots]


def test_the_four_column_layout_with_text_gives_offsets_into_the_original_text(tmp_path):
    utterances, files, kind = load_labelled(folder_of(tmp_path, FOUR), "train")
    assert kind == "conll" and [u.text for u in utterances] == ["Regnet es heute?", "Wecker für 7 Uhr, bitte"]
    assert [u.intent for u in utterances] == ["weather/find", "alarm/set"]
    # a type with '/' keeps its whole name; the spans are those of the real text, not of joined tokens
    assert slots(utterances[0]) == [("weather/attribute", "Regnet", 0, 6), ("datetime", "heute", 10, 15)]
    assert slots(utterances[1]) == [("datetime", "7 Uhr", 11, 16)]
    assert files[0]["conll_layout"] == "index token intent tag" and files[0]["text_spacing"] == "from '# text'"


@pytest.mark.parametrize("text,layout", [(TWO, "token tag"), (THREE_INTENT, "token tag intent"),
                                         (THREE_INDEX, "index token tag")])
def test_each_layout_is_detected(tmp_path, text, layout):
    utterances, files, _ = load_labelled(folder_of(tmp_path, text), "train")
    assert files[0]["conll_layout"] == layout and files[0]["text_spacing"] == "tokens joined by one space"
    assert utterances[0].text == "play some jazz" and utterances[0].intent == "play_music"
    assert slots(utterances[0]) == [("music_genre", "jazz", 10, 14)]


def test_conll_columns_forces_a_layout_detection_cannot_tell(tmp_path, teacher_dir, capsys):
    # tokens that are numbers 1..n beside a tag column, then another tag-like column: two readings
    ambiguous = "# intent = count\n1\tO\tB-number\n2\tB-number\tO\n"
    folder = folder_of(tmp_path, ambiguous)
    out = tmp_path / "out"
    expect_usage_error(capsys, finetune.main, ["--task", "icner", "--model", str(teacher_dir), "--data", str(folder),
                                               "--output-dir", str(out), "--max-steps", "1"],
                       "the columns read as index token tag or as token tag intent; say which with --conll-columns", out)
    forced = "# intent = play_music\nplay\t1\tO\nsome\t2\tO\njazz\t3\tB-music_genre\n"  # token index tag
    columns = {"token": 0, "index": 1, "tag": 2}
    utterances, files, _ = load_labelled(folder_of(tmp_path, forced, "forced"), "train", conll_columns=columns)
    assert utterances[0].text == "play some jazz" and files[0]["conll_layout"] == "token index tag"
    from common.conll import parse_columns
    assert parse_columns("token=2,intent=3,tag=4") == {"token": 1, "intent": 2, "tag": 3}


@pytest.mark.parametrize("text,message", [
    (TWO + "\n" + THREE_INDEX, "train.conll: utterances in different layouts (line 2: token tag; line 11: "
                               "index token tag); keep one per file"),
    (THREE_INDEX.replace("2 some", "3 some"), "train.conll:2: the index column does not count 1..3 (1 3 3)"),
    (FOUR.replace("# text = Regnet es heute?", "# text = Regnet es morgen?"),
     "train.conll:4: '# text = Regnet es morgen?' does not hold the token 'heute'"),
    (FOUR.replace("# intent = weather/find", "# intent = weather/query"),
     "train.conll:4: the intent column says weather/find but '# intent = weather/query'; they must agree"),
])
def test_bad_layouts_are_one_line_naming_file_and_line(tmp_path, teacher_dir, capsys, text, message):
    folder = folder_of(tmp_path, text)
    out = tmp_path / "out"
    expect_usage_error(capsys, finetune.main, ["--task", "icner", "--model", str(teacher_dir), "--data", str(folder),
                                               "--output-dir", str(out), "--max-steps", "1"], message, out)


def test_metrics_on_the_four_column_layout_equal_those_on_token_tag(tmp_path, teacher_dir, data_dir):
    """The same MASSIVE utterances as index/token/intent/tag with '# text', and as token<TAB>tag with
    '# intent': the same records, so one model scores them the same."""
    layouts = {"four": tmp_path / "four", "two": tmp_path / "two"}
    for folder in layouts.values():
        folder.mkdir()
    for split in ("train", "dev", "test"):
        utterances = load_massive(data_dir / "massive", ["en-US"], [split])[0]
        four, two = [], []
        for u in utterances:
            tokens, tags = words_and_tags(u)
            four.append(f"# text = {u.text}\n" + "".join(f"{i}\t{t}\t{u.intent}\t{g}\n"
                                                         for i, (t, g) in enumerate(zip(tokens, tags), 1)))
            two.append(f"# intent = {u.intent}\n" + "".join(f"{t}\t{g}\n" for t, g in zip(tokens, tags)))
        (layouts["four"] / f"{split}.conll").write_text("\n".join(four), encoding="utf-8")
        (layouts["two"] / f"{split}.conll").write_text("\n".join(two), encoding="utf-8")
    model = tmp_path / "icner"
    assert finetune.main(["--task", "icner", "--model", str(teacher_dir), "--data", str(layouts["two"]),
                          "--output-dir", str(model), "--max-steps", "20", "--batch-size", "16", "--lr", "3e-3"]) == 0
    scores = {}
    for name, folder in layouts.items():
        out = tmp_path / f"{name}.json"
        assert evaluate.main(["--model", str(model), "--data", str(folder), "--output", str(out), "--bootstrap", "0"]) == 0
        scores[name] = json.loads(out.read_text())
    assert scores["four"]["per_utterance"]["exact"] == scores["two"]["per_utterance"]["exact"]
    drop = ("slot_ceiling",)
    assert {k: v for k, v in scores["four"]["metrics"].items() if k not in drop} == \
        {k: v for k, v in scores["two"]["metrics"].items() if k not in drop}
    assert scores["four"]["data"]["files"][0]["conll_layout"] == "index token intent tag"
