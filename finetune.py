#!/usr/bin/env python
"""Finetune an encoder: domain (or any text) classification (dc) or joint intent + slots (icner).

    python finetune.py --task dc --model out/s03 --data massive-1.1/ --locales en-US --output-dir out/dc
    python finetune.py --task icner --model out/s03 --data massive-1.1/ --locales en-US \
        --all-domains --output-dir out/icner
    python finetune.py --task icner --model out/s03 --data my-atis/ --output-dir out/icner   # BIO folders
    python finetune.py --task dc --model out/s03 --data my-topics/ --text-column utterance --output-dir out/dc

--data is MASSIVE or your own labelled data: BIO split folders, CoNLL, CSV/TSV/JSONL classification
(common/task_data.py). Trains on the train split, picks the best checkpoint on dev (early
stopping), never looks at test (that is evaluate.py's). The output folder opens with
from_pretrained and holds the tokenizer, labels.json and run.json.
"""
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

from common.engine import Engine
from common.models import load_tokenizer, loading
from common.positions import check_max_length
from common.run import (ArgumentParser, UsageError, check_output_dir, non_negative_float, non_negative_int, partial_dir,
                        positive_float, positive_int, probability, publish, run_cli, run_record, unit_float,
                        write_json_atomic)
from common.task_data import add_data_args, load_task_data
from common.utterance import NO_DOMAIN, sample
from common.tasks import TASKS, collate, save_labels, torch_logits_fn
from common.training_loop import Cadence, StepTask, add_optimizer_args, optimizer_and_schedule, run_steps, start_or_resume

# Default learning rates: the profiles' rate for classification heads; masked-LM training changes
# a pretrained encoder's own objective, so it keeps the gentler rate its studies were run at.
DEFAULT_LR = {"dc": 3e-4, "icner": 3e-4, "mlm": 1e-4}


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1])
    p.add_argument("--task", required=True, help="dc, icner (or mlm: masked-LM training)")
    p.add_argument("--model", required=True, help="encoder folder or hub name (a student, a teacher, ...)")
    p.add_argument("--tokenizer", help="default: the model's")
    add_data_args(p, what="its train and dev splits; --task mlm: target text, see common/target_text.py")
    p.add_argument("--domain", help="ICNER: train on this MASSIVE scenario only (the paper's per-domain models)")
    p.add_argument("--all-domains", action="store_true", help="ICNER: one model per domain, in OUTPUT_DIR/<domain>")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--epochs", type=positive_float, default=3.0)
    p.add_argument("--max-steps", type=positive_int, help="overrides --epochs")
    p.add_argument("--batch-size", type=positive_int, default=32, help="utterances per process and micro-batch")
    add_optimizer_args(p, lr=None, warmup_ratio=0.1,
                       lr_help="default 3e-4 for dc and icner (1e-4 left the MiniLM teacher's ICNER 7.5 exact "
                               "match short: docs/results/pilot-teacher), 1e-4 for mlm")
    p.add_argument("--max-seq-length", type=positive_int, default=64)
    p.add_argument("--slot-loss-coef", type=non_negative_float, default=1.0, help="ICNER loss = intent CE + coef x slot CE")
    p.add_argument("--eval-steps", type=positive_int, help="evaluate on dev every N steps (default: every epoch)")
    p.add_argument("--patience", type=positive_int, default=3, help="stop after N evaluations without dev improvement")
    p.add_argument("--max-train-utterances", type=positive_int, help="a fixed random sample of N train utterances (quick or budgeted runs)")
    p.add_argument("--max-dev-utterances", type=positive_int, help="a fixed random sample of N dev utterances")
    g = p.add_argument_group("--task mlm (continued masked-LM training, or pretraining from scratch)")
    g.add_argument("--text-data", nargs="+", help="generic text (JSONL/text files, folders, hub name) to train on")
    g.add_argument("--text-field", default="text", help="text field / column of --text-data")
    g.add_argument("--target-text-field", help="text field / column of --data when it is target text (default: text)")
    g.add_argument("--target-ratio", type=unit_float, default=0.5,
                   help="share of --data (target) tokens when both --data and --text-data are given")
    g.add_argument("--mlm-probability", type=probability, default=0.15)
    g.add_argument("--from-scratch", action="store_true",
                   help="random weights from --model's config (a folder, hub name or config .json)")
    g.add_argument("--tokenizer-type", choices=["wordpiece", "unigram"],
                   help="from scratch without --tokenizer: train one (default: wordpiece for BERT, else unigram)")
    g.add_argument("--vocab-size", type=positive_int, default=16000, help="size of a trained tokenizer")
    g.add_argument("--lowercase", action="store_true", help="lowercase in a trained WordPiece tokenizer")
    g.add_argument("--head-warmup-steps", type=non_negative_int,
                   help="when an MLM head is added, train it alone on the frozen encoder first, so "
                        "'before' measures the encoder, not a random head (default 100)")
    p.add_argument("--threads", type=positive_int, help="torch CPU threads")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR.partial/checkpoint")
    args = p.parse_args(argv)
    if args.task not in (*TASKS, "mlm"):
        p.error(f"unknown --task {args.task!r} (use {', '.join(TASKS)} or mlm)")
    if (args.domain or args.all_domains) and not (args.task in TASKS and TASKS[args.task].per_domain):
        p.error(f"--domain / --all-domains are for {', '.join('--task ' + t for t in TASKS if TASKS[t].per_domain)}")
    if args.lr is None:
        args.lr = DEFAULT_LR[args.task]
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    check_output_dir(Path(args.output_dir), args.overwrite, args.resume)
    engine = Engine(args.precision)
    try:
        return run(args, engine)
    finally:
        engine.end()


