#!/usr/bin/env python
"""Evaluate a finetuned DC or ICNER model on a MASSIVE partition.

    python evaluate.py --model out/dc --data massive-1.1/ --locales en-US --output metrics.json

DC: accuracy, macro-F1, per-domain accuracy. ICNER: intent accuracy, slot precision/recall/F1
(seqeval, micro and per slot type), SemER and exact match, per domain and per locale. 95%
bootstrap confidence intervals for the headline numbers. A folder of per-domain ICNER models
(finetune.py --all-domains) is evaluated with each utterance sent to its domain's model. A package
(package.py) is scored end to end: DC accuracy, and ICNER with each utterance routed by the DC
model's prediction and, beside it, by its gold domain.
"""
import json
import time
from pathlib import Path

import torch

from common.bio import ceiling_report, slot_ceiling
from common.engine import inference_device
from common.inference import TorchModel, open_model
from common.utterance import SPLITS, sample
from common.positions import check_max_length
from common.pipeline import Pipeline, checked_folder, is_package, print_scores, score_package, with_domains
from common.run import (ArgumentParser, UsageError, check_output_file, non_negative_int, positive_int, run_cli,
                        versions, write_json_atomic)
from common.task_data import add_data_args, load_task_data
from common.tasks import TASKS


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--model", required=True, help="finetune.py output folder, an export.py fp32/int8 folder, or a package")
    add_data_args(p, required=True, what="its --split is scored")
    p.add_argument("--split", default="test", choices=SPLITS)
    p.add_argument("--task", choices=list(TASKS), help="fail unless the model is of this task")
    p.add_argument("--output", help="metrics JSON file")
    p.add_argument("--max-utterances", type=positive_int, help="evaluate a fixed random sample of N utterances (quick runs)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--max-seq-length", type=positive_int, default=64)
    p.add_argument("--bootstrap", type=non_negative_int, default=1000, help="bootstrap resamples for the CIs (0: none)")
    p.add_argument("--threads", type=positive_int)
    return p.parse_args(argv)


def is_torch(model):
    return isinstance(next(iter(model.values())) if isinstance(model, dict) else model, TorchModel)


def load_one(folder, max_length):
    """A PyTorch folder, or an exported ONNX folder (export.py's fp32/ or int8/)."""
    check_max_length(str(folder), max_length)
    return open_model(folder)


def load_model(folder, max_length):
    """(task, model): one model, {domain: model} for a per-domain ICNER folder, or a Pipeline
    for a package (task None: it is scored as a system)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--model {folder}: no such folder")
    if is_package(folder):  # DC routing to ICNER: scored end to end
        check_max_length(str(checked_folder(folder)), max_length)
        return None, Pipeline(folder)
    run = folder / "run.json"
    record = json.loads(run.read_text()) if run.is_file() else {}
    if record.get("per_domain") and record.get("script") == "export.py":  # an exported one: each domain's int8
        models = {d: load_one(folder / d / ("int8" if (folder / d / "int8").is_dir() else "fp32"), max_length)
                  for d in record["domains"]}
        return next(iter(models.values())).task, models
    if record.get("per_domain"):
        models = {d.name: load_one(d, max_length) for d in sorted(folder.iterdir()) if (d / "labels.json").is_file()}
        return next(iter(models.values())).task, models
    model = load_one(folder, max_length)
    return model.task, model


def known_labels(model):
    """The labels a model (or every model of a per-domain folder or a package) can predict."""
    models = model.icner.values() if isinstance(model, Pipeline) else model.values() if isinstance(model, dict) else [model]
    return {key: sorted({x for m in models for x in m.labels.get(key, [])}) for key in ("domains", "intents")}


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.output:
        check_output_file(args.output)  # before the evaluation, not after it
    task, model = load_model(args.model, args.max_seq_length)
    package = isinstance(model, Pipeline)
    task = task or TASKS["icner"]  # a package's per-utterance results are its routed ICNER predictions
    kind_of_model = model.task_name if package else task.name
    if args.task and args.task != kind_of_model:
        raise UsageError(f"--model {args.model} is a {kind_of_model} model, not {args.task}")
    utterances, fingerprints, kind = load_task_data(args, args.split, task.name)
    if not utterances:
        raise UsageError(f"--data has no {args.split} utterances for locales {args.locales or 'any'}")
    utterances = sample(utterances, args.max_utterances)
    task.check_label_overlap(known_labels(model), utterances, "the model")
    start = time.perf_counter()
    if package:
        metrics, routed = score_package(model, with_domains(utterances, args.data), args.max_seq_length,
                                        args.batch_size, args.bootstrap)
        predictions = [r[1:] for r in routed]  # per utterance: as routed by the DC model
    elif isinstance(model, dict):  # per-domain ICNER: route by the gold domain, as the paper does
        predictions = [None] * len(utterances)
        for domain in sorted({u.domain for u in utterances}):
            idx = [i for i, u in enumerate(utterances) if u.domain == domain]
            if domain not in model:  # no model for this domain: every utterance of it is wrong
                preds = [(None, [])] * len(idx)
            else:
                preds = model[domain].predict([utterances[i].text for i in idx], args.max_seq_length, args.batch_size)
            for i, p in zip(idx, preds):
                predictions[i] = p
    else:
        predictions = model.predict([u.text for u in utterances], args.max_seq_length, args.batch_size)
    seconds = time.perf_counter() - start
    if package:
        print_scores(metrics)
    else:
        metrics = task.score(utterances, predictions, args.bootstrap)
        ceiling = representable_slots(task, model, utterances, args.max_seq_length)
        if ceiling is not None:
            metrics["slot_ceiling"] = ceiling
        task.print_table(metrics)
    if args.output:
        write_json_atomic(args.output, {"task": kind_of_model, "model": args.model,
                                        "split": args.split, "locales": args.locales, "metrics": metrics,
                                        "data": {"format": kind, "files": fingerprints},
                                        "per_utterance": task.per_utterance(utterances, predictions), "versions": versions(),
                                        "device": str(inference_device()) if is_torch(model) else "cpu (onnxruntime)",
                                        "predict_seconds": round(seconds, 3)})
    return 0


def representable_slots(task, model, utterances, max_length):
    """The tokenizer's ceiling (common.bio.slot_ceiling; None for a task without slots), with the
    tokenizer of the model that sees each utterance (per-domain folders route by domain)."""
    if not task.has_slots:
        return None
    models = model if isinstance(model, dict) else {}
    fallback = model if not models else next(iter(models.values()))
    groups = {}
    for u in utterances:
        chosen = models.get(u.domain, fallback)
        groups.setdefault(id(chosen), (chosen, []))[1].append(u)
    counts = {}
    for chosen, group in groups.values():
        for locale, (gold, ok) in slot_ceiling(chosen.tokenizer, group, max_length).items():
            counts[locale] = [a + b for a, b in zip(counts.get(locale, [0, 0]), (gold, ok))]
    return ceiling_report(counts)


if __name__ == "__main__":
    run_cli(main)
