"""finetune.py --task mlm: continued masked-LM training (adapting a teacher to the target domain)
or pretraining from scratch, over the same packed, mixed stream that distill.py uses."""
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm
from transformers import AutoModelForMaskedLM

from common.generic import load_generic
from common.utterance import sample
from common.models import load_masked_lm, load_tokenizer
from common.positions import max_positions
from common.pretraining import load_config, masked_lm_loss, mlm_dev_loss, train_tokenizer
from common.run import UsageError, partial_dir, publish, run_record, write_json_atomic
from common.target_text import load_target_text
from common.training_loop import Cadence, StepTask, optimizer_and_schedule, run_steps
from common.transfer import PackedSequences, TokenSource, TransferStream, mask_tokens, masking_generator


def load_texts(args):
    """(train target texts, train generic texts, dev texts, fingerprints)."""
    if not args.data and not args.text_data:
        raise UsageError("--task mlm needs --data (target text: MASSIVE, plain text, ...) and/or --text-data (generic text)")
    target, generic, dev, fingerprints = [], [], [], {}
    if args.data:
        text = load_target_text(args.data, args.target_text_field, args.locales, with_dev=True)
        fingerprints["target"] = text.fingerprints
        target, dev = text.texts, text.dev_texts
        if dev is None:  # unlabelled utterances have no dev split
            target, dev = hold_out(target, "--data")
    if args.text_data:
        corpus = load_generic(args.text_data, args.text_field, field_flag="--text-field")
        fingerprints["generic"] = corpus.fingerprints
        generic = corpus.documents
        if not args.data:
            generic, dev = hold_out(generic, "--text-data")
    target, dev = sample(target, args.max_train_utterances), sample(dev, args.max_dev_utterances)
    return target, generic, dev, fingerprints


