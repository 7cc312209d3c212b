#!/usr/bin/env python
"""Distil a teacher encoder into a smaller student over a transfer set of generic and target text.

    python distill.py --teacher TEACHER --generic-data wiki.jsonl --target-data massive/ \
        --locales en-US --target-ratio 0.3 --max-steps 600 --output-dir out/s03

Runs as one process (CPU or GPU) or under `torchrun --nproc_per_node=N` (DDP). The output folder
is a transformers masked-LM model + tokenizer with run.json beside it. Until the run finishes it
lives in OUTPUT_DIR.partial, whose checkpoint `--resume` continues from.
"""
import argparse
import math
import shutil
import signal
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm
from transformers import get_scheduler

from common import checkpoint
from common.distributed import setup, teardown
from common.generic import load_generic
from common.losses import DistillationLoss, OutputAdaptor, layer_map
from common.massive import load_massive
from common.models import build_student, load_teacher, max_positions, load_tokenizer, student_config, student_shape
from common.run import (ArgumentParser, StopSignals, UsageError, check_output_dir, interrupted_at, non_negative_float,
                        non_negative_int, partial_dir, positive_float, positive_int, probability, publish, run_cli,
                        timed, unit_float, versions, write_json_atomic)
from common.transfer import GENERIC, TARGET, PackedSequences, TokenSource, TransferStream, mask_tokens

# Arguments that do not change what is computed, so they may differ when resuming.
RESUME_FREE_ARGS = {"resume", "overwrite", "save_steps", "log_steps", "output_dir"}


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--teacher", required=True, help="teacher model folder or hub name")
    g.add_argument("--tokenizer", help="tokenizer folder or hub name (default: the teacher's)")
    g.add_argument("--student-layers", type=positive_int, default=4)
    g.add_argument("--student-hidden", type=positive_int, default=256)
    g.add_argument("--student-heads", type=positive_int, default=4)
    g.add_argument("--student-intermediate", type=positive_int, help="feed-forward size (default: 4 x hidden)")
    g.add_argument("--student-init", choices=["auto", "teacher", "random"], default="auto",
                   help="auto: copy embeddings and every k-th teacher layer when the widths match, else random")

    g = p.add_argument_group("transfer set")
    g.add_argument("--generic-data", nargs="+", help="generic corpus: JSONL/text files, folders, or a hub dataset name")
    g.add_argument("--generic-text-field", default="text", help="text field of JSONL rows / dataset column")
    g.add_argument("--generic-config", help="hub dataset config of the generic corpus")
    g.add_argument("--generic-split", default="train", help="hub dataset split of the generic corpus")
    g.add_argument("--streaming", action="store_true", help="stream the generic corpus instead of loading it in memory")
    g.add_argument("--target-data", nargs="+", help="MASSIVE JSONL files, folders of <locale>.jsonl, or a hub dataset name")
    g.add_argument("--locales", nargs="+", help="MASSIVE locales to use (default: all in the target data)")
    g.add_argument("--target-ratio", type=unit_float, required=True,
                   help="share of target tokens in the transfer set: 0 generic only, 0.3 the paper's 7:3, 1 target only")
    g.add_argument("--max-seq-length", type=positive_int, default=128)

    g = p.add_argument_group("budget and optimisation")
    g.add_argument("--max-steps", type=non_negative_int, help="optimizer steps (give this or --max-tokens)")
    g.add_argument("--max-tokens", type=positive_int, help="transfer tokens to distil over; converted to steps")
    g.add_argument("--batch-size", type=positive_int, default=32, help="sequences per process and step")
    g.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--lr", type=positive_float, default=5e-4)
    g.add_argument("--weight-decay", type=non_negative_float, default=0.01)
    g.add_argument("--lr-scheduler", default="linear", help="transformers scheduler name (linear, cosine, constant_with_warmup, ...)")
    g.add_argument("--warmup-ratio", type=unit_float, default=0.05)
    g.add_argument("--max-grad-norm", type=positive_float, default=1.0)
    g.add_argument("--seed", type=non_negative_int, default=42)
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="auto: bf16 (or fp16) autocast on a GPU, fp32 on CPU")

    g = p.add_argument_group("losses (weights; 0 turns a loss off)")
    g.add_argument("--alpha-kl", type=non_negative_float, default=0.0, help="soft-target KL on MLM logits (teacher needs an MLM head)")
    g.add_argument("--temperature", type=positive_float, default=2.0)
    g.add_argument("--alpha-mlm", type=non_negative_float, default=0.0, help="hard masked-LM loss of the student")
    g.add_argument("--mlm-probability", type=probability, default=0.15, help="masking rate when KL or MLM is on")
    g.add_argument("--alpha-cos", type=non_negative_float, default=1.0, help="hidden-state cosine loss")
    g.add_argument("--alpha-mse", type=non_negative_float, default=1.0, help="hidden-state MSE loss (through a learned projection when widths differ)")
    g.add_argument("--hidden-layers", choices=["last", "uniform"], default="last",
                   help="which hidden states to match: the last layers, or every student layer to a teacher layer")
    g.add_argument("--alpha-attn", type=non_negative_float, default=0.0, help="MiniLMv2 attention-relation loss on the last layers")
    g.add_argument("--relation-heads", type=positive_int, help="relation heads of the attention-relation loss (default: student heads)")

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--overwrite", action="store_true", help="replace an existing output (or unfinished run)")
    g.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR.partial/checkpoint")
    g.add_argument("--save-steps", type=positive_int, default=200, help="checkpoint every N steps")
    g.add_argument("--log-steps", type=positive_int, default=10)
    args = p.parse_args(argv)
    if (args.max_steps is None) == (args.max_tokens is None):
        p.error("give exactly one of --max-steps and --max-tokens")
    if args.student_intermediate is None:
        args.student_intermediate = 4 * args.student_hidden
    return args


