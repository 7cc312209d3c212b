"""The training engine under the three loops: resume after SIGKILL gives the same weights,
torchrun with two processes, checkpoints refused on another precision or world size, and the
same scripts on CUDA (tests marked gpu, skipped without one)."""
import json
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from common.engine import LOOP_STATE, Engine
from common.massive import load_massive
from common.run import UsageError
from conftest import REPO, same_weights, script_env, start_nodes

ENV = script_env(OMP_NUM_THREADS="1")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def finetune_args(task, teacher, data_dir, out, steps=40):
    return ["--task", task, "--model", str(teacher), "--data", str(data_dir / "massive"), "--locales", "en-US",
            "--output-dir", str(out), "--max-steps", str(steps), "--eval-steps", "8", "--batch-size", "8",
            "--max-seq-length", "32", "--lr", "3e-3", "--head-warmup-steps", "3"]


def start(script, args, *torchrun):
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", *torchrun] if torchrun else [sys.executable]
    return subprocess.Popen([*launcher, str(REPO / script), *args], env=ENV, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-8000:]
    return err


@pytest.mark.parametrize("task", ["dc", "icner", "mlm"])
def test_finetune_resumes_after_sigkill_with_the_same_weights(teacher_dir, data_dir, tmp_path, task):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    finish(start("finetune.py", finetune_args(task, teacher_dir, data_dir, straight)))
    proc = start("finetune.py", finetune_args(task, teacher_dir, data_dir, killed))
    state = tmp_path / "killed.partial" / "checkpoint" / LOOP_STATE
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # right after the first checkpoint
    proc.wait()
    assert not killed.exists(), "the run finished before it could be killed"
    err = finish(start("finetune.py", finetune_args(task, teacher_dir, data_dir, killed) + ["--resume"]))
    assert re.search(r"resuming from step (8|16|24|32) of 40", err), err[-2000:]
    same_weights(straight, killed)
    a, b = (json.loads((d / "run.json").read_text()) for d in (straight, killed))
    assert a["history"] == b["history"]


def weights(folder):
    return load_file(folder / "model.safetensors")