def run(args, engine):
    if args.task == "mlm":
        from common.mlm_training import train_mlm  # the masked-LM loop has its own module
        return train_mlm(args, engine)
    if not args.data:
        raise UsageError(f"--task {args.task} needs --data (labelled: MASSIVE, BIO, CoNLL, CSV/TSV/JSONL)")
    check_max_length(args.model, args.max_seq_length)
    tokenizer = load_tokenizer(args.tokenizer or args.model, "--tokenizer" if args.tokenizer else "--model")
    train, fingerprints, kind = load_task_data(args, "train", args.task)
    dev = load_task_data(args, "dev", args.task)[0]
    if not train or not dev:
        raise UsageError(f"--data has no {'train' if not train else 'dev'} utterances for locales {args.locales or 'any'}")
    fingerprints = {"format": kind, "files": fingerprints}
    if args.all_domains:
        return finetune_all_domains(args, engine, tokenizer, train, dev, fingerprints)
    if args.domain:
        train, dev = by_domain(train, args.domain, "train"), by_domain(dev, args.domain, "dev")
    finetune(args, engine, tokenizer, train, dev, fingerprints, Path(args.output_dir))
    return 0


def by_domain(utterances, domain, partition):
    chosen = [u for u in utterances if u.domain == domain]
    if not chosen:
        raise UsageError(f"--domain {domain}: no {partition} utterances (domains: "
                         f"{', '.join(sorted({u.domain for u in utterances}))})")
    return chosen