def build_stream(args, tokenizer):
    """The mixed transfer set. Only the MASSIVE train partition ever enters it."""
    fingerprints = {}
    generic = target = None
    if args.generic_data and args.target_ratio < 1:
        corpus = load_generic(args.generic_data, args.generic_text_field, args.generic_config,
                              args.generic_split, args.streaming, args.seed)
        fingerprints[GENERIC] = corpus.fingerprints
        generic = PackedSequences(TokenSource("generic", tokenizer, args.seed, corpus.documents, corpus.open_stream),
                                  args.max_seq_length)
    if args.target_data and args.target_ratio > 0:
        utterances, fingerprints[TARGET] = load_massive(args.target_data, args.locales, partitions=["train"])
        if not utterances:
            raise UsageError(f"--target-data has no train utterances for locales {args.locales or 'any'}: "
                             "the transfer set would be empty")
        target = PackedSequences(TokenSource("target", tokenizer, args.seed + 1, [u.utt for u in utterances]),
                                 args.max_seq_length)
    return TransferStream(generic, target, args.target_ratio), fingerprints


class StudentWithLoss(nn.Module):
    """Student and the distillation loss (with its projections) as one module, so that DDP
    synchronises the projections' gradients along with the student's."""

    def __init__(self, student, loss, capture_qkv_layer, want_logits):
        super().__init__()
        self.student, self.loss = student, loss
        self.adaptor = OutputAdaptor(student, capture_qkv_layer, want_logits)

    def forward(self, input_ids, attention_mask, teacher_view, mlm_labels):
        return self.loss(self.adaptor(input_ids, attention_mask), teacher_view, attention_mask, mlm_labels)


def main(argv=None):
    args = parse_args(argv)
    ctx = setup(args.precision)
    try:
        return distill(args, ctx)
    finally:
        teardown(ctx)


