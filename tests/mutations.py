"""Each strengthened or new test of issue 34 against a deliberately broken version of the code it
covers: apply one mutation, run the test, expect it to FAIL, restore the file.

    python tests/mutations.py [NAME ...]   # from anywhere; NAME: part of a mutation's name

A mutation whose text is no longer in its file stops the run: update the list with the code."""
import os
import subprocess
import sys
from pathlib import Path

os.chdir(Path(__file__).resolve().parents[1])  # the repository: the paths below are relative to it

MUTATIONS = [  # (name, file, text, broken text, the tests that must fail)
 ("slot end one char short", "common/massive.py", "slots.append(Slot(slot_type, start, end))",
  "slots.append(Slot(slot_type, start, end - 1 if end - start > 1 else end))",
  "tests/test_massive.py -k bracketed_text and en-US"),
 ("KL without T^2", "common/losses.py", 'reduction="batchmean") * temperature ** 2', 'reduction="batchmean")',
  "tests/test_losses.py -k hand_computed"),
 ("MSE over padding", "common/losses.py", "return F.mse_loss(student_hidden[mask].float(), teacher_hidden[mask].float())",
  "return F.mse_loss(student_hidden.float(), teacher_hidden.float())", "tests/test_losses.py -k hand_computed"),
 ("cosine summed", "common/losses.py", "return (1 - cos).mean()", "return (1 - cos).sum()", "tests/test_losses.py -k hand_computed"),
 ("relations over padded keys", "common/losses.py", 'log_rel.append(F.log_softmax(scores.masked_fill(keys_out, float("-inf")), dim=-1))',
  "log_rel.append(F.log_softmax(scores, dim=-1))", "tests/test_losses.py -k hand_computed"),
 ("no gradient sync", "common/engine.py", "return nullcontext() if index == count - 1 else self.accelerator.no_sync(model)",
  "return self.accelerator.no_sync(model)", "tests/test_engine.py -k two_processes"),
 ("dev split between processes", "finetune.py", "    labels = task.build_labels(train)\n",
  "    labels = task.build_labels(train)\n    dev = dev[engine.rank::engine.world_size]\n", "tests/test_engine.py -k two_processes"),
 ("distill resume without the stream's place", "distill.py", "        stream.load_state_dict(state[\"stream\"])\n", "        pass\n",
  "tests/test_cli.py -k sigint and distill"),
 ("distill loss window not kept", "distill.py", 'window = loop.get("window", {"steps": 0, "loss": 0.0, "parts": {}})',
  'window = {"steps": 0, "loss": 0.0, "parts": {}}', "tests/test_cli.py -k sigint and distill and not streaming"),
 ("streamed corpus not fast-forwarded", "common/transfer.py", "if skipped < start:", "if False:",
  "tests/test_cli.py -k sigint and streaming"),
 ("the loop: no checkpoint at the stop", "common/training_loop.py", "if evaluated or periodic or stopping:",
  "if evaluated or periodic:", "tests/test_cli.py -k sigint or torchrun"),
 ("SIGTERM not caught by the loops", "common/run.py", "        for signum in (signal.SIGINT, signal.SIGTERM):\n            self._previous",
  "        for signum in (signal.SIGINT,):\n            self._previous", "tests/test_cli.py -k sigterm_stops"),
 ("a .partial made before the output check", "distill.py", "    check_output_dir(output_dir, args.overwrite, args.resume)\n    weights",
  "    try:\n        work_dir.mkdir()\n    except OSError:\n        pass\n    check_output_dir(output_dir, args.overwrite, args.resume)\n    weights",
  "tests/test_cli.py -k outputs_are_checked"),
 ("parity figure made up", "export.py", "    parity = {\"utterances\": len(texts), \"fp32_vs_torch_max_abs_diff\": diff,",
  "    diff = 0.0\n    parity = {\"utterances\": len(texts), \"fp32_vs_torch_max_abs_diff\": diff,", "tests/test_export.py -k export_parity"),
 ("int8 is fp32 copied", "common/onnx_models.py", "def quantize_onnx(src, dst, isa, per_channel):\n",
  "def quantize_onnx(src, dst, isa, per_channel):\n    shutil.copytree(src, dst, dirs_exist_ok=True); return\n", "tests/test_export.py -k export_parity"),
 ("classes unnamed in the export", "common/onnx_models.py", "        model = task.model_class().from_pretrained(model_dir).eval()\n",
  "        model = task.model_class().from_pretrained(model_dir).eval()\n        model.config.id2label = {i: f'LABEL_{i}' for i in model.config.id2label}\n",
  "tests/test_export.py -k optimum"),
 ("the last model kept, not the best", "finetune.py", "    else:\n        loop[\"stale\"] += 1\n",
  "    else:\n        loop[\"stale\"] += 1\n        if engine.is_main:\n            engine.unwrap(model).save_pretrained(work_dir)\n",
  "tests/test_finetune.py -k early_stopping"),
 ("patience off by one", "common/training_loop.py", 'loop["stale"] >= cadence.patience)', 'loop["stale"] > cadence.patience)',
  "tests/test_finetune.py -k early_stopping"),
 ("one micro-batch per step", "common/training_loop.py", "for micro in range(cadence.grad_accum):", "for micro in range(1):",
  "tests/test_finetune.py -k accumulation"),
 ("slot-loss-coef ignored by the loss", "common/joint_model.py", "self.config.slot_loss_coef * ce(", "ce(",
  "tests/test_finetune.py -k slot_loss_coef"),
 ("slot-loss-coef not passed on", "finetune.py", "task.new_model(args.model, labels, args.slot_loss_coef)",
  "task.new_model(args.model, labels, 1.0)",
  "tests/test_finetune.py -k slot_loss_coef"),
 ("--lr-scheduler ignored", "common/training_loop.py", "scheduler = get_scheduler(args.lr_scheduler,", "scheduler = get_scheduler(\"linear\",",
  "tests/test_distill.py -k lr_scheduler"),
 ("--max-grad-norm ignored", "distill.py", "Cadence(max_steps, args.seed, args.grad_accum, args.max_grad_norm,",
  "Cadence(max_steps, args.seed, args.grad_accum, 1.0,", "tests/test_distill.py -k max_grad_norm"),
 ("an interrupted job reported as failed", "reproduce.sh", "if [[ $1 == 130 || $1 == 143 ]]; then", "if false; then",
  "tests/test_study.py -k interrupted_job"),
 ("predict answers out of order", "predict.py", "    answers = iter(predictor(filled) if filled else [])",
  "    answers = iter(predictor(filled)[::-1] if filled else [])", "tests/test_export.py -k predict_answers"),
 ("p95 is p90", "common/latency.py", "np.percentile(ms, 95)", "np.percentile(ms, 90)", "tests/test_export.py -k known_clock"),
 ("warm-up calls timed", "common/latency.py", "        for batch in batches[:warmup]:\n            run(batch)\n", "",
  "tests/test_export.py -k known_clock"),
 ("the example drops an utterance", "docs/examples/massive_as_your_data.py", "write_bio(out / \"slots\" / name, utterances)",
  "write_bio(out / \"slots\" / name, utterances[:-1])", "tests/test_task_data.py -k own_data_example"),
 # SLURM's (a cluster: SLURM_CONF, docs/slurm.md)
 ("the aggregation runs after a failed task", "common/slurm.sh", 'after=(--dependency "afterok:$array")',
  'after=(--dependency "afterany:$array")', "tests/test_slurm.py -k matches"),
 ("a finished job submitted again", "common/slurm.sh", 'job_finished "${job[@]}" || echo "${job[*]}"',
  'echo "${job[*]}"', "tests/test_slurm.py -k matches"),
]

only = sys.argv[1:]
failures = []
for name, path, old, new, selector in MUTATIONS:
    if only and not any(o in name for o in only):
        continue
    file = Path(path)
    original = file.read_text()
    assert original.count(old) == 1, (name, original.count(old))
    file.write_text(original.replace(old, new))
    try:
        files, _, expr = selector.partition(" -k ")
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *files.split()] + (["-k", expr] if expr else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        out = proc.stdout
        ran = "no tests ran" not in out and proc.returncode != 5
        caught = proc.returncode == 1 and ran
        print(f"{'CAUGHT' if caught else 'MISSED'}  {name}  ({selector}; rc {proc.returncode})", flush=True)
        if not caught:
            failures.append(name)
            print(out[-1500:])
    finally:
        file.write_text(original)
print("missed:", failures)