def finetune_all_domains(args, engine, tokenizer, train, dev, fingerprints):
    """One ICNER model per domain, as the paper trains them; a summary run.json on top."""
    if {u.domain for u in train} == {NO_DOMAIN}:
        raise UsageError(f"--all-domains: {' '.join(args.data)} has no domains (CoNLL can give them with "
                         "'# domain = X' comments)")
    output_dir, work_dir = Path(args.output_dir), partial_dir(args.output_dir)
    if engine.is_main:
        work_dir.mkdir(exist_ok=True)
    engine.barrier()
    summary = {}
    domains = sorted({u.domain for u in train} & {u.domain for u in dev})
    skipped = sorted({u.domain for u in train} - set(domains))
    if skipped:  # no dev data means no model selection: say so, evaluate.py counts them as errors
        print(f"note: no dev utterances, no model for domain(s): {', '.join(skipped)}", file=sys.stderr)
    for domain in domains:
        target = work_dir / domain
        if not target.exists():  # finished domains are kept across --resume
            print(f"== domain {domain}", file=sys.stderr)
            summary[domain] = finetune(args, engine, tokenizer, by_domain(train, domain, "train"),
                                       by_domain(dev, domain, "dev"), fingerprints, target)
        else:
            summary[domain] = json.loads((target / "run.json").read_text())["dev_metrics"]
    if engine.is_main:
        write_json_atomic(work_dir / "run.json", run_record(
            "finetune.py", args, engine, task="icner", per_domain=True, domains=sorted(summary), skipped_domains=skipped,
            dev_exact_match={d: m["exact_match"] for d, m in summary.items()}))
        publish(work_dir, output_dir)
    engine.barrier()
    return 0


def finetune(args, engine, tokenizer, train, dev, fingerprints, output_dir):
    """Train one model; returns its best dev metrics."""
    started = time.time()
    work_dir = partial_dir(output_dir)
    train, dev = sample(train, args.max_train_utterances), sample(dev, args.max_dev_utterances)
    task = TASKS[args.task]
    labels = task.build_labels(train)
    task.check_label_overlap(labels, dev, "its train split", "--data's dev split")
    ceiling = slot_ceiling_note(engine, task, tokenizer, train, dev, args.max_seq_length)
    torch.manual_seed(args.seed)
    with loading(args.model):
        model = task.new_model(args.model, labels, args.slot_loss_coef)
    features = task.encode(tokenizer, train, labels, args.max_seq_length)
    steps_per_epoch = math.ceil(len(features) / (args.batch_size * engine.world_size * args.grad_accum))
    max_steps = args.max_steps or max(1, math.ceil(args.epochs * steps_per_epoch))

    optimizer, scheduler = optimizer_and_schedule(model, args, max_steps, engine.device)
    model, optimizer, scheduler = engine.prepare(model, optimizer, scheduler)
    state = start_or_resume(engine, work_dir, args.resume, max_steps)
    loop = state["loop"] if state else {"step": 0, "best": -1.0, "best_step": None, "stale": 0, "history": [],
                                        "train_seconds": 0.0}

    def evaluate_dev():
        """Every process scores the whole dev set, so all take the same early-stopping decision."""
        model.eval()
        preds = task.predict(torch_logits_fn(engine.unwrap(model), engine.device), tokenizer,
                             [u.text for u in dev], labels, args.max_seq_length)
        return task.score(dev, preds, bootstrap=0)

    step = FinetuneStep(args, engine, model, features, tokenizer.pad_token_id, steps_per_epoch, evaluate_dev, work_dir)
    run_steps(engine, step, model, optimizer, scheduler, loop, Cadence(
        max_steps, args.seed, args.grad_accum, args.max_grad_norm, eval_steps=args.eval_steps or steps_per_epoch,
        patience=args.patience), work_dir)
    if engine.is_main:
        dev_metrics = json.loads((work_dir / "dev_metrics.json").read_text())
        tokenizer.save_pretrained(work_dir)
        save_labels(work_dir, labels)
        write_json_atomic(work_dir / "run.json", {
            **run_record("finetune.py", args, engine), "task": args.task,
            "domain": train[0].domain if args.domain or args.all_domains else None,
            "data": {"fingerprints": fingerprints, "train_utterances": len(train), "dev_utterances": len(dev)},
            "labels": {k: len(v) for k, v in labels.items() if isinstance(v, list)}, "slot_ceiling": ceiling,
            "steps": loop["step"], "max_steps": max_steps, "best_step": loop["best_step"],
            "stopped_early": loop["stale"] >= args.patience, "dev_metrics": dev_metrics, "history": loop["history"],
            "timings": {"train_s": round(loop["train_seconds"], 3), "wall_s": round(time.time() - started, 3)}})
        (work_dir / "dev_metrics.json").unlink()
        publish(work_dir, output_dir)
        print(f"{args.task} model saved to {output_dir}: dev {task.headline(dev_metrics):.4f} at step "
              f"{loop['best_step']}", file=sys.stderr)
    engine.barrier()
    engine.release()  # the next domain's model is another run
    return json.loads((output_dir / "run.json").read_text())["dev_metrics"]