def hold_out(texts, flag):
    """(train, dev): the last 1% of the texts, at least 50, are the dev set of the masked-LM loss."""
    held = max(50, len(texts) // 100)
    if held * 2 > len(texts):
        raise UsageError(f"{flag}: {len(texts)} texts are too few to hold out a dev set of {held} (give at least "
                         f"{2 * held}, or MASSIVE / a labelled folder with a dev split)")
    return texts[:-held], texts[-held:]


def build(args, target, generic, work_dir):
    """(model, tokenizer, head_added)."""
    if not args.from_scratch:
        tokenizer = load_tokenizer(args.tokenizer or args.model, "--tokenizer" if args.tokenizer else "--model")
        torch.manual_seed(args.seed)  # a new MLM head starts from the same weights in every run
        model, has_head = load_masked_lm(args.model)
        if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is None:
            raise UsageError(f"--model {args.model}: {type(model).__name__} has no masked-LM head class")
        return model, tokenizer, not has_head
    config = load_config(args.model)
    if args.tokenizer:
        tokenizer = load_tokenizer(args.tokenizer)
    elif args.resume and (work_dir / "tokenizer_config.json").is_file():
        tokenizer = load_tokenizer(str(work_dir))  # the one trained before the interruption
    else:
        kind = args.tokenizer_type or ("wordpiece" if config.model_type == "bert" else "unigram")
        tokenizer = train_tokenizer(target + generic, kind, args.vocab_size, args.lowercase)
    config.vocab_size = len(tokenizer)
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        token_id = getattr(tokenizer, name, None)
        if token_id is not None:
            setattr(config, name, token_id)
    torch.manual_seed(args.seed)
    return AutoModelForMaskedLM.from_config(config), tokenizer, False


class MaskedLMWithLoss(nn.Module):
    """The model and its masked-LM loss as one module: DDP must see the forward that makes the loss."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        return masked_lm_loss(self.model, input_ids, labels)


def packed_stream(args, tokenizer, target, generic):
    """The packed, mixed stream of masked-LM training: --target-ratio of target text when there
    is both, else all of the one there is."""
    ratio = 1.0 if not generic else 0.0 if not target else args.target_ratio
    sources = [PackedSequences(TokenSource(name, tokenizer, args.seed + i, texts), args.max_seq_length)
               if texts and (ratio < 1 if name == "generic" else ratio > 0) else None
               for i, (name, texts) in enumerate((("generic", generic), ("target", target)))]
    return TransferStream(*sources, ratio)


def train_mlm(args, engine):
    started = time.time()
    output_dir, work_dir = Path(args.output_dir), partial_dir(args.output_dir)
    target, generic, dev, fingerprints = load_texts(args)
    model, tokenizer, head_added = build(args, target, generic, work_dir)
    if args.max_seq_length > max_positions(model.config):
        raise UsageError(f"--max-seq-length {args.max_seq_length} exceeds the model's "
                         f"{max_positions(model.config)} positions")
    stream = packed_stream(args, tokenizer, target, generic)
    tokens_per_step = args.batch_size * engine.world_size * args.grad_accum * args.max_seq_length
    corpus_tokens = sum(s.source.num_tokens for s in stream.sources.values() if s is not None)
    max_steps = args.max_steps or max(1, math.ceil(args.epochs * corpus_tokens / tokens_per_step))
    warmup_head = args.head_warmup_steps if args.head_warmup_steps is not None else (100 if head_added else 0)

    batch = masked_batches(args, engine, stream, tokenizer)

    def dev_loss():
        return mlm_dev_loss(model, tokenizer, dev, args.max_seq_length, args.mlm_probability, args.seed)

    model.to(engine.device)
    fresh = not (args.resume and engine.has_checkpoint(work_dir / "checkpoint"))
    if fresh:
        if engine.is_main:
            shutil.rmtree(work_dir, ignore_errors=True)
            work_dir.mkdir(parents=True)
            tokenizer.save_pretrained(work_dir)
        engine.barrier()
        warm_up_head(model, batch, warmup_head, args.lr * 10)
    optimizer, scheduler = optimizer_and_schedule(model, args, max_steps, engine.device)
    train_module, optimizer, scheduler = engine.prepare(MaskedLMWithLoss(model), optimizer, scheduler)
    if fresh:
        before = dev_loss()
        if engine.is_main:
            print(f"dev masked-LM loss before: {before:.4f}", file=sys.stderr)
        loop = {"step": 0, "best": math.inf, "history": [], "before": before, "train_seconds": 0.0}
    else:
        state = engine.load(work_dir / "checkpoint")
        stream.load_state_dict(state["stream"])
        loop = state["loop"]
        if engine.is_main:
            print(f"resuming from step {loop['step']} of {max_steps}", file=sys.stderr)

    task = MaskedLMStep(engine, train_module, model, batch, dev_loss, stream, work_dir)
    cadence = Cadence(max_steps, args.seed, args.grad_accum, args.max_grad_norm, eval_steps=args.eval_steps or max(1, max_steps // 5))
    run_steps(engine, task, train_module, optimizer, scheduler, loop, cadence, work_dir)
    if engine.is_main:
        write_json_atomic(work_dir / "run.json", {
            **run_record("finetune.py", args, engine), "task": "mlm",
            "from_scratch": args.from_scratch, "mlm_head_added": head_added, "head_warmup_steps": warmup_head,
            "data": {"fingerprints": fingerprints, "target_texts": len(target), "generic_texts": len(generic),
                     "dev_texts": len(dev), "target_share": stream.target_share,
                     "tokens_seen": sum(stream.tokens.values())},
            "steps": loop["step"], "dev_mlm_loss_before": loop["before"], "dev_mlm_loss_after": loop["best"],
            "history": loop["history"],
            "timings": {"train_s": round(loop["train_seconds"], 3), "wall_s": round(time.time() - started, 3)}})
        publish(work_dir, output_dir)
        print(f"masked-LM model saved to {output_dir}: dev loss {loop['before']:.4f} -> {loop['best']:.4f}",
              file=sys.stderr)
    engine.barrier()
    return 0


def masked_batches(args, engine, stream, tokenizer):
    """batch(step, micro): this process's masked micro-batch of the stream; its masks depend on
    the step and micro-batch only, so a resumed run masks as an unbroken one."""
    def batch(step, micro=0):
        ids = stream.next_batch(args.batch_size * engine.world_size)[0]
        ids = ids[engine.rank * args.batch_size:(engine.rank + 1) * args.batch_size]
        masked, labels = mask_tokens(ids, tokenizer, args.mlm_probability,
                                     masking_generator(args.seed, step, micro, engine.rank))
        return masked.to(engine.device), labels.to(engine.device)
    return batch


def warm_up_head(model, batch, steps, lr):
    """A new head trained alone on the frozen encoder, so that 'before' measures the encoder, not
    a random head. Each process warms up its own; DDP then starts every process from rank 0's."""
    if not steps:
        return
    head = [p for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix + ".")]
    head_opt = torch.optim.AdamW(head, lr=lr)
    for p in model.base_model.parameters():
        p.requires_grad_(False)
    model.train()
    for step in tqdm(range(steps), desc="mlm head warm-up", file=sys.stderr):
        masked, labels = batch(-1 - step)
        masked_lm_loss(model, masked, labels).backward()
        head_opt.step()
        head_opt.zero_grad(set_to_none=True)
    for p in model.base_model.parameters():
        p.requires_grad_(True)


class MaskedLMStep(StepTask):
    """One masked micro-batch of the packed stream; the dev masked-LM loss at each evaluation, the
    model with the best one kept in work_dir."""
    name = "finetune mlm"

    def __init__(self, engine, train_module, model, batch, dev_loss, stream, work_dir):
        self.engine, self.train_module, self.model, self.batch = engine, train_module, model, batch
        self.dev_loss, self.stream, self.work_dir = dev_loss, stream, work_dir

    def micro_batch(self, step, micro):
        return self.batch(step, micro)

    def loss(self, inputs):
        return self.train_module(*inputs)

    def evaluate(self, loop, loss, progress):
        dev_loss = self.dev_loss()
        loop["history"].append({"step": loop["step"], "train_loss": round(self.engine.mean(loss), 5),
                                "dev_loss": round(dev_loss, 5)})
        progress.set_postfix(loss=f"{loop['history'][-1]['train_loss']:.4f}", dev=f"{dev_loss:.4f}")
        if dev_loss < loop["best"]:
            loop["best"] = dev_loss
            if self.engine.is_main:
                self.model.save_pretrained(self.work_dir)

    def state(self, loop):
        return {"stream": self.stream.state_dict()}
