"""What every script shares: numbers checked at parse time, outputs checked before any work,
SIGINT / SIGTERM that stop at a safe point with one line."""
import signal
import subprocess
import sys
import time

import pytest

import distill
from common.engine import LOOP_STATE
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
    (predict, "--max-length", "0", "not a positive integer"),
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
    expect_usage_error(capsys, script.main, REQUIRED[script] + [flag, value], f"argument {flag}: ")
    expect_usage_error(capsys, script.main, REQUIRED[script] + [flag, value], message)


def test_sequence_length_beyond_the_models_positions(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    expect_usage_error(capsys, finetune.main, ["--task", "dc", "--model", str(teacher_dir), "--data",
                                               str(data_dir / "massive"), "--output-dir", str(out),
                                               "--max-seq-length", "100000"], "exceeds the 128 positions", out)


def test_outputs_are_checked_before_any_work(teacher_dir, data_dir, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me")
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
    assert a_file.read_text() == "keep me"
    for target, message in (("/proc/m.json", "cannot write in /proc"), (str(tmp_path), "is a folder, not a file")):
        expect_usage_error(capsys, evaluate.main, ["--model", str(teacher_dir), "--data", str(data_dir / "massive"),
                                                   "--output", target], message)


def start(script, args):
    env = script_env(OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / script), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def interrupt_when_training(proc, work_dir, signum):
    """Send signum once the run is in its training loop (its work folder exists), return stderr."""
    deadline = time.time() + 240
    while not work_dir.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(2.0)  # into the training loop
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    return err


def interrupted_step(err, script):
    """The step named by the one line a clean interruption prints last."""
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"{script}: interrupted at step ") and "rerun with --resume to continue" in last, last
    assert "Traceback" not in err
    return int(last.split("at step ")[1].split(";")[0])


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_distill_stops_cleanly_on_a_signal_and_resumes(teacher_dir, data_dir, tmp_path, signum, code):
    out = tmp_path / "student"
    args = ["--teacher", str(teacher_dir), "--generic-data", str(data_dir / "wiki.jsonl"), "--target-data",
            str(data_dir / "massive"), "--locales", "en-US", "--target-ratio", "0.3", "--output-dir", str(out),
            "--max-steps", "1500", "--batch-size", "4", "--max-seq-length", "16", "--student-layers", "1",
            "--student-hidden", "16", "--student-heads", "2", "--save-steps", "100000"]
    proc = start("distill.py", args)
    err = interrupt_when_training(proc, tmp_path / "student.partial", signum)
    assert proc.returncode == code, err[-2000:]
    step = interrupted_step(err, "distill.py")
    assert (tmp_path / "student.partial" / "checkpoint" / LOOP_STATE).is_file() and not out.exists()
    resumed = start("distill.py", args + ["--resume"])
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-2000:]
    assert f"resuming from step {step} of 1500" in err and out.is_dir()


@pytest.mark.parametrize("task", ["icner", "mlm"])
def test_finetune_stops_cleanly_on_sigint_and_resumes(teacher_dir, data_dir, tmp_path, task):
    out = tmp_path / task
    args = ["--task", task, "--model", str(teacher_dir), "--data", str(data_dir / "massive"), "--locales", "en-US",
            "--output-dir", str(out), "--max-steps", "100000", "--batch-size", "4", "--max-seq-length", "16",
            "--eval-steps", "100000", "--head-warmup-steps", "0"]
    proc = start("finetune.py", args)
    err = interrupt_when_training(proc, tmp_path / f"{task}.partial", signal.SIGINT)
    assert proc.returncode == 130, err[-2000:]
    step = interrupted_step(err, "finetune.py")
    # finetune.py does not tie a checkpoint to --max-steps: resume for two more steps
    resumed = start("finetune.py", [a if a != "100000" else str(step + 2) for a in args] + ["--resume"])
    _, err = resumed.communicate(timeout=240)
    assert resumed.returncode == 0, err[-2000:]
    assert f"resuming from step {step} of {step + 2}" in err and out.is_dir()
