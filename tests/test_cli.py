"""What every script shares: numbers checked at parse time, outputs checked before any work,
SIGINT / SIGTERM that stop at a safe point with one line."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import distill
from common.engine import LOOP_STATE, Engine
from common.run import run_cli
import evaluate
import export
import finetune
import predict
from conftest import REPO, expect_usage_error, script_env

# (script, flag, bad value, what the error says) for every kind of numeric flag
BAD_NUMBERS = [
    (distill, "--max-steps", "-5", "not an integer >= 0"),
    (distill, "--max-tokens", "0", "not a positive integer"),
    (distill, "--batch-size", "0", "not a positive integer"),
    (distill, "--grad-accum", "0", "not a positive integer"),
    (distill, "--max-seq-length", "-1", "not a positive integer"),
    (distill, "--student-layers", "two", "'two' is not an integer"),
    (distill, "--lr", "0", "not a number > 0"),
    (distill, "--lr", "nan", "not a number > 0"),
    (distill, "--warmup-ratio", "1.5", "not a number in [0, 1]"),
    (distill, "--target-ratio", "-0.1", "not a number in [0, 1]"),
    (distill, "--alpha-cos", "-1", "not a number >= 0"),
    (distill, "--temperature", "inf", "not a number > 0"),
    (distill, "--mlm-probability", "0", "not a number in (0, 1]"),
    (distill, "--save-steps", "0", "not a positive integer"),
    (finetune, "--max-steps", "0", "not a positive integer"),
    (finetune, "--max-steps", "-5", "not a positive integer"),
    (finetune, "--batch-size", "0", "not a positive integer"),
    (finetune, "--epochs", "0", "not a number > 0"),
    (finetune, "--patience", "0", "not a positive integer"),
    (finetune, "--threads", "0", "not a positive integer"),
    (finetune, "--seed", "-1", "not an integer >= 0"),
    (evaluate, "--batch-size", "0", "not a positive integer"),
    (evaluate, "--bootstrap", "-1", "not an integer >= 0"),
    (evaluate, "--max-seq-length", "0", "not a positive integer"),
    (export, "--threads", "0", "not a positive integer"),
    (export, "--min-agreement", "1.01", "not a number in [0, 1]"),
    (export, "--benchmark-utterances", "0", "not a positive integer"),
    (predict, "--max-seq-length", "0", "not a positive integer"),
    (predict, "--max-length", "0", "not a positive integer"),  # the older name, still accepted
]
REQUIRED = {  # enough flags that argparse reaches the numbers
    distill: ["--teacher", "t", "--target-ratio", "0.3", "--max-steps", "1", "--output-dir", "o"],
    finetune: ["--task", "dc", "--model", "m", "--output-dir", "o"],
    evaluate: ["--model", "m", "--data", "d"],
    export: ["--model", "m", "--output-dir", "o", "--no-parity"],
    predict: ["--model", "m"],
}


@pytest.mark.parametrize("script,flag,value,message", BAD_NUMBERS,
                         ids=[f"{s.__name__}{f}={v}" for s, f, v, _ in BAD_NUMBERS])
def test_numbers_are_checked_at_parse_time(script, flag, value, message, capsys):
    expect_usage_error(capsys, script.main, REQUIRED[script] + [flag, value], flag)  # the flag named
    expect_usage_error(capsys, script.main, REQUIRED[script] + [flag, value], message)


def test_sequence_length_beyond_the_models_positions(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    expect_usage_error(capsys, finetune.main, ["--task", "dc", "--model", str(teacher_dir), "--data",
                                               str(data_dir / "massive"), "--output-dir", str(out),
                                               "--max-seq-length", "100000"], "exceeds the 128 positions", out)


def test_outputs_are_checked_before_any_work(teacher_dir, data_dir, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
    before = sorted(tmp_path.rglob("*"))
    unwritable = "/proc/kd-transfer-test/out"  # nobody, root included, can create this
    for target, message in ((unwritable, "does not exist"), ("/proc/out", "cannot write in /proc"),
                            (str(a_file), "is a file, not a folder")):
        argv = ["--teacher", str(teacher_dir), "--generic-data", str(data_dir / "wiki.jsonl"), "--target-ratio",
                "0", "--max-steps", "1", "--output-dir", target, "--overwrite"]
        expect_usage_error(capsys, distill.main, argv, message)
        expect_usage_error(capsys, finetune.main, ["--task", "dc", "--model", str(teacher_dir), "--data",
                                                   str(data_dir / "massive"), "--output-dir", target, "--overwrite"],
                           message)
        expect_usage_error(capsys, export.main, ["--model", str(teacher_dir), "--output-dir", target, "--overwrite",
                                                 "--no-parity"], message)
    assert a_file.read_text() == "keep me" and sorted(tmp_path.rglob("*")) == before  # nothing written
    for target, message in (("/proc/m.json", "cannot write in /proc"), (str(tmp_path), "is a folder, not a file")):
        expect_usage_error(capsys, evaluate.main, ["--model", str(teacher_dir), "--data", str(data_dir / "massive"),
                                                   "--output", target], message)
    assert sorted(tmp_path.rglob("*")) == before


def start(script, args, *torchrun):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", *torchrun] if torchrun else [sys.executable]
    return subprocess.Popen([*launcher, str(REPO / script), *args], env=script_env(OMP_NUM_THREADS="1"), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def training_args(script, teacher, data_dir, out, steps):
    """A tiny run of each loop that evaluates (finetuning) or logs (distillation) every 4 steps;
    distill-streaming reads its generic corpus as a stream (datasets' streaming), not into memory."""
    if script.startswith("distill"):
        return ["--streaming"] * (script == "distill-streaming") + ["--teacher", str(teacher), "--generic-data", str(data_dir / "wiki.jsonl"), "--target-data",
                str(data_dir / "massive"), "--locales", "en-US", "--target-ratio", "0.3", "--output-dir", str(out),
                "--max-steps", str(steps), "--batch-size", "4", "--max-seq-length", "16", "--student-layers", "1",
                "--student-hidden", "16", "--student-heads", "2", "--log-steps", "4", "--save-steps", "100000"]
    return ["--task", script, "--model", str(teacher), "--data", str(data_dir / "massive"), "--locales", "en-US",
            "--output-dir", str(out), "--max-steps", str(steps), "--batch-size", "4", "--max-seq-length", "16",
            "--eval-steps", "4", "--head-warmup-steps", "0", "--max-dev-utterances", "40"]


def signal_before_step(monkeypatch, signum, at):
    """Deliver signum to this process as the loop starts step `at` (every loop seeds each step)."""
    seed_step = Engine.seed_step

    def seed_and_signal(self, seed, step):
        if step == at:
            signal.raise_signal(signum)
        seed_step(self, seed, step)
    monkeypatch.setattr(Engine, "seed_step", seed_and_signal)


@pytest.mark.parametrize("script", ["distill", "distill-streaming", "dc", "icner", "mlm"])
def test_a_run_stopped_by_sigint_resumes_to_the_weights_of_an_uninterrupted_one(script, teacher_dir, data_dir,
                                                                                 tmp_path, capsys, monkeypatch):
    main = distill.main if script.startswith("distill") else finetune.main
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    assert main(training_args(script, teacher_dir, data_dir, straight, 12)) == 0
    with monkeypatch.context() as patch:
        signal_before_step(patch, signal.SIGINT, 4)
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            run_cli(main, training_args(script, teacher_dir, data_dir, stopped, 12))
    assert info.value.code == 130
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.endswith("interrupted at step 5; rerun with --resume to continue (checkpoint in "
                         f"{tmp_path / 'stopped.partial'})") and "Traceback" not in err, err[-2000:]
    assert (tmp_path / "stopped.partial" / "checkpoint" / LOOP_STATE).is_file() and not stopped.exists()
    assert main(training_args(script, teacher_dir, data_dir, stopped, 12) + ["--resume"]) == 0
    assert "resuming from step 5 of 12" in capsys.readouterr().err
    a, b = load_file(straight / "model.safetensors"), load_file(stopped / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    record = "loss_curve" if script.startswith("distill") else "history"
    runs = [json.loads((d / "run.json").read_text()) for d in (straight, stopped)]
    assert runs[0][record] == runs[1][record] and len(runs[0][record]) == 3
    if script == "distill-streaming":  # the stream resumed where it stopped, not from its start
        assert runs[1]["args"]["streaming"] and runs[1]["transfer"]["generic_tokens"] > 0


def interrupt_after_first_checkpoint(proc, work_dir, signum, group=False):
    """Send signum (to the whole process group, as a batch system does, if group) once the run has
    saved its first checkpoint, so that it is surely in its training loop; return stderr."""
    state = work_dir / "checkpoint" / LOOP_STATE
    deadline = time.time() + 240
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return err


def interrupted_step(err, script):
    """The step named by the one line a clean interruption prints last."""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{script}: interrupted at step ") and "rerun with --resume to continue" in last, last
    assert "Traceback" not in err
    return int(last.split("at step ")[1].split(";")[0])


@pytest.mark.parametrize("script", ["distill", "dc"])
def test_sigterm_stops_a_script_at_a_step_with_its_checkpoint(script, teacher_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    args = training_args(script, teacher_dir, data_dir, out, 100000)
    args += ["--save-steps", "2"] if script == "distill" else ["--eval-steps", "2"]  # a first checkpoint soon
    proc = start("distill.py" if script == "distill" else "finetune.py", args)
    err = interrupt_after_first_checkpoint(proc, tmp_path / "run.partial", signal.SIGTERM)
    assert proc.returncode == 143, err[-2000:]
    step = interrupted_step(err, "distill.py" if script == "distill" else "finetune.py")
    state = torch.load(tmp_path / "run.partial" / "checkpoint" / LOOP_STATE, weights_only=False)
    assert state["loop"]["step"] == step >= 2 and not out.exists()


def test_sigterm_to_a_run_under_torchrun_stops_every_process_at_one_step(teacher_dir, data_dir, tmp_path):
    """A batch system's SIGTERM reaches torchrun and both of its workers: they agree on one step,
    save one checkpoint, and a rerun under torchrun resumes from it."""
    out = tmp_path / "mlm"
    args = training_args("mlm", teacher_dir, data_dir, out, 100000) + ["--eval-steps", "2"]
    err = interrupt_after_first_checkpoint(start("finetune.py", args, "--nproc-per-node=2"),
                                           tmp_path / "mlm.partial", signal.SIGTERM, group=True)
    lines = re.findall(r"finetune\.py: interrupted at step \d+; rerun with --resume[^\n]*", err)  # after progress bars
    # torchrun's own agent prints a traceback for the signal it got; no frame of ours may be in one
    assert len(lines) == 2 and len(set(lines)) == 1 and f'File "{REPO}' not in err, err[-3000:]
    step = interrupted_step(lines[0], "finetune.py")
    assert torch.load(tmp_path / "mlm.partial" / "checkpoint" / LOOP_STATE, weights_only=False)["loop"]["step"] == step
    # finetune.py does not tie a checkpoint to --max-steps: resume for two more steps
    resumed = start("finetune.py", [a if a != "100000" else str(step + 2) for a in args] + ["--resume"],
                    "--nproc-per-node=2")
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming from step {step} of {step + 2}" in err
    run = json.loads((out / "run.json").read_text())
    assert run["world_size"] == 2 and run["steps"] == step + 2