def distill(args, ctx):
    timings, started = {}, time.time()
    output_dir, work_dir = Path(args.output_dir), partial_dir(args.output_dir)
    check_output_dir(output_dir, args.overwrite, args.resume)
    weights = {"kl": args.alpha_kl, "mlm": args.alpha_mlm, "cos": args.alpha_cos, "mse": args.alpha_mse,
               "attn": args.alpha_attn}
    if not any(weights.values()):
        raise UsageError("all loss weights are 0: set at least one --alpha-*")

    # Everything that can fail on bad input happens before the first file is written.
    with timed(timings, "load_models_s"):
        tokenizer = load_tokenizer(args.tokenizer or args.teacher, "--tokenizer" if args.tokenizer else "--teacher")
        teacher, teacher_has_mlm_head = load_teacher(args.teacher)
        if args.alpha_kl and not teacher_has_mlm_head:
            raise UsageError(f"--alpha-kl needs a teacher with an MLM head; {args.teacher} has none "
                             "(use the hidden-state losses, or adapt it first with finetune.py --task mlm)")
        if args.max_seq_length > max_positions(teacher.config):
            raise UsageError(f"--max-seq-length {args.max_seq_length} exceeds the teacher's "
                             f"{max_positions(teacher.config)} positions")
        config = student_config(teacher.config, args.student_layers, args.student_hidden, args.student_heads,
                                args.student_intermediate)
        if len(tokenizer) > config.vocab_size:
            raise UsageError(f"tokenizer has {len(tokenizer)} tokens but the teacher's vocabulary has "
                             f"{config.vocab_size}: they do not belong together")
        torch.manual_seed(args.seed)
        student, init, copied_layers = build_student(teacher, config, args.student_init)
        if args.alpha_kl and student.config.vocab_size != teacher.config.vocab_size:
            raise UsageError("logit KD needs teacher and student to share the vocabulary")
    relation_heads = args.relation_heads or args.student_heads
    if args.alpha_attn and (config.hidden_size % relation_heads or teacher.config.hidden_size % relation_heads):
        raise UsageError(f"--relation-heads {relation_heads} must divide both the student ({config.hidden_size}) "
                         f"and the teacher ({teacher.config.hidden_size}) hidden sizes")
    with timed(timings, "load_data_s"):
        stream, fingerprints = build_stream(args, tokenizer)

    global_batch = args.batch_size * ctx.world_size
    tokens_per_step = global_batch * args.grad_accum * args.max_seq_length
    max_steps = args.max_steps if args.max_steps is not None else math.ceil(args.max_tokens / tokens_per_step)

    layers = layer_map(config.num_hidden_layers, teacher.config.num_hidden_layers, args.hidden_layers)
    loss_fn = DistillationLoss(config.hidden_size, teacher.config.hidden_size, layers, weights,
                               args.temperature, relation_heads)
    capture = config.num_hidden_layers - 1 if args.alpha_attn else None
    want_logits = bool(args.alpha_kl or args.alpha_mlm)
    if not want_logits:  # the MLM head gets no gradient: freeze it (DDP requires every trained weight be used)
        encoder_weights = {id(p) for p in student.base_model.parameters()}
        for param in student.parameters():
            if id(param) not in encoder_weights:
                param.requires_grad_(False)
    model = StudentWithLoss(student, loss_fn, capture, want_logits).to(ctx.device)
    teacher.to(ctx.device)
    teacher_adaptor = OutputAdaptor(teacher, teacher.config.num_hidden_layers - 1 if args.alpha_attn else None,
                                    want_logits=bool(args.alpha_kl))
    train_module = model
    if ctx.world_size > 1:
        train_module = nn.parallel.DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)

    no_decay = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if not n.endswith(no_decay)], "weight_decay": args.weight_decay},
              {"params": [p for n, p in trained if n.endswith(no_decay)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=args.lr)
    scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=int(args.warmup_ratio * max_steps),
                              num_training_steps=max(max_steps, 1))
    scaler = torch.amp.GradScaler("cuda", enabled=ctx.precision == "fp16")

    step, train_seconds, loss_curve = 0, 0.0, []
    arg_dict = vars(args)
    state = checkpoint.load(work_dir / "checkpoint") if args.resume else None
    if state is not None:
        changed = sorted(k for k, v in state["args"].items() if k not in RESUME_FREE_ARGS and arg_dict.get(k) != v)
        if changed:
            raise UsageError(f"--resume: the checkpoint was made with other arguments ({', '.join('--' + k.replace('_', '-') for k in changed)})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        stream.load_state_dict(state["stream"])
        checkpoint.set_rng_state(state["rng"])
        step, train_seconds, loss_curve = state["step"], state["train_seconds"], state["loss_curve"]
        if ctx.is_main:
            print(f"resuming from step {step} of {max_steps}", file=sys.stderr)
    elif ctx.is_main:
        if work_dir.exists():
            shutil.rmtree(work_dir)
        work_dir.mkdir()
    ctx.barrier()

    def save_checkpoint():
        if ctx.is_main:
            checkpoint.save(work_dir / "checkpoint", {
                "args": arg_dict, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(), "stream": stream.state_dict(),
                "rng": checkpoint.rng_state(), "train_seconds": train_seconds, "loss_curve": loss_curve})
        ctx.barrier()

    masking = bool(args.alpha_kl or args.alpha_mlm) and args.mlm_probability > 0
    progress = tqdm(total=max_steps, initial=step, desc="distill", unit="step", disable=not ctx.is_main,
                    dynamic_ncols=True, file=sys.stderr)
    model.train()
    window_loss, window_parts, window_steps = 0.0, {}, 0
    tokens_at_start, loop_start = stream.tokens[GENERIC] + stream.tokens[TARGET], time.perf_counter()
    with StopSignals() as stop:  # Ctrl-C / SIGTERM: finish the step, save, stop
        while step < max_steps:
            # Seeding per step (and per rank) makes dropout and masking depend only on the step, so a
            # resumed run draws exactly what an uninterrupted one would, in any number of processes.
            torch.manual_seed(args.seed * 1_000_003 + step * 997 + ctx.rank)
            mask_rng = torch.Generator().manual_seed(args.seed * 7_919 + step * 131 + ctx.rank)
            step_loss = 0.0
            for micro in range(args.grad_accum):
                batch, _ = stream.next_batch(global_batch)
                input_ids = batch[ctx.rank * args.batch_size:(ctx.rank + 1) * args.batch_size]
                attention_mask = torch.ones_like(input_ids)  # packed sequences are full: no padding
                labels = None
                if masking:
                    input_ids, labels = mask_tokens(input_ids, tokenizer, args.mlm_probability, mask_rng)
                    labels = labels.to(ctx.device)
                input_ids, attention_mask = input_ids.to(ctx.device), attention_mask.to(ctx.device)
                with torch.no_grad(), ctx.autocast():
                    teacher_view = teacher_adaptor(input_ids, attention_mask)
                sync = ctx.world_size == 1 or micro == args.grad_accum - 1
                with (train_module.no_sync() if not sync else torch.enable_grad()), ctx.autocast():
                    loss, parts = train_module(input_ids, attention_mask, teacher_view, labels)
                    scaler.scale(loss / args.grad_accum).backward()
                step_loss += loss.item() / args.grad_accum
                for name, value in parts.items():
                    window_parts[name] = window_parts.get(name, 0.0) + value.item() / args.grad_accum
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_loss += step_loss
            window_steps += 1

            tokens_seen = stream.tokens[GENERIC] + stream.tokens[TARGET]
            if step % args.log_steps == 0 or step == max_steps:
                mean_loss = ctx.all_reduce_sum(window_loss / window_steps) / ctx.world_size
                loss_curve.append({"step": step, "loss": round(mean_loss, 5),
                                   **{k: round(v / window_steps, 5) for k, v in window_parts.items()}})
                window_loss, window_parts, window_steps = 0.0, {}, 0
                progress.set_postfix(loss=f"{mean_loss:.4f}", tok_s=f"{(tokens_seen - tokens_at_start) / max(time.perf_counter() - loop_start, 1e-9):,.0f}",
                                     target=f"{stream.target_share or 0:.3f}")
            progress.update(1)
            interrupted = ctx.any(stop.signum) and step < max_steps
            if (step % args.save_steps == 0 and step < max_steps) or interrupted:
                train_seconds += time.perf_counter() - loop_start
                tokens_at_start, loop_start = tokens_seen, time.perf_counter()
                save_checkpoint()
            if interrupted:
                progress.close()
                raise interrupted_at(stop.signum or signal.SIGTERM, step, work_dir)
    progress.close()
    train_seconds += time.perf_counter() - loop_start
    timings["train_s"] = round(train_seconds, 3)

    if ctx.is_main:
        tokens_seen = stream.tokens[GENERIC] + stream.tokens[TARGET]
        student.save_pretrained(work_dir)
        tokenizer.save_pretrained(work_dir)
        run = {
            "script": "distill.py", "args": arg_dict, "versions": versions(),
            "world_size": ctx.world_size, "device": str(ctx.device), "precision": ctx.precision,
            "teacher": {"name": args.teacher, "has_mlm_head": teacher_has_mlm_head,
                        **student_shape(teacher)},
            "student": {"init": init, "teacher_layers_copied": copied_layers, **student_shape(student)},
            "losses": {"weights": weights, "hidden_layer_pairs": layers, "masking": masking},
            "data": {"fingerprints": fingerprints, "corpus_tokens": {
                name: src.source.num_tokens for name, src in stream.sources.items() if src is not None}},
            "budget": {"max_steps": max_steps, "tokens_per_step": tokens_per_step, "global_batch": global_batch},
            "transfer": {"target_ratio": args.target_ratio, "target_share": stream.target_share,
                         "tokens_seen": tokens_seen, "generic_tokens": stream.tokens[GENERIC],
                         "target_tokens": stream.tokens[TARGET], "sequences": stream.sequences,
                         "epochs": {name: src.state["epoch"] for name, src in stream.sources.items() if src is not None}},
            "tokens_per_second": round(tokens_seen / train_seconds, 1) if train_seconds else None,
            "loss_curve": loss_curve,
            "timings": {**timings, "wall_s": round(time.time() - started, 3)},
        }
        write_json_atomic(work_dir / "run.json", run)
        publish(work_dir, output_dir)
        print(f"student saved to {output_dir}: {tokens_seen:,} transfer tokens, target share "
              f"{(stream.target_share or 0):.3f}, {run['tokens_per_second'] or 0:,.0f} tokens/s", file=sys.stderr)
    ctx.barrier()
    return 0


if __name__ == "__main__":
    run_cli(main)
