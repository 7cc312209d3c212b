"""Your own data: BIO / CoNLL / CSV / TSV / JSONL labelled data and plain-text target data.

MASSIVE en-US lines are converted here to the BIO three-file layout and to CoNLL; read back, they
must give the same records, and evaluate.py the same metrics, as the MASSIVE JSONL they came from.
"""
import csv
import json
import random

import pytest
from seqeval.metrics import f1_score

import distill
import evaluate
import finetune
from common.massive import load_massive
from common.metrics import icner_metrics
from common.run import UsageError
from common.target_text import load_target_text
from common.utterance import NO_DOMAIN, Slot
from common.task_data import detect_format, load_labelled, utterance_from_tags, words_and_tags, write_bio
from conftest import expect_usage_error, write_jsonl

SPLITS = {"train": "train", "dev": "valid", "test": "test"}  # the BIO layout's usual folder names


def massive_split(data_dir, split):
    return load_massive(data_dir / "massive", ["en-US"], [split])[0]


@pytest.fixture(scope="module")
def converted(data_dir, tmp_path_factory):
    """The en-US fixture lines as MASSIVE JSONL, BIO folders, CoNLL files and CSV / TSV / JSONL."""
    root = tmp_path_factory.mktemp("converted")
    rows = [json.loads(line) for line in (data_dir / "massive" / "en-US.jsonl").open(encoding="utf-8")]
    (root / "massive").mkdir()
    write_jsonl(root / "massive" / "en-US.jsonl", rows)
    for name in ("bio", "conll", "csv", "tsv", "jsonl"):
        (root / name).mkdir()
    for split, folder in SPLITS.items():
        utterances = massive_split(data_dir, split)
        write_bio(root / "bio" / folder, utterances)
        tagged = [words_and_tags(u) for u in utterances]
        blocks = [f"# text = {u.text}\n# intent = {u.intent}\n# domain = {u.domain}\n" +
                  "".join(f"{token}\t{tag}\n" for token, tag in zip(*tt)) for u, tt in zip(utterances, tagged)]
        (root / "conll" / f"{folder}.conll").write_text("\n".join(blocks), encoding="utf-8")
        table = [{"utterance": u.text, "domain": u.domain} for u in utterances]
        for kind, delimiter in (("csv", ","), ("tsv", "\t")):
            with open(root / kind / f"{folder}.{kind}", "w", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=["utterance", "domain"], delimiter=delimiter)
                writer.writeheader()
                writer.writerows(table)
        write_jsonl(root / "jsonl" / f"{folder}.jsonl", table)
    return root


def test_every_reader_gives_the_massive_records(converted, data_dir):
    for kind in ("bio", "conll", "csv", "tsv", "jsonl"):
        assert detect_format(converted / kind) == kind
    assert detect_format(converted / "massive") == "massive"
    for split in SPLITS:
        gold = massive_split(data_dir, split)
        bio = load_labelled(converted / "bio", split)[0]
        conll = load_labelled(converted / "conll", split)[0]
        assert [(u.text, u.intent, u.slots) for u in bio] == [(u.text, u.intent, u.slots) for u in gold]
        assert [(u.text, u.intent, u.domain, u.slots) for u in conll] == \
               [(u.text, u.intent, u.domain, u.slots) for u in gold]
        assert {u.domain for u in bio} == {NO_DOMAIN}
        for kind in ("csv", "tsv", "jsonl"):
            table = load_labelled(converted / kind, split, text_column="utterance", label_column="domain")[0]
            assert [(u.text, u.domain) for u in table] == [(u.text, u.domain) for u in gold]


