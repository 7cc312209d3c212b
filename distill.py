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
import sys
import time
from pathlib import Path

import torch
from torch import nn

from common.engine import Engine
from common.generic import load_generic
from common.losses import DistillationLoss, OutputAdaptor, layer_map
from common.models import (build_student, default_heads, default_intermediate, load_teacher, load_tokenizer,
                           student_config, student_shape)
from common.positions import max_positions
from common.run import (ArgumentParser, UsageError, check_output_dir, non_negative_float, non_negative_int,
                        partial_dir, positive_float, positive_int, probability, publish, run_cli,
                        run_record, timed, unit_float, write_json_atomic)
from common.target_text import load_target_text
from common.training_loop import Cadence, StepTask, add_optimizer_args, optimizer_and_schedule, run_steps, start_or_resume
from common.transfer import GENERIC, TARGET, PackedSequences, TokenSource, TransferStream, mask_tokens, masking_generator


# Arguments that do not change what is computed, so they may differ when resuming.
RESUME_FREE_ARGS = {"resume", "overwrite", "save_steps", "log_steps", "output_dir", "precision", "max_unknown_share"}


def heads_or_auto(text):
    return text if text == "auto" else positive_int(text)


heads_or_auto.__name__ = "a positive integer or auto"  # argparse names the type in its messages


