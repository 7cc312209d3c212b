"""A sweep, not a list: every script's path arguments through the same set of bad inputs.

Each case must end in exit status 2 and one stderr line (no traceback), with nothing left where
the script would have written. A new path flag gets covered by adding it to SCRIPTS.
"""
import io
import shutil
import sys

import pytest
from conftest import make_teacher, read_lines, write_jsonl

import aggregate
import distill
import evaluate
import export
import finetune
import predict
import serve
import similarity
from common.run import run_cli


@pytest.fixture(scope="module")
def world(tmp_path_factory, tokenizer_dir, data_dir):
    """Good inputs (an encoder, a finetuned DC model, its ONNX export, MASSIVE, a corpus) and bad ones."""
    root = tmp_path_factory.mktemp("world")
    encoder = make_teacher(root / "encoder", tokenizer_dir, mlm_head=False)
    dc = root / "dc"
    assert finetune.main(["--task", "dc", "--model", str(encoder), "--data", str(data_dir / "massive"), "--locales",
                          "en-US", "--output-dir", str(dc), "--max-steps", "2", "--batch-size", "8"]) == 0
    assert export.main(["--model", str(dc), "--output-dir", str(root / "onnx"), "--no-parity"]) == 0
    bad = root / "bad"
    bad.mkdir()
    (bad / "empty.jsonl").write_text("")
    (bad / "latin1.jsonl").write_bytes('{"text": "caf\xe9 cr\xe8me"}\n'.encode("latin-1"))
    (bad / "a_file.txt").write_text("not a folder\n")
    (bad / "empty_folder").mkdir()
    no_weights = shutil.copytree(dc, bad / "no_weights")
    (no_weights / "model.safetensors").unlink()
    truncated = shutil.copytree(dc, bad / "truncated")
    weights = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(weights[:len(weights) // 2])
    truncated_onnx = shutil.copytree(root / "onnx" / "int8", bad / "truncated_onnx")
    onnx = (truncated_onnx / "model.onnx").read_bytes()
    (truncated_onnx / "model.onnx").write_bytes(onnx[:len(onnx) // 3])
    latin1_massive = bad / "latin1_massive"
    latin1_massive.mkdir()
    (latin1_massive / "en-US.jsonl").write_bytes(
        (data_dir / "massive" / "en-US.jsonl").read_bytes().replace(b"wake", "w\xe4ke".encode("latin-1")))
    write_jsonl(root / "corpus.jsonl", read_lines(data_dir / "wiki.jsonl", 20))
    return {"encoder": encoder, "dc": dc, "onnx": root / "onnx" / "int8", "massive": data_dir / "massive",
            "corpus": root / "corpus.jsonl", "bad": bad, "root": root}


MODEL_CASES = {"missing": lambda w: w["bad"] / "missing", "a file": lambda w: w["bad"] / "a_file.txt",
               "an empty folder": lambda w: w["bad"] / "empty_folder",
               "a config without weights": lambda w: w["bad"] / "no_weights",
               "truncated weights": lambda w: w["bad"] / "truncated"}
DATA_CASES = {"missing": lambda w: w["bad"] / "missing.jsonl", "an empty file": lambda w: w["bad"] / "empty.jsonl",
              "non-UTF-8 text": lambda w: w["bad"] / "latin1.jsonl", "an empty folder": lambda w: w["bad"] / "empty_folder"}
LABELLED_CASES = {"missing": lambda w: w["bad"] / "missing", "an empty file": lambda w: w["bad"] / "empty.jsonl",
                  "a text file": lambda w: w["bad"] / "a_file.txt", "an empty folder": lambda w: w["bad"] / "empty_folder",
                  "non-UTF-8 MASSIVE": lambda w: w["bad"] / "latin1_massive"}
OUTPUT_DIR_CASES = {"unwritable (under a file)": lambda w: w["bad"] / "a_file.txt" / "out"}
OUTPUT_FILE_CASES = {"unwritable (under a file)": lambda w: w["bad"] / "a_file.txt" / "out.json",
                     "a folder": lambda w: w["bad"] / "empty_folder"}
HEADED_MODEL_CASES = {**MODEL_CASES, "an encoder without a head": lambda w: w["encoder"],
                      "a truncated model.onnx": lambda w: w["bad"] / "truncated_onnx"}

# script: (main, the good arguments (flag -> value from the world), {flag: cases}); "OUT" is where it writes.
SCRIPTS = {
    "distill.py": (distill.main, {"--teacher": "encoder", "--generic-data": "corpus", "--target-data": "massive",
                                  "--target-ratio": "0.3", "--max-steps": "1", "--output-dir": "OUT"},
                   {"--teacher": MODEL_CASES, "--generic-data": DATA_CASES, "--target-data": DATA_CASES,
                    "--output-dir": OUTPUT_DIR_CASES}),
    "finetune.py": (finetune.main, {"--task": "dc", "--model": "encoder", "--data": "massive", "--locales": "en-US",
                                    "--max-steps": "1", "--output-dir": "OUT"},
                    {"--model": MODEL_CASES, "--data": LABELLED_CASES, "--output-dir": OUTPUT_DIR_CASES}),
    "finetune.py --task mlm": (finetune.main, {"--task": "mlm", "--model": "encoder", "--data": "massive",
                                               "--locales": "en-US", "--max-steps": "1", "--output-dir": "OUT"},
                               {"--model": MODEL_CASES, "--data": DATA_CASES}),
    "evaluate.py": (evaluate.main, {"--model": "dc", "--data": "massive", "--locales": "en-US", "--output": "OUT"},
                    {"--model": HEADED_MODEL_CASES, "--data": LABELLED_CASES, "--output": OUTPUT_FILE_CASES}),
    "export.py": (export.main, {"--model": "dc", "--output-dir": "OUT", "--no-parity": None},
                  {"--model": {**HEADED_MODEL_CASES, "an ONNX folder": lambda w: w["onnx"]},
                   "--output-dir": OUTPUT_DIR_CASES}),
    "export.py --benchmark": (export.main, {"--model": "dc", "--output-dir": "OUT", "--no-parity": None,
                                            "--benchmark": None, "--teacher": "encoder", "--data": "massive"},
                              {"--teacher": MODEL_CASES}),
    # the Predictor opens a finetuned PyTorch folder too (the baseline a deployment is measured against)
    "predict.py": (predict.main, {"--model": "onnx", "hello": None}, {"--model": HEADED_MODEL_CASES}),
    "serve.py": (serve.main, {"--model": "onnx", "--port": "0"}, {"--model": HEADED_MODEL_CASES}),
    "similarity.py": (similarity.main, {"--tokenizer": "encoder", "--generic-data": "corpus", "--data": "massive",
                                        "--locales": "en-US", "--out-root": "root"},
                      {"--tokenizer": {k: v for k, v in MODEL_CASES.items() if k in ("missing", "a file", "an empty folder")},
                       "--generic-data": DATA_CASES, "--out-root": {"missing": lambda w: w["bad"] / "missing"}}),
    "aggregate.py": (aggregate.main, {"--out-root": "root"},
                     {"--out-root": {"missing": lambda w: w["bad"] / "missing", "an empty folder":
                                     lambda w: w["bad"] / "empty_folder", "a file": lambda w: w["bad"] / "a_file.txt"}}),
}
CASES = [(script, flag, case) for script, (_, _, flags) in SCRIPTS.items() for flag, cases in flags.items()
         for case in cases]


def argv_of(world, good, flag, value, out):
    argv = []
    for name, ref in good.items():
        if name == flag:
            argv += [name, str(value)]
        elif ref is None:
            argv.append(name)
        else:
            argv += [name, str(out if ref == "OUT" else world.get(ref, ref))]
    return argv


def listing(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


@pytest.mark.parametrize("script,flag,case", CASES, ids=[f"{s} {f} {c}" for s, f, c in CASES])
def test_a_bad_path_is_one_line_and_exit_2(world, script, flag, case, tmp_path, capsys, monkeypatch):
    main, good, flags = SCRIPTS[script]
    value = flags[flag][case](world)
    out = tmp_path / "out"
    before = listing(world["root"])
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(main, argv_of(world, good, flag, value, out))
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and ": error: " in err, err
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    assert listing(world["root"]) == before  # nothing written beside the inputs either


@pytest.mark.parametrize("stdin,message", [(b"", "no utterances"), (b"\n", "standard input, line 1 is blank"),
                                           (b"hello\n   \nbye\n", "standard input, line 2 is blank"),
                                           (b"ok\ncaf\xe9\n", "standard input, line 2: not UTF-8 text")])
def test_predict_refuses_bad_standard_input(world, stdin, message, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_cli(predict.main, ["--model", str(world["onnx"])])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1 and message in err, err


def test_predict_answers_each_input_line_on_its_own_output_line(world, capsys, monkeypatch):
    import json
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("wake me up\n \nplay jazz\n".encode())))
    capsys.readouterr()
    assert run_cli(predict.main, ["--model", str(world["onnx"]), "--blank", "empty"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in lines] == ["wake me up", " ", "play jazz"]
    assert lines[1] == {"text": " ", "empty": True} and "domain" in lines[0] and "domain" in lines[2]
    with pytest.raises(SystemExit) as info:
        run_cli(predict.main, ["--model", str(world["onnx"]), "   "])
    assert info.value.code == 2 and "utterance 1 is blank" in capsys.readouterr().err


def test_evaluate_refuses_data_whose_labels_the_model_never_saw(world, tmp_path, capsys):
    rows = read_lines(world["massive"] / "en-US.jsonl", 200)
    strange = tmp_path / "strange"
    strange.mkdir()
    write_jsonl(strange / "en-US.jsonl", [dict(r, scenario="nowhere_" + r["scenario"]) for r in rows])
    with pytest.raises(SystemExit) as info:
        run_cli(evaluate.main, ["--model", str(world["dc"]), "--data", str(strange), "--split", "train"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and len(err.splitlines()) == 1, err
    assert "none of its" in err and "domains" in err and "is one the model knows" in err
    partly = tmp_path / "partly"
    partly.mkdir()
    write_jsonl(partly / "en-US.jsonl", [dict(r, scenario="nowhere") if i % 2 else r for i, r in enumerate(rows)])
    assert run_cli(evaluate.main, ["--model", str(world["dc"]), "--data", str(partly), "--split", "train",
                                   "--bootstrap", "0"]) == 0
    assert "note: 1 of the" in capsys.readouterr().err


def test_finetune_refuses_a_dev_split_whose_labels_train_never_had(world, tmp_path, capsys):
    rows = read_lines(world["massive"] / "en-US.jsonl", 600)
    strange = tmp_path / "strange"
    strange.mkdir()
    write_jsonl(strange / "en-US.jsonl", [dict(r, scenario="nowhere") if r["partition"] == "dev" else r for r in rows])
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as info:
        run_cli(finetune.main, ["--task", "dc", "--model", str(world["encoder"]), "--data", str(strange),
                                "--max-steps", "1", "--output-dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and "--data's dev split: none of its 1 domains (nowhere) is one its train split knows" \
        in err[-1], err
    assert not out.exists() and not (tmp_path / "out.partial").exists()