def test_two_processes_train_the_weights_of_one_at_the_same_global_batch(dropout_free_teacher_dir, data_dir,
                                                                          tmp_path):
    """DDP averages the gradients of each process's half of the batch: 2 processes of 8 train the
    weights of 1 process of 16, up to float rounding (the halves are summed in another order).
    Without gradient sync each process would follow its own half; dev is scored whole by each."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = lambda out, batch: [a if a != "8" else str(batch)  # noqa: E731
                               for a in finetune_args("dc", dropout_free_teacher_dir, data_dir, out, steps=6)]
    import finetune
    assert finetune.main(args(one, 16)) == 0
    finish(start("finetune.py", args(two, 8), "--nproc-per-node=2"))
    for node in start_nodes("finetune.py", args(tmp_path / "two_nodes", 8), ENV):  # the same world over two launchers
        finish(node)
    same_weights(two, tmp_path / "two_nodes")
    run_one, run_two = (json.loads((d / "run.json").read_text()) for d in (one, two))
    assert run_two["world_size"] == 2 and run_two["device"].startswith("cpu") and run_two["precision"] == "fp32"
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)
    initial = {"bert." + k: v for k, v in weights(dropout_free_teacher_dir).items()}
    assert max((b[k] - initial[k]).abs().max().item() for k in b if k in initial) > 1e-3  # it trained
    dev, _ = load_massive(data_dir / "massive", ["en-US"], ["dev"])
    assert run_two["dev_metrics"]["n"] == len(dev) == run_one["dev_metrics"]["n"]
    assert [h["dev"] for h in run_two["history"]] == [h["dev"] for h in run_one["history"]]


def test_a_checkpoint_from_another_precision_or_world_size_is_refused(tmp_path):
    engine = Engine("fp32")
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = engine.prepare(model, optimizer, scheduler)
    engine.save(tmp_path / "checkpoint", {"loop": {"step": 3}})
    assert engine.load(tmp_path / "checkpoint") == {"loop": {"step": 3}}
    state = torch.load(tmp_path / "checkpoint" / LOOP_STATE, weights_only=False)
    state["engine"] = {"precision": "bf16", "world_size": 4}
    torch.save(state, tmp_path / "checkpoint" / LOOP_STATE)
    with pytest.raises(UsageError, match=r"made with precision bf16 \(now fp32\), world_size 4 \(now 1\)"):
        engine.load(tmp_path / "checkpoint")
    engine.release()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_half_precision_without_a_gpu_is_one_line(teacher_dir, data_dir, tmp_path, capsys):
    import finetune
    from conftest import expect_usage_error
    for precision in ("bf16", "fp16"):
        expect_usage_error(capsys, finetune.main, finetune_args("dc", teacher_dir, data_dir, tmp_path / "x")
                           + ["--precision", precision], f"--precision {precision} needs a GPU", tmp_path / "x")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_every_loop_on_cuda(teacher_dir, data_dir, tmp_path, precision):
    """distill.py, finetune.py (dc, icner, mlm) and evaluate.py on the GPU."""
    student = tmp_path / "student"
    finish(start("distill.py", ["--teacher", str(teacher_dir), "--generic-data", str(data_dir / "wiki.jsonl"),
                                "--target-data", str(data_dir / "massive"), "--locales", "en-US",
                                "--target-ratio", "0.3", "--output-dir", str(student), "--max-steps", "10",
                                "--log-steps", "2", "--lr", "3e-3", "--batch-size", "8", "--max-seq-length", "32", "--student-layers", "2",
                                "--student-hidden", "16", "--student-heads", "2", "--precision", precision]))
    runs = [json.loads((student / "run.json").read_text())]
    for task in ("dc", "icner", "mlm"):
        out = tmp_path / task
        finish(start("finetune.py", finetune_args(task, student, data_dir, out, steps=10) + ["--precision", precision]))
        runs.append(json.loads((out / "run.json").read_text()))
    assert all(r["device"].startswith("cuda") and r["precision"] == precision for r in runs)
    curve = runs[0]["loss_curve"]
    assert curve[-1]["loss"] < curve[0]["loss"]  # the GPU's steps train the student
    # the model trained on the GPU scores alike there and on the CPU (fp32 inference on both)
    scores = {}
    for device, env in (("cuda", {}), ("cpu", {"CUDA_VISIBLE_DEVICES": ""})):
        metrics = tmp_path / f"{device}.json"
        proc = subprocess.run([sys.executable, str(REPO / "evaluate.py"), "--model", str(tmp_path / "icner"), "--data",
                               str(data_dir / "massive"), "--locales", "en-US", "--output", str(metrics),
                               "--bootstrap", "0"], env={**ENV, **env}, cwd=REPO, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        scores[device] = json.loads(metrics.read_text())
    assert scores["cuda"]["device"].startswith("cuda") and scores["cpu"]["device"] == "cpu"
    for name in ("intent_accuracy", "exact_match"):
        assert abs(scores["cuda"]["metrics"][name] - scores["cpu"]["metrics"][name]) <= 0.02, name


@pytest.mark.parametrize("loop", ["dc", "icner", "mlm", "distill"])
def test_every_loop_has_one_optimizer_no_decay_on_biases_and_norms_and_the_lr_scheduler(
        teacher_dir, data_dir, tmp_path, monkeypatch, loop):
    """The optimizer and schedule of every loop come from training_loop.optimizer_and_schedule:
    --lr-scheduler is honoured, and no bias or LayerNorm weight is decayed."""
    import common.training_loop as training_loop
    import distill
    import finetune
    built = []
    real = training_loop.optimizer_and_schedule

    def recorded(model, args, max_steps, device):
        optimizer, scheduler = real(model, args, max_steps, device)
        names = {id(p): n for n, p in model.named_parameters()}
        built.append({"decayed": [names[id(p)] for g in optimizer.param_groups if g["weight_decay"] for p in g["params"]],
                      "undecayed": [names[id(p)] for g in optimizer.param_groups if not g["weight_decay"] for p in g["params"]],
                      "scheduler": scheduler})
        return optimizer, scheduler
    for module in ("finetune", "distill", "common.mlm_training"):
        monkeypatch.setattr(f"{module}.optimizer_and_schedule", recorded)
    common = ["--output-dir", str(tmp_path / loop), "--max-steps", "4", "--lr-scheduler", "constant_with_warmup",
              "--warmup-ratio", "0.5", "--batch-size", "8"]
    if loop == "distill":
        distill.main(["--teacher", str(teacher_dir), "--generic-data", str(data_dir / "wiki.jsonl"),
                      "--target-data", str(data_dir / "massive"), "--locales", "en-US", "--target-ratio", "0.5", "--student-layers", "1", "--student-hidden", "32", "--student-heads", "2",
                      "--student-intermediate", "64", "--max-seq-length", "16", *common])
    else:
        finetune.main(["--task", loop, "--model", str(teacher_dir), "--data", str(data_dir / "massive"),
                       "--locales", "en-US", "--max-seq-length", "16", *common]
                      + (["--head-warmup-steps", "0"] if loop == "mlm" else []))
    [one] = built
    assert one["decayed"] and all(not n.endswith(("bias", "LayerNorm.weight")) for n in one["decayed"])
    assert any(n.endswith("LayerNorm.weight") for n in one["undecayed"])
    assert all(n.endswith(training_loop.NO_DECAY) for n in one["undecayed"])
    assert [lr / one["scheduler"].base_lrs[0] for lr in one["scheduler"].get_last_lr()][0] == 1.0  # warm-up done: constant


def test_two_nodes_of_one_process_train_the_weights_of_one_node_of_two(teacher_dir, data_dir, tmp_path):
    """The same world of 2 processes over two launchers instead of one: identical weights (ICNER
    here; DC and distillation in their two-process tests)."""
    one_node, two_nodes = tmp_path / "one_node", tmp_path / "two_nodes"
    finish(start("finetune.py", finetune_args("icner", teacher_dir, data_dir, one_node, steps=6), "--nproc-per-node=2"))
    for node in start_nodes("finetune.py", finetune_args("icner", teacher_dir, data_dir, two_nodes, steps=6), ENV):
        finish(node)
    assert json.loads((two_nodes / "run.json").read_text())["world_size"] == 2
    same_weights(one_node, two_nodes)
