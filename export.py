#!/usr/bin/env python
"""Export a finetuned DC or ICNER model to ONNX (fp32 and int8), check parity, benchmark latency.

    python export.py --model out/s03_dc --output-dir out/s03_dc_onnx \
        --data ../shared/data/massive-1.1 --locales en-US --benchmark --teacher out/teacher_dc

OUTPUT_DIR/fp32 and OUTPUT_DIR/int8 each hold model.onnx, the tokenizer, labels.json and the
config; parity.json, latency.json and run.json sit beside them. A failed parity check exits 1
with the figures (the folders are kept, to look into).
"""
import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from common.engine import inference_device
from common.models import check_weights
from common.positions import check_max_length
from common.inference import OnnxModel
from common.onnx_models import ISAS, check_isa, export_onnx, optimize_onnx, quantize_onnx
from common.run import (ArgumentParser, UsageError, check_output_dir, partial_dir, positive_float,
                        positive_int, publish, run_cli, run_record, unit_float, write_json_atomic)
from common.task_data import add_data_args, load_task_data
from common.tasks import load_labels, task_of, torch_logits_fn

MAX_ABS_DIFF = 1e-4
MIN_AGREEMENT = 0.99


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="finetune.py output folder (DC or ICNER)")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=True,
                   help="fuse attention, LayerNorm and GELU with onnxruntime's transformer optimiser (default; on a "
                        "4 x 256 student its int8 session took 0.80x the unfused one's time at batch 1)")
    p.add_argument("--no-quantize", action="store_true", help="fp32 only")
    p.add_argument("--isa", choices=("auto",) + ISAS, default="auto", help="int8 kernel target (auto: this CPU)")
    p.add_argument("--per-channel", nargs="?", choices=("auto", "on", "off"), const="on", default="auto",
                   help="per-channel int8 weights: on, off, or auto (per tensor, and per channel where per "
                        "tensor misses the int8 agreement target; a bare --per-channel is on)")
    add_data_args(p, what="dev for the parity check, test for the benchmark")
    p.add_argument("--no-parity", action="store_true", help="skip the parity check")
    p.add_argument("--max-abs-diff", type=positive_float, default=MAX_ABS_DIFF, help="fp32 ONNX vs PyTorch logit tolerance")
    p.add_argument("--min-agreement", type=unit_float, default=MIN_AGREEMENT, help="int8 vs fp32 prediction agreement")
    p.add_argument("--parity-utterances", type=positive_int, help="dev utterances for the parity check (default: all)")
    p.add_argument("--benchmark", action="store_true", help="latency table: teacher, student, ONNX fp32, ONNX int8")
    p.add_argument("--teacher", help="PyTorch teacher for the benchmark (finetuned folder or encoder)")
    p.add_argument("--benchmark-utterances", type=positive_int, default=300, help="test utterances timed at batch 1")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--max-seq-length", type=positive_int, default=64)
    args = p.parse_args(argv)
    if not args.no_parity and not args.data:
        p.error("the parity check needs --data (with a dev split), or pass --no-parity")
    if args.benchmark and not args.data:
        p.error("--benchmark needs --data (with a test split)")
    if args.teacher and not args.benchmark:
        p.error("--teacher is the benchmark's reference: pass --benchmark too")
    return args


def logits_batches(logits_fn, tokenizer, texts, max_length, batch_size=32):
    """Yield (attention mask, {output: logits}) for batches of texts."""
    for start in range(0, len(texts), batch_size):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                        return_tensors="np")
        mask = enc["attention_mask"].astype(np.int64)
        yield mask, logits_fn(enc["input_ids"].astype(np.int64), mask)


def compare(reference_fn, other_fn, tokenizer, texts, max_length):
    """Max abs logit difference (real tokens only) and prediction agreement of two models."""
    max_diff, agree, total = 0.0, {}, {}
    for (mask, ref), (_, other) in zip(logits_batches(reference_fn, tokenizer, texts, max_length),
                                        logits_batches(other_fn, tokenizer, texts, max_length)):
        for name, a in ref.items():
            b = other[name]
            keep = mask.astype(bool) if a.ndim == 3 else np.ones(a.shape[0], bool)
            max_diff = max(max_diff, float(np.abs(a - b)[keep].max()))
            same = a.argmax(-1) == b.argmax(-1)
            agree[name] = agree.get(name, 0) + int(same[keep].sum())
            total[name] = total.get(name, 0) + int(keep.sum())
    return max_diff, {name: agree[name] / total[name] for name in agree}