def test_data_format_forces_the_reader(tmp_path):
    """.txt split files are sniffed (a header row: TSV; token and tag: CoNLL); --data-format overrides."""
    for split in ("train", "dev"):
        (tmp_path / "tsv" / f"{split}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "tsv" / f"{split}.txt").write_text("text\tlabel\nwake me up\talarm\nplay jazz\tmusic\n")
        (tmp_path / "conll" / f"{split}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "conll" / f"{split}.txt").write_text("# intent = play_music\nplay\tO\njazz\tB-genre\n")
    assert detect_format(tmp_path / "tsv") == "tsv" and detect_format(tmp_path / "conll") == "conll"
    rows = load_labelled(tmp_path / "tsv", "dev")[0]
    assert [(u.text, u.domain) for u in rows] == [("wake me up", "alarm"), ("play jazz", "music")]
    assert load_labelled(tmp_path / "conll", "train")[0][0].slots == [Slot("genre", 5, 9)]
    with pytest.raises(UsageError, match="tsv/train.txt:1: utterance without an intent"):
        load_labelled(tmp_path / "tsv", "train", data_format="conll")
    with pytest.raises(UsageError, match=r"no column 'text' \(columns: # intent = play_music\); set --text-column"):
        load_labelled(tmp_path / "conll", "train", data_format="tsv")


def test_tags_become_slots_as_seqeval_reads_them():
    """Span F1 over the records equals seqeval's F1 over the tags, ill-formed sequences included
    (an I- after O or after another type opens a slot, as in seqeval's default mode)."""
    rng = random.Random(0)
    tag_set = ["O", "O", "B-a", "I-a", "B-b", "I-b", "I-c"]
    gold_tags, pred_tags, examples = [], [], []
    for n in range(300):
        tokens = [rng.choice(["set", "an", "alarm", "for", "5", "am", "x"]) for _ in range(rng.randint(1, 8))]
        gold = [rng.choice(tag_set) for _ in tokens]
        pred = [g if rng.random() < 0.6 else rng.choice(tag_set) for g in gold]
        g_u, p_u = utterance_from_tags(tokens, gold, "i", f"g{n}", "test"), utterance_from_tags(tokens, pred, "i", f"p{n}", "test")
        gold_tags.append(gold)
        pred_tags.append(pred)
        examples.append((g_u.text, "i", g_u.slots, "i", p_u.slots))
    metrics = icner_metrics(examples, bootstrap=0)
    assert metrics["slot_f1"] == pytest.approx(f1_score(gold_tags, pred_tags))
    assert utterance_from_tags(["wake", "me", "at", "five"], ["O", "O", "I-time", "I-time"], "i", "w", "test").slots == \
        [Slot("time", 8, 15)]


@pytest.fixture(scope="module")
def icner_model(teacher_dir, converted, tmp_path_factory):
    """A tiny ICNER model finetuned on the BIO folders (the reader feeds finetune.py too)."""
    out = tmp_path_factory.mktemp("icner") / "model"
    finetune.main(["--task", "icner", "--model", str(teacher_dir), "--data", str(converted / "bio"),
                   "--output-dir", str(out), "--max-steps", "30", "--batch-size", "16", "--lr", "3e-3"])
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["fingerprints"]["format"] == "bio"
    return out


def test_bio_and_conll_metrics_equal_the_jsonl_path(icner_model, converted, tmp_path):
    """Same model, same utterances: evaluate.py gives the same metrics from every format."""
    metrics = {}
    for kind in ("massive", "bio", "conll"):
        out = tmp_path / f"{kind}.json"
        evaluate.main(["--model", str(icner_model), "--data", str(converted / kind), "--output", str(out),
                       "--bootstrap", "50"])
        metrics[kind] = json.loads(out.read_text())["metrics"]
    assert metrics["massive"]["exact_match"] > 0 or metrics["massive"]["slot_f1"] > 0  # a model that predicts something
    for kind in ("bio", "conll"):
        for key in ("n", "intent_accuracy", "slot_f1", "slot_precision", "slot_recall", "semer", "exact_match",
                    "exact_match_ci95", "semer_ci95", "per_slot_type"):
            assert metrics[kind][key] == metrics["massive"][key], (kind, key)
    assert metrics["conll"]["per_domain"] == metrics["massive"]["per_domain"]  # CoNLL carries the domains


def test_classification_files_train_dc_and_unseen_labels_count_as_errors(teacher_dir, converted, tmp_path):
    data = tmp_path / "topics"
    data.mkdir()
    for split in ("train", "valid"):
        (data / f"{split}.csv").write_text((converted / "csv" / f"{split}.csv").read_text(encoding="utf-8"),
                                           encoding="utf-8")
    test = (converted / "csv" / "test.csv").read_text(encoding="utf-8")
    (data / "test.csv").write_text(test + "\"turn it up, please\",a_label_never_seen\n", encoding="utf-8")
    out = tmp_path / "dc"
    finetune.main(["--task", "dc", "--model", str(teacher_dir), "--data", str(data), "--text-column", "utterance",
                   "--label-column", "domain", "--output-dir", str(out), "--max-steps", "4", "--batch-size", "16"])
    metrics_file = tmp_path / "m.json"
    evaluate.main(["--model", str(out), "--data", str(data), "--text-column", "utterance", "--label-column", "domain",
                   "--output", str(metrics_file), "--bootstrap", "0"])
    m = json.loads(metrics_file.read_text())["metrics"]
    assert m["per_domain_accuracy"]["a_label_never_seen"] == 0.0
    assert m["n"] == len(test.splitlines())  # header line out, the new row in


def test_plain_text_target_data_in_distill_and_mlm(teacher_dir, data_dir, tmp_path):
    utterances = [u.text for u in massive_split(data_dir, "train")]
    text = tmp_path / "traffic.txt"
    text.write_text("\n".join(utterances) + "\n\n", encoding="utf-8")  # a blank line is no utterance
    loaded = load_target_text(text)
    assert loaded.texts == utterances and loaded.kinds == ["text"] and loaded.dev_texts is None
    rows = tmp_path / "traffic.jsonl"
    write_jsonl(rows, [{"message": u} for u in utterances])
    assert load_target_text(rows, "message").texts == utterances
    with pytest.raises(UsageError, match="traffic.jsonl:1: no field 'text' \\(set --target-text-field\\)"):
        load_target_text(rows)

    out = tmp_path / "student"
    distill.main(["--teacher", str(teacher_dir), "--target-data", str(text), "--target-ratio", "1",
                  "--max-steps", "2", "--batch-size", "4", "--max-seq-length", "32", "--student-layers", "1",
                  "--student-hidden", "32", "--student-heads", "2", "--output-dir", str(out)])
    run = json.loads((out / "run.json").read_text())
    assert run["transfer"]["target_share"] == 1.0 and run["data"]["fingerprints"]["target"][0]["path"].endswith("traffic.txt")

    adapted = tmp_path / "adapted"
    finetune.main(["--task", "mlm", "--model", str(teacher_dir), "--data", str(rows), "--target-text-field", "message",
                   "--output-dir", str(adapted), "--max-steps", "2", "--head-warmup-steps", "1", "--batch-size", "4",
                   "--max-seq-length", "32"])
    run = json.loads((adapted / "run.json").read_text())
    held = max(50, len(utterances) // 100)
    assert run["data"]["target_texts"] == len(utterances) - held and run["data"]["dev_texts"] == held


def test_bad_inputs_are_one_line_errors(teacher_dir, converted, tmp_path, capsys):
    out = tmp_path / "never"

    def copy_bio(name):
        folder = tmp_path / name
        for split in SPLITS.values():
            (folder / split).mkdir(parents=True)
            for f in ("seq.in", "seq.out", "label"):
                (folder / split / f).write_bytes((converted / "bio" / split / f).read_bytes())
        return folder

    short_tags = copy_bio("short_tags")
    lines = (short_tags / "train" / "seq.out").read_text().splitlines()
    lines[6] = lines[6].rsplit(" ", 1)[0]
    (short_tags / "train" / "seq.out").write_text("\n".join(lines) + "\n")
    short_label = copy_bio("short_label")
    (short_label / "train" / "label").write_text("".join((short_label / "train" / "label").read_text().splitlines(True)[:-1]))
    mixed = copy_bio("mixed")
    (mixed / "train.csv").write_text("text,label\nhello,greet\n")
    stray = copy_bio("stray")  # a CSV inside a BIO split folder would be ignored without a word
    (stray / "train" / "extra.csv").write_text("text,label\nhello,greet\n")
    empty_split = copy_bio("empty_split")
    for f in ("seq.in", "seq.out", "label"):
        (empty_split / "valid" / f).write_text("")
    latin1 = tmp_path / "latin1"
    latin1.mkdir()
    for split in ("train", "dev"):
        (latin1 / f"{split}.csv").write_bytes("text,label\ncafé crème,food\n".encode("latin-1"))
    dc = ["--task", "dc", "--model", str(teacher_dir), "--output-dir", str(out), "--max-steps", "1"]
    icner = ["--task", "icner", "--model", str(teacher_dir), "--output-dir", str(out), "--max-steps", "1"]
    cases = [
        (icner + ["--data", str(short_tags)], "short_tags/train/seq.out:7: "),
        (icner + ["--data", str(short_label)], "short_label/train/label: "),
        (icner + ["--data", str(mixed)], "the folder mixes formats"),
        (icner + ["--data", str(stray)], "train/: bio, train/extra.csv: csv, valid/: bio); keep one format per folder"),
        (icner + ["--data", str(empty_split)], "empty_split/valid: no utterances (the dev split is empty)"),
        (dc + ["--data", str(latin1)], "latin1/train.csv: not UTF-8 text"),
        (dc + ["--data", str(converted / "csv"), "--label-column", "domain"], "no column 'text' (columns: utterance, domain); set --text-column"),
        (dc + ["--data", str(converted / "jsonl"), "--text-column", "utterance", "--label-column", "topic"],
         "jsonl/train.jsonl:1: no column 'topic'"),
        (dc + ["--data", str(converted / "bio")], "--task dc needs a class per utterance"),
        (icner + ["--data", str(converted / "csv"), "--text-column", "utterance"], "--task icner needs slot annotations"),
        (icner + ["--data", str(converted / "bio"), "--all-domains"], "--all-domains: "),
    ]
    for argv, message in cases:
        expect_usage_error(capsys, finetune.main, argv, message, out)
    with pytest.raises(UsageError, match=r"seq.out:7: \d+ tags for the \d+ tokens of .*/train/seq.in:7"):
        load_labelled(short_tags, "train")
    bad_tag = tmp_path / "bad_tag"
    bad_tag.mkdir()
    (bad_tag / "train.conll").write_text("# intent = x\nhello\tGREETING\n")
    with pytest.raises(UsageError, match="bad_tag/train.conll:2: tag 'GREETING' of token 'hello'"):
        load_labelled(bad_tag, "train")
    no_intent = tmp_path / "no_intent"
    no_intent.mkdir()
    (no_intent / "train.conll").write_text("hello\tO\nworld\tB-x\n")
    with pytest.raises(UsageError, match="no_intent/train.conll:1: utterance without an intent"):
        load_labelled(no_intent, "train")



def test_the_own_data_example_writes_formats_that_read_back_as_massive(data_dir, tmp_path):
    """docs/examples/massive_as_your_data.py: each format it writes, read by the readers the study
    uses, gives MASSIVE's utterances back (text, domain, intent, slots), split by split."""
    import subprocess
    import sys
    from conftest import REPO, script_env
    out = tmp_path / "my-data"
    proc = subprocess.run([sys.executable, str(REPO / "docs" / "examples" / "massive_as_your_data.py"), "--massive",
                           str(data_dir / "massive" / "en-US.jsonl"), "--out", str(out)],
                          cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    slots = lambda u: [(s.type, u.slot_text(s)) for s in u.slots]  # noqa: E731
    for split in SPLITS:
        gold = massive_split(data_dir, split)
        assert gold and f"{split}: {len(gold)} utterances" in proc.stderr
        bio = load_labelled(out / "slots", split, task="icner")[0]
        conll = load_labelled(out / "slots.conll", split, task="dc")[0]
        classes = load_labelled(out / "domains", split, text_column="utterance", label_column="domain", task="dc")[0]
        assert [(u.text, u.intent, slots(u)) for u in bio] == [(g.text, g.intent, slots(g)) for g in gold]
        assert [(u.text, u.domain, u.intent, slots(u)) for u in conll] == \
            [(g.text, g.domain, g.intent, slots(g)) for g in gold]
        assert [(u.text, u.domain) for u in classes] == [(g.text, g.domain) for g in gold]
    assert load_target_text(out / "traffic.txt").texts == [g.text for g in massive_split(data_dir, "train")]