def parse_args(argv):
    p = ArgumentParser(description=__doc__.split("\n")[1], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = p.add_argument_group("models")
    g.add_argument("--teacher", required=True, help="teacher model folder or hub name")
    g.add_argument("--tokenizer", help="tokenizer folder or hub name (default: the teacher's)")
    g.add_argument("--student-layers", type=positive_int, default=4)
    g.add_argument("--student-hidden", type=positive_int, default=256)
    g.add_argument("--student-heads", type=heads_or_auto, default="auto",
                   help="attention heads; auto: the teacher's at the teacher's width (so its layers can be copied), "
                        "else one per 64 dimensions")
    g.add_argument("--student-intermediate", type=positive_int,
                   help="feed-forward size (default: the teacher's at the teacher's width, else 4 x hidden)")
    g.add_argument("--student-init", choices=["auto", "teacher", "select", "random"], default="auto",
                   help="teacher: copy embeddings and every k-th teacher layer (same widths); select: the same, "
                        "each tensor cut to a narrower student's shape (weight selection); auto: teacher when "
                        "the widths match, else random")

    g = p.add_argument_group("transfer set")
    g.add_argument("--generic-data", nargs="+", help="generic corpus: JSONL/text files, folders, or a hub dataset name")
    g.add_argument("--generic-text-field", default="text", help="text field of JSONL rows / dataset column")
    g.add_argument("--generic-config", help="hub dataset config of the generic corpus")
    g.add_argument("--generic-split", default="train", help="hub dataset split of the generic corpus")
    g.add_argument("--streaming", action="store_true", help="stream the generic corpus instead of loading it in memory")
    g.add_argument("--target-data", nargs="+",
                   help="target text: plain text (one utterance a line), JSONL, MASSIVE, a labelled dataset folder "
                        "(its train split), or a hub dataset name (common/target_text.py)")
    g.add_argument("--target-text-field", help="text field of JSONL rows / classification column / hub dataset "
                                               "column of the target data (default: text; a hub name without it is MASSIVE)")
    g.add_argument("--locales", nargs="+", help="MASSIVE locales to use (default: all; other formats are read whole)")
    g.add_argument("--target-ratio", type=unit_float, required=True,
                   help="share of target tokens in the transfer set: 0 generic only, 0.3 the paper's 7:3, 1 target only")
    g.add_argument("--max-unknown-share", type=unit_float, default=0.02,
                   help="refuse a transfer corpus whose pieces the tokenizer reads as unknown more often than this "
                        "(the English MiniLM reads 20%% of ja-JP as [UNK])")
    g.add_argument("--max-seq-length", type=positive_int, default=128)

    g = p.add_argument_group("budget and optimisation")
    g.add_argument("--max-steps", type=non_negative_int, help="optimizer steps (give this or --max-tokens)")
    g.add_argument("--max-tokens", type=positive_int, help="transfer tokens to distil over; converted to steps")
    g.add_argument("--batch-size", type=positive_int, default=32, help="sequences per process and step")
    add_optimizer_args(g, lr=5e-4, warmup_ratio=0.05)

    add_loss_args(p)

    g = p.add_argument_group("output")
    g.add_argument("--output-dir", required=True)
    g.add_argument("--overwrite", action="store_true", help="replace an existing output (or unfinished run)")
    g.add_argument("--resume", action="store_true", help="continue from OUTPUT_DIR.partial/checkpoint")
    g.add_argument("--save-steps", type=positive_int, default=200, help="checkpoint every N steps")
    g.add_argument("--log-steps", type=positive_int, default=10)
    args = p.parse_args(argv)
    if (args.max_steps is None) == (args.max_tokens is None):
        p.error("give exactly one of --max-steps and --max-tokens")
    return args


def add_loss_args(p):
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


def build_stream(args, tokenizer):
    """The mixed transfer set. Only train text of the target data ever enters it (MASSIVE's train
    partition, a labelled folder's train split, or the user's unlabelled utterances)."""
    fingerprints = {}
    generic = target = None
    if args.generic_data and args.target_ratio < 1:
        corpus = load_generic(args.generic_data, args.generic_text_field, args.generic_config,
                              args.generic_split, args.streaming, args.seed)
        fingerprints[GENERIC] = corpus.fingerprints
        generic = PackedSequences(TokenSource("generic", tokenizer, args.seed, corpus.documents, corpus.open_stream),
                                  args.max_seq_length)
    if args.target_data and args.target_ratio > 0:
        text = load_target_text(args.target_data, args.target_text_field, args.locales)
        fingerprints[TARGET] = text.fingerprints
        target = PackedSequences(TokenSource("target", tokenizer, args.seed + 1, text.texts), args.max_seq_length)
    for name, flag, packed in ((GENERIC, "--generic-data", generic), (TARGET, "--target-data", target)):
        share = packed.source.unknown_share if packed is not None else None
        if share is not None and share > args.max_unknown_share:
            # A teacher cannot teach text it reads as [UNK], and its students would copy the blind spot.
            raise UsageError(f"{flag} {' '.join(getattr(args, flag[2:].replace('-', '_')))}: the tokenizer reads "
                             f"{share:.1%} of its pieces as {tokenizer.unk_token} (--max-unknown-share "
                             f"{args.max_unknown_share}): use a teacher whose vocabulary covers this language")
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
    engine = Engine(args.precision)
    try:
        return distill(args, engine)
    finally:
        engine.end()


def load_models(args, timings):
    """(tokenizer, teacher, teacher_has_mlm_head, student, init, copied_layers), checked together."""
    with timed(timings, "load_models_s"):
        tokenizer = load_tokenizer(args.tokenizer or args.teacher, "--tokenizer" if args.tokenizer else "--teacher")
        teacher, teacher_has_mlm_head = load_teacher(args.teacher)
        if args.alpha_kl and not teacher_has_mlm_head:
            raise UsageError(f"--alpha-kl needs a teacher with an MLM head; {args.teacher} has none "
                             "(use the hidden-state losses, or adapt it first with finetune.py --task mlm)")
        if args.max_seq_length > max_positions(teacher.config):
            raise UsageError(f"--max-seq-length {args.max_seq_length} exceeds the teacher's "
                             f"{max_positions(teacher.config)} positions")
        if args.student_heads == "auto":
            args.student_heads = default_heads(args.student_hidden, teacher.config)
        if args.student_intermediate is None:
            args.student_intermediate = default_intermediate(args.student_hidden, teacher.config)
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
    return tokenizer, teacher, teacher_has_mlm_head, student, init, copied_layers


def student_with_loss(args, student, teacher, weights):
    """The student, its loss and the loss's projections as one trainable module."""
    config = student.config
    layers = layer_map(config.num_hidden_layers, teacher.config.num_hidden_layers, args.hidden_layers)
    loss_fn = DistillationLoss(config.hidden_size, teacher.config.hidden_size, layers, weights,
                               args.temperature, args.relation_heads or args.student_heads)
    want_logits = bool(args.alpha_kl or args.alpha_mlm)
    if not want_logits:  # the MLM head gets no gradient: freeze it (DDP requires every trained weight be used)
        encoder_weights = {id(p) for p in student.base_model.parameters()}
        for param in student.parameters():
            if id(param) not in encoder_weights:
                param.requires_grad_(False)
    capture = config.num_hidden_layers - 1 if args.alpha_attn else None
    return StudentWithLoss(student, loss_fn, capture, want_logits), layers


def made_with(args):
    """A --resume check: the checkpoint was made with these arguments, those that change what is
    computed."""
    def check(state):
        changed = sorted(k for k, v in state["args"].items() if k not in RESUME_FREE_ARGS and vars(args).get(k) != v)
        if changed:
            raise UsageError(f"--resume: the checkpoint was made with other arguments "
                             f"({', '.join('--' + k.replace('_', '-') for k in changed)})")
    return check


def distill(args, engine):
    timings, started = {}, time.time()
    output_dir, work_dir = Path(args.output_dir), partial_dir(args.output_dir)
    check_output_dir(output_dir, args.overwrite, args.resume)
    weights = {"kl": args.alpha_kl, "mlm": args.alpha_mlm, "cos": args.alpha_cos, "mse": args.alpha_mse,
               "attn": args.alpha_attn}
    if not any(weights.values()):
        raise UsageError("all loss weights are 0: set at least one --alpha-*")
    # Everything that can fail on bad input happens before the first file is written.
    tokenizer, teacher, teacher_has_mlm_head, student, init, copied_layers = load_models(args, timings)
    with timed(timings, "load_data_s"):
        stream, fingerprints = build_stream(args, tokenizer)
    global_batch = args.batch_size * engine.world_size
    tokens_per_step = global_batch * args.grad_accum * args.max_seq_length
    max_steps = args.max_steps if args.max_steps is not None else math.ceil(args.max_tokens / tokens_per_step)

    model, layers = student_with_loss(args, student, teacher, weights)
    optimizer, scheduler = optimizer_and_schedule(model, args, max_steps, engine.device)
    train_module, optimizer, scheduler = engine.prepare(model, optimizer, scheduler)
    teacher_view = OutputAdaptor(teacher.to(engine.device), teacher.config.num_hidden_layers - 1 if args.alpha_attn
                                 else None, want_logits=bool(args.alpha_kl))
    state = start_or_resume(engine, work_dir, args.resume, max_steps, check=made_with(args))
    loop = state["loop"] if state else {"step": 0, "train_seconds": 0.0, "loss_curve": []}
    if state:
        stream.load_state_dict(state["stream"])
    task = DistillStep(args, engine, train_module, teacher_view, stream, tokenizer, loop, max_steps)
    run_steps(engine, task, train_module, optimizer, scheduler, loop,
              Cadence(max_steps, args.seed, args.grad_accum, args.max_grad_norm, save_steps=args.save_steps), work_dir)
    timings["train_s"] = round(loop["train_seconds"], 3)
    if engine.is_main:
        tokens_seen = stream.tokens[GENERIC] + stream.tokens[TARGET]
        student.save_pretrained(work_dir)
        tokenizer.save_pretrained(work_dir)
        run = {
            **run_record("distill.py", args, engine),
            "teacher": {"name": args.teacher, "has_mlm_head": teacher_has_mlm_head, **student_shape(teacher)},
            "student": {"init": init, "teacher_layers_copied": copied_layers, **student_shape(student)},
            "losses": {"weights": weights, "hidden_layer_pairs": layers,
                       "masking": bool(args.alpha_kl or args.alpha_mlm) and args.mlm_probability > 0},
            "data": {"fingerprints": fingerprints, "corpus_tokens": {
                name: src.source.num_tokens for name, src in stream.sources.items() if src is not None},
                "unknown_share": {name: src.source.unknown_share for name, src in stream.sources.items() if src is not None}},
            "budget": {"max_steps": max_steps, "tokens_per_step": tokens_per_step, "global_batch": global_batch},
            "transfer": {"target_ratio": args.target_ratio, "target_share": stream.target_share,
                         "tokens_seen": tokens_seen, "generic_tokens": stream.tokens[GENERIC],
                         "target_tokens": stream.tokens[TARGET], "sequences": stream.sequences,
                         "epochs": {name: src.state["epoch"] for name, src in stream.sources.items() if src is not None}},
            "tokens_per_second": round(tokens_seen / loop["train_seconds"], 1) if loop["train_seconds"] else None,
            "loss_curve": loop["loss_curve"],
            "timings": {**timings, "wall_s": round(time.time() - started, 3)},
        }
        write_json_atomic(work_dir / "run.json", run)
        publish(work_dir, output_dir)
        print(f"student saved to {output_dir}: {tokens_seen:,} transfer tokens, target share "
              f"{(stream.target_share or 0):.3f}, {run['tokens_per_second'] or 0:,.0f} tokens/s", file=sys.stderr)
    engine.barrier()
    return 0


class DistillStep(StepTask):
    """One distillation micro-batch: packed transfer-set sequences (masked when a masked-LM or KL
    loss needs it), the teacher's view of them, and the student's loss against that view; the
    loss curve logged every --log-steps."""
    name = "distill"

    def __init__(self, args, engine, model, teacher_view, stream, tokenizer, loop, max_steps):
        self.args, self.engine, self.model, self.teacher_view = args, engine, model, teacher_view
        self.stream, self.tokenizer, self.max_steps = stream, tokenizer, max_steps
        self.global_batch = args.batch_size * engine.world_size
        self.masking = bool(args.alpha_kl or args.alpha_mlm) and args.mlm_probability > 0
        # The steps since the last logged point: kept in a checkpoint, so that a resumed run logs the
        # loss curve of an uninterrupted one
        window = loop.get("window", {"steps": 0, "loss": 0.0, "parts": {}})
        self.window_steps = window["steps"]
        self.window_loss = torch.tensor(window["loss"], device=engine.device)
        self.window_parts = {k: torch.tensor(v, device=engine.device) for k, v in window["parts"].items()}
        self.logged_at = (time.perf_counter(), sum(stream.tokens.values()))

    def micro_batch(self, step, micro):
        args, rank, device = self.args, self.engine.rank, self.engine.device
        input_ids = self.stream.next_batch(self.global_batch)[0][rank * args.batch_size:(rank + 1) * args.batch_size]
        attention_mask = torch.ones_like(input_ids)  # packed sequences are full: no padding
        labels = None
        if self.masking:
            input_ids, labels = mask_tokens(input_ids, self.tokenizer, args.mlm_probability,
                                            masking_generator(args.seed, step, micro, rank))
            labels = labels.to(device)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        with torch.no_grad(), self.engine.autocast():
            target = self.teacher_view(input_ids, attention_mask)
        return input_ids, attention_mask, target, labels

    def loss(self, inputs):
        loss, parts = self.model(*inputs)
        self.window_loss += loss.detach() / self.args.grad_accum  # on the device: no host sync per step
        for name, value in parts.items():
            self.window_parts[name] = self.window_parts.get(name, 0.0) + value.detach() / self.args.grad_accum
        return loss

    def logged(self, loop, loss, progress):
        step = loop["step"]
        self.window_steps += 1
        if step % self.args.log_steps and step != self.max_steps:
            return
        mean_loss = self.engine.mean(self.window_loss / self.window_steps)
        loop["loss_curve"].append({"step": step, "loss": round(mean_loss, 5), **{
            k: round(v.item() / self.window_steps, 5) for k, v in self.window_parts.items()}})
        (since, tokens_then), tokens = self.logged_at, sum(self.stream.tokens.values())
        progress.set_postfix(loss=f"{mean_loss:.4f}", target=f"{self.stream.target_share or 0:.3f}",
                             tok_s=f"{(tokens - tokens_then) / max(time.perf_counter() - since, 1e-9):,.0f}")
        self.window_loss, self.window_parts, self.window_steps = torch.zeros((), device=self.engine.device), {}, 0
        self.logged_at = (time.perf_counter(), tokens)

    def state(self, loop):
        loop["window"] = {"steps": self.window_steps, "loss": self.engine.mean(self.window_loss),  # every process's
                          "parts": {k: self.engine.mean(v) for k, v in self.window_parts.items()}}
        return {"args": vars(self.args), "stream": self.stream.state_dict()}


if __name__ == "__main__":
    run_cli(main)