def per_domain_models(folder):
    """[domain, ...] of a per-domain ICNER folder (finetune.py --all-domains), None for one model; a
    domain its run.json names but whose model is missing is an error."""
    run = Path(folder) / "run.json"
    record = json.loads(run.read_text()) if run.is_file() else {}
    if not record.get("per_domain"):
        return None
    missing = [d for d in record["domains"] if not (Path(folder) / d / "labels.json").is_file()]
    if missing:
        raise UsageError(f"--model {folder}: the per-domain folder has no model for {', '.join(missing)} "
                         f"({Path(folder) / missing[0]}/labels.json missing); finetune it again with --resume")
    return record["domains"]


def check_model(folder, flag, max_length):
    """Before any work: a finetuned model (labels.json) whose positions and weights are usable."""
    labels = load_labels(folder)
    check_max_length(str(folder), max_length, flag)
    check_weights(folder, flag)
    return labels


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    output_dir, work = Path(args.output_dir), partial_dir(args.output_dir)
    check_output_dir(output_dir, args.overwrite, resume=False)
    if not Path(args.model).is_dir():
        raise UsageError(f"--model {args.model}: no such folder")
    domains = per_domain_models(args.model)
    models = {d: Path(args.model) / d for d in domains} if domains else {None: Path(args.model)}
    labels = {d: check_model(folder, "--model", args.max_seq_length) for d, folder in models.items()}
    if args.teacher:  # the benchmark's teacher loads in a child process: check it before any work
        teacher = Path(args.teacher) / domains[0] if domains and per_domain_models(args.teacher) else Path(args.teacher)
        check_max_length(str(teacher), args.max_seq_length, "--teacher")
        check_weights(teacher, "--teacher")
        args.teacher = str(teacher)
    isa = None if args.no_quantize else check_isa(args.isa)
    task = task_of(next(iter(labels.values())))
    dev = test = None
    if args.data:
        dev = load_task_data(args, "dev", task.name)[0]
        test = load_task_data(args, "test", task.name)[0] if args.benchmark else None
        if not dev:
            raise UsageError(f"--data has no dev utterances for locales {args.locales or 'any'}")

    shutil.rmtree(work, ignore_errors=True)
    try:
        failed = export_all(args, work, models, labels, isa, dev, test, started)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)  # nothing half-written stays behind
        raise
    publish(work, output_dir)
    print(f"exported to {output_dir}/" + ("<domain>/" if domains else "") + "fp32"
          + (f" and int8 ({isa})" if isa else ""), file=sys.stderr)
    if failed:
        print(f"export.py: parity check failed: {'; '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def export_all(args, work, models, labels, isa, dev, test, started):
    """One model into work/, or each domain's into work/<domain>/ with its own parity on that
    domain's dev utterances (the benchmark times the first domain's) and a summary on top."""
    if None in models:
        return export_and_check(args, work, labels[None], isa, dev, test, started)
    failed, summary = [], {}
    for i, (domain, folder) in enumerate(models.items()):
        print(f"== domain {domain}", file=sys.stderr)
        mine = argparse.Namespace(**{**vars(args), "model": str(folder), "benchmark": args.benchmark and i == 0})
        in_domain = [u for u in dev if u.domain == domain] if dev is not None else None
        # each domain's model is checked on its own domain's dev utterances (on all of dev if it has none)
        failed += [f"{domain}: {f}" for f in export_and_check(mine, work / domain, labels[domain], isa, in_domain or dev,
                                                               test, started)]
        summary[domain] = json.loads((work / domain / "parity.json").read_text()) if (work / domain / "parity.json").is_file() else None
    parity = {"per_domain": summary, "failed": failed}
    write_json_atomic(work / "parity.json", parity)
    write_json_atomic(work / "run.json", run_record(
        "export.py", args, task=next(iter(labels.values()))["task"], per_domain=True, domains=list(models), isa=isa, parity_failed=failed,
        timings={"wall_s": round(time.time() - started, 3)}))
    if args.benchmark and (work / next(iter(models)) / "latency.json").is_file():
        shutil.copy(work / next(iter(models)) / "latency.json", work / "latency.json")
    return failed


def export_and_check(args, work, labels, isa, dev, test, started):
    """Export, quantise, check parity, benchmark, all in `work`; returns the failed parity checks."""
    model, tokenizer, _ = export_onnx(args.model, work / "fp32")
    if args.optimize:
        optimize_onnx(work / "fp32", model)
    per_channel = args.per_channel == "on"
    if isa:
        quantize_onnx(work / "fp32", work / "int8", isa, per_channel)
    run = run_record("export.py", args, task=labels["task"], isa=isa)

    failed = []
    if not args.no_parity:
        parity = check_parity(args, model, tokenizer, dev, work, task_of(labels))
        if isa and args.per_channel == "auto" and int8_failed(parity):
            parity = try_per_channel(args, tokenizer, dev, work, task_of(labels), isa, parity)
            per_channel = parity["per_channel"]
        if isa:
            parity["per_channel"] = per_channel
        write_json_atomic(work / "parity.json", parity)
        run["parity"] = parity
        failed = parity["failed"]
    run["int8_per_channel"] = bool(isa) and per_channel
    if args.benchmark:
        run["latency"] = run_benchmark(args, work, test, dev, task_of(labels), run["int8_per_channel"])
        write_json_atomic(work / "latency.json", run["latency"])
    run["timings"] = {"wall_s": round(time.time() - started, 3)}
    write_json_atomic(work / "run.json", run)
    return failed


def check_parity(args, model, tokenizer, dev, work, task):
    dev = dev[:args.parity_utterances]
    texts = [u.text for u in dev]
    torch_fn = torch_logits_fn(model.eval().to(inference_device()), inference_device())
    fp32 = OnnxModel(work / "fp32", args.threads)
    diff, _ = compare(torch_fn, fp32.logits_fn, tokenizer, texts, args.max_seq_length)
    parity = {"utterances": len(texts), "fp32_vs_torch_max_abs_diff": diff, "max_abs_diff_target": args.max_abs_diff,
              "failed": []}
    if diff > args.max_abs_diff:
        parity["failed"].append(f"fp32 ONNX differs from PyTorch by {diff:.2e} > {args.max_abs_diff:.0e}")
    metrics = {"fp32": task.score(dev, fp32.predict(texts, args.max_seq_length), bootstrap=0)}
    if (work / "int8").exists():
        agreement, failed, metrics["int8"] = int8_parity(args, fp32, work / "int8", tokenizer, dev, task)
        parity.update(int8_vs_fp32_agreement=agreement, agreement_target=args.min_agreement)
        parity["failed"] += failed
        parity["dev_headline_drop_points"] = round(100 * (task.headline(metrics["fp32"]) - task.headline(metrics["int8"])), 3)
    parity["dev_metrics"] = {k: without_per_label(m) for k, m in metrics.items()}
    print_parity(parity, metrics, task)
    return parity


def int8_parity(args, fp32, folder, tokenizer, dev, task):
    """(agreement per output, failed checks, dev metrics) of the int8 model in `folder` against fp32."""
    texts, int8 = [u.text for u in dev], OnnxModel(folder, args.threads)
    _, agreement = compare(fp32.logits_fn, int8.logits_fn, tokenizer, texts, args.max_seq_length)
    failed = [f"int8 agrees with fp32 on {100 * share:.2f}% of {name} < {100 * args.min_agreement:.1f}%"
              for name, share in agreement.items() if share < args.min_agreement]
    return agreement, failed, task.score(dev, int8.predict(texts, args.max_seq_length), bootstrap=0)


def int8_failed(parity):
    return any(f.startswith("int8 ") for f in parity["failed"])


def try_per_channel(args, tokenizer, dev, work, task, isa, parity):
    """Per-tensor int8 missed the agreement target: quantise per channel (5-12% slower sessions at
    batch 1 on the student pilot's exports, docs/export.md) and keep whichever agrees with fp32 more."""
    print("int8 per tensor misses the agreement target: quantising per channel ...", file=sys.stderr)
    dev = dev[:args.parity_utterances]
    quantize_onnx(work / "fp32", work / "int8-per-channel", isa, True)
    fp32 = OnnxModel(work / "fp32", args.threads)
    agreement, failed, metrics = int8_parity(args, fp32, work / "int8-per-channel", tokenizer, dev, task)
    tried = {"int8_vs_fp32_agreement": agreement, "failed": failed}
    if min(agreement.values()) <= min(parity["int8_vs_fp32_agreement"].values()):
        shutil.rmtree(work / "int8-per-channel")
        return {**parity, "per_channel": False, "per_channel_tried": tried}
    shutil.rmtree(work / "int8")
    os.replace(work / "int8-per-channel", work / "int8")
    fp32_metrics = parity["dev_metrics"]["fp32"]
    parity = {**parity, "int8_vs_fp32_agreement": agreement, "per_channel": True,
              "per_tensor_tried": {"int8_vs_fp32_agreement": parity["int8_vs_fp32_agreement"],
                                   "failed": [f for f in parity["failed"] if f.startswith("int8 ")]},
              "failed": [f for f in parity["failed"] if not f.startswith("int8 ")] + failed,
              "dev_metrics": {"fp32": fp32_metrics, "int8": without_per_label(metrics)},
              "dev_headline_drop_points": round(100 * (task.headline(fp32_metrics) - task.headline(metrics)), 3)}
    print_parity(parity, parity["dev_metrics"], task)
    return parity


def without_per_label(metrics):
    return {m: v for m, v in metrics.items() if not m.startswith("per_")}


def print_parity(parity, metrics, task):
    print(f"parity: fp32 vs PyTorch max |diff| {parity['fp32_vs_torch_max_abs_diff']:.2e}; "
          + (f"int8{' (per channel)' if parity.get('per_channel') else ''} vs fp32 agreement "
             f"{parity['int8_vs_fp32_agreement']}; " if "int8_vs_fp32_agreement" in parity else "")
          + f"dev {task.headline_label}: "
          + ", ".join(f"{k} {100 * task.headline(m):.2f}" for k, m in metrics.items()), file=sys.stderr)


def teacher_onnx(args, work, per_channel):
    """The no-distillation alternative a deployment engineer weighs: the finetuned teacher itself,
    exported and quantised as the student is, per channel or not (work/teacher/{fp32,int8}); none
    for a bare encoder."""
    from common.tasks import LABELS_FILE
    if not args.teacher or not (Path(args.teacher) / LABELS_FILE).is_file():
        return []
    print("exporting the teacher for its own ONNX rows ...", file=sys.stderr)
    model, _, _ = export_onnx(args.teacher, work / "teacher" / "fp32")
    if args.optimize:
        optimize_onnx(work / "teacher" / "fp32", model)
    rows = [("ONNX fp32 teacher", "onnx", work / "teacher" / "fp32")]
    if (work / "int8").exists():
        quantize_onnx(work / "teacher" / "fp32", work / "teacher" / "int8", check_isa(args.isa), per_channel)
        rows.append(("ONNX int8 teacher", "onnx", work / "teacher" / "int8"))
    return rows


def dev_scores(models, dev, task, max_length):
    """Each model's dev headline (DC accuracy, ICNER exact match) beside its latency. A PyTorch
    model scores as its fp32 ONNX export does (parity holds them within 1e-4 of each other)."""
    if not dev:
        return {}
    onnx = {folder: task.headline(task.score(dev, OnnxModel(folder).predict([u.text for u in dev], max_length),
                                             bootstrap=0)) for _, kind, folder in models if kind == "onnx"}
    same_as = {"PyTorch fp32 teacher": "ONNX fp32 teacher", "PyTorch fp32 student": "ONNX fp32 student"}
    folder_of = {name: folder for name, kind, folder in models if kind == "onnx"}
    return {name: onnx.get(folder) if kind == "onnx" else onnx.get(folder_of.get(same_as.get(name.replace(" GPU", ""))))
            for name, kind, folder in models}


def run_benchmark(args, work, test, dev, task, per_channel):
    from common.latency import benchmark, cpu_name, size_on_disk_mb, within_spread
    texts = [u.text for u in test][:args.benchmark_utterances]
    texts32 = [u.text for u in test][:max(32 * 3, args.benchmark_utterances)]
    models = []
    if args.teacher:
        models.append(("PyTorch fp32 teacher", "torch", args.teacher))
    models += teacher_onnx(args, work, per_channel)
    models += [("PyTorch fp32 student", "torch", args.model), ("ONNX fp32 student", "onnx", work / "fp32")]
    if (work / "int8").exists():
        models.append(("ONNX int8 student", "onnx", work / "int8"))
    if inference_device().type == "cuda":  # the CPU rows stay; the GPU adds its own
        models += [(name.replace("PyTorch", "PyTorch GPU"), "torch-cuda", folder)
                   for name, kind, folder in models if kind == "torch"]
    accuracy = dev_scores(models, dev[:args.parity_utterances] if dev else None, task, args.max_seq_length)
    rows = []
    for name, kind, folder in models:
        print(f"benchmarking {name} ...", file=sys.stderr)
        (batch_1, batch_32), peak_mb = benchmark(kind, folder, [(1, texts), (32, texts32)], args.threads)
        rows.append({"model": name, "folder": str(folder), "size_mb": size_on_disk_mb(folder),
                     "batch_1": batch_1, "batch_32": batch_32, "peak_memory_mb": peak_mb,
                     "dev_headline": accuracy.get(name)})
    base = rows[0]["batch_1"]["p50_ms"]
    for row, alike in zip(rows, within_spread(rows)):
        row["speedup_p50_batch_1"] = round(base / row["batch_1"]["p50_ms"], 2)
        row["within_spread_of"] = alike
    print(f"\nlatency, {args.threads} threads, tokenisation included (ms; throughput in utterances/s):")
    print(f"{'':<3}{'model':<22}{'MB':>8}{'b1 p50':>9}{'p95':>8}{'p99':>8}{'b1 /s':>8}{'b32 p50':>9}{'b32 /s':>8}"
          f"{'peak MB':>9}{'x':>7}{'dev':>8}  b1 p50 within the spread of")
    number = {r["model"]: str(i + 1) for i, r in enumerate(rows)}
    for i, r in enumerate(rows):
        b1, b32 = r["batch_1"], r["batch_32"]
        dev_cell = "" if r["dev_headline"] is None else f"{100 * r['dev_headline']:.2f}"
        print(f"{i + 1:<3}{r['model']:<22}{r['size_mb']:>8.1f}{b1['p50_ms']:>9.2f}{b1['p95_ms']:>8.2f}{b1['p99_ms']:>8.2f}"
              f"{b1['throughput_per_s']:>8.0f}{b32['p50_ms']:>9.1f}{b32['throughput_per_s']:>8.0f}"
              f"{r['peak_memory_mb']:>9.0f}{r['speedup_p50_batch_1']:>7.1f}{dev_cell:>8}  "
              + (", ".join(number[m] for m in r["within_spread_of"]) or "-"))
    print("(the spread: each row's batch-1 p50 over 3 rounds of the same utterances; rows within each other's "
          "spread are not told apart)")
    print(f"dev: {task.headline_label} on {len((dev or [])[:args.parity_utterances])} dev utterances "
          "(PyTorch rows: their fp32 export's, which parity holds equal)")
    return {"threads": args.threads, "utterances_batch_1": len(texts), "utterances_batch_32": len(texts32),
            "cpu": cpu_name(), "cores": os.cpu_count(), "dev_metric": task.headline_metric,
            "rows": rows}


if __name__ == "__main__":
    sys.exit(run_cli(main))