def slot_ceiling_note(engine, task, tokenizer, train, dev, max_length):
    """What the tokenizer lets any model get right, for train and dev (None for a task without
    slots); a note when it cannot represent a language's dev slots: no model on it can do better."""
    if not task.has_slots:
        return None
    ceiling = {name: task.ceiling(tokenizer, part, max_length) for name, part in (("train", train), ("dev", dev))}
    for locale, c in ceiling["dev"].items():
        if engine.is_main and locale != "all" and c["share"] is not None and c["share"] < 0.99:
            print(f"note: the tokenizer represents only {100 * c['share']:.1f}% of the {locale} dev slots exactly",
                  file=sys.stderr)
    return ceiling


def epoch_order(args, engine, size, epoch):
    """The shuffled rows of an epoch. Under several processes it is padded with its own first rows
    to whole steps, so that no process ever gets an empty micro-batch (DDP would wait for it)."""
    order = np.random.default_rng([args.seed, epoch]).permutation(size)
    if engine.world_size > 1:
        per_step = args.batch_size * engine.world_size * args.grad_accum
        order = np.resize(order, math.ceil(size / per_step) * per_step)
    return order


class FinetuneStep(StepTask):
    """One DC / ICNER micro-batch of the epoch's shuffled rows; dev scored at each evaluation, the
    best model kept in work_dir, loop["stale"] counting the evaluations without a gain."""

    def __init__(self, args, engine, model, features, pad_id, steps_per_epoch, evaluate_dev, work_dir):
        self.args, self.engine, self.model, self.features, self.pad_id = args, engine, model, features, pad_id
        self.steps_per_epoch, self.evaluate_dev, self.work_dir = steps_per_epoch, evaluate_dev, work_dir
        self.name, self.task = f"finetune {args.task}", TASKS[args.task]
        self.per_micro = args.batch_size * engine.world_size

    def micro_batch(self, step, micro):
        if micro == 0:
            epoch, position = divmod(step, self.steps_per_epoch)
            order = epoch_order(self.args, self.engine, len(self.features), epoch)
            self.step_rows = order[position * self.per_micro * self.args.grad_accum:]
        rows = self.step_rows[micro * self.per_micro:(micro + 1) * self.per_micro][self.engine.rank::self.engine.world_size]
        if len(rows) == 0:  # the short last step of an epoch, in one process
            return None
        return {k: v.to(self.engine.device) for k, v in collate([self.features[i] for i in rows], self.pad_id).items()}

    def loss(self, batch):
        return self.task.loss(self.model, batch)

    def evaluate(self, loop, loss, progress):
        evaluate_and_keep(self.args, self.engine, self.model, self.evaluate_dev, loop, self.engine.mean(loss),
                          self.work_dir)
        progress.set_postfix(loss=f"{loop['history'][-1]['loss']:.4f}", best=f"{loop['best']:.4f}")


def evaluate_and_keep(args, engine, model, evaluate_dev, loop, train_loss, work_dir):
    """Score dev; the best model so far is the output."""
    metrics = evaluate_dev()
    model.train()
    value = TASKS[args.task].headline(metrics)
    loop["history"].append({"step": loop["step"], "loss": round(train_loss, 5), "dev": round(value, 5)})
    if value > loop["best"]:
        loop["best"], loop["best_step"], loop["stale"] = value, loop["step"], 0
        if engine.is_main:
            engine.unwrap(model).save_pretrained(work_dir)
            write_json_atomic(work_dir / "dev_metrics.json", metrics)
    else:
        loop["stale"] += 1


if __name__ == "__main__":
    run_cli(main)
