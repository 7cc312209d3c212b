"""finetune.py --task mlm: continued masked-LM training (adapting a teacher to the target domain)
or pretraining from scratch, over the same packed, mixed stream that distill.py uses."""
import math
import shutil
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm
from transformers import AutoModelForMaskedLM, get_scheduler

from common import checkpoint
from common.generic import load_generic
from common.massive import load_massive, sample
from common.models import load_tokenizer, max_positions
from common.pretraining import load_config, masked_lm_loss, mlm_dev_loss, mlm_model_from_pretrained, train_tokenizer
from common.run import StopSignals, UsageError, interrupted_at, partial_dir, publish, versions, write_json_atomic
from common.training import optimizer_step
from common.transfer import PackedSequences, TokenSource, TransferStream, mask_tokens


def load_texts(args):
    """(train target texts, train generic texts, dev texts, fingerprints)."""
    if not args.data and not args.text_data:
        raise UsageError("--task mlm needs --data (MASSIVE utterances) and/or --text-data (generic text)")
    target, generic, dev, fingerprints = [], [], [], {}
    if args.data:
        train_utts, fingerprints["target"] = load_massive(args.data, args.locales, ["train"])
        dev = [u.utt for u in load_massive(args.data, args.locales, ["dev"])[0]]
        target = [u.utt for u in train_utts]
        if not target:
            raise UsageError(f"--data has no train utterances for locales {args.locales or 'any'}")
    if args.text_data:
        corpus = load_generic(args.text_data, args.text_field)
        fingerprints["generic"] = corpus.fingerprints
        generic = corpus.documents
        if not args.data:  # hold out 1% of the documents (at least 50) as dev
            held = max(50, len(generic) // 100)
            generic, dev = generic[:-held], generic[-held:]
    target, dev = sample(target, args.max_train_utterances), sample(dev, args.max_dev_utterances)
    return target, generic, dev, fingerprints


def build(args, target, generic, work_dir):
    """(model, tokenizer, head_added)."""
    if not args.from_scratch:
        tokenizer = load_tokenizer(args.tokenizer or args.model, "--tokenizer" if args.tokenizer else "--model")
        model, head_added = mlm_model_from_pretrained(args.model)
        return model, tokenizer, head_added
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


def train_mlm(args):
    started = time.time()
    output_dir, work_dir = Path(args.output_dir), partial_dir(args.output_dir)
    target, generic, dev, fingerprints = load_texts(args)
    model, tokenizer, head_added = build(args, target, generic, work_dir)
    if args.max_seq_length > max_positions(model.config):
        raise UsageError(f"--max-seq-length {args.max_seq_length} exceeds the model's "
                         f"{max_positions(model.config)} positions")
    ratio = 1.0 if not generic else 0.0 if not target else args.target_ratio
    sources = [PackedSequences(TokenSource(name, tokenizer, args.seed + i, texts), args.max_seq_length)
               if texts and (ratio < 1 if name == "generic" else ratio > 0) else None
               for i, (name, texts) in enumerate((("generic", generic), ("target", target)))]
    stream = TransferStream(*sources, ratio)
    tokens_per_step = args.batch_size * args.max_seq_length
    corpus_tokens = sum(s.source.num_tokens for s in sources if s is not None)
    max_steps = args.max_steps or max(1, math.ceil(args.epochs * corpus_tokens / tokens_per_step))
    eval_steps = args.eval_steps or max(1, max_steps // 5)
    warmup_head = args.head_warmup_steps if args.head_warmup_steps is not None else (100 if head_added else 0)

    def batch(step):
        ids, _ = stream.next_batch(args.batch_size)
        return mask_tokens(ids, tokenizer, args.mlm_probability, torch.Generator().manual_seed(args.seed * 7919 + step))

    state = checkpoint.load(work_dir / "checkpoint") if args.resume else None
    if state is None:
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
        tokenizer.save_pretrained(work_dir)
        if warmup_head:  # a new head on a frozen encoder, so 'before' measures the encoder itself
            head = [p for n, p in model.named_parameters() if not n.startswith(model.base_model_prefix + ".")]
            head_opt = torch.optim.AdamW(head, lr=args.lr * 10)
            for p in model.base_model.parameters():
                p.requires_grad_(False)
            model.train()
            for step in tqdm(range(warmup_head), desc="mlm head warm-up", file=sys.stderr):
                masked, labels = batch(-1 - step)
                masked_lm_loss(model, masked, labels).backward()
                head_opt.step()
                head_opt.zero_grad(set_to_none=True)
            for p in model.base_model.parameters():
                p.requires_grad_(True)
        before = mlm_dev_loss(model, tokenizer, dev, args.max_seq_length, args.mlm_probability, args.seed)
        print(f"dev masked-LM loss before: {before:.4f}", file=sys.stderr)
        step, best, history = 0, math.inf, []

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = get_scheduler("linear", optimizer, int(args.warmup_ratio * max_steps), max_steps)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        stream.load_state_dict(state["stream"])
        checkpoint.set_rng_state(state["rng"])
        step, best, history, before = state["step"], state["best"], state["history"], state["before"]
        print(f"resuming from step {step} of {max_steps}", file=sys.stderr)

    model.train()
    loop_start = time.perf_counter()
    def save_checkpoint():
        checkpoint.save(work_dir / "checkpoint", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "stream": stream.state_dict(), "rng": checkpoint.rng_state(), "step": step, "best": best,
            "history": history, "before": before})

    progress = tqdm(total=max_steps, initial=step, desc="finetune mlm", unit="step", file=sys.stderr)
    with StopSignals() as stop:  # Ctrl-C / SIGTERM: finish the step, save, stop
        while step < max_steps:
            torch.manual_seed(args.seed * 1_000_003 + step)
            masked, labels = batch(step)
            loss = masked_lm_loss(model, masked, labels)
            optimizer_step(loss, model, optimizer, scheduler)
            step += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.4f}")
            if step % eval_steps == 0 or step == max_steps:
                dev_loss = mlm_dev_loss(model, tokenizer, dev, args.max_seq_length, args.mlm_probability, args.seed)
                history.append({"step": step, "train_loss": round(loss.item(), 5), "dev_loss": round(dev_loss, 5)})
                if dev_loss < best:
                    best = dev_loss
                    model.save_pretrained(work_dir)
                save_checkpoint()
            elif stop.signum:
                save_checkpoint()
            if stop.signum and step < max_steps:
                progress.close()
                raise interrupted_at(stop.signum, step, work_dir)
    progress.close()
    write_json_atomic(work_dir / "run.json", {
        "script": "finetune.py", "task": "mlm", "args": vars(args), "versions": versions(),
        "from_scratch": args.from_scratch, "mlm_head_added": head_added, "head_warmup_steps": warmup_head,
        "data": {"fingerprints": fingerprints, "target_texts": len(target), "generic_texts": len(generic),
                 "dev_texts": len(dev), "target_share": stream.target_share, "tokens_seen": sum(stream.tokens.values())},
        "steps": step, "dev_mlm_loss_before": before, "dev_mlm_loss_after": best, "history": history,
        "timings": {"train_s": round(time.perf_counter() - loop_start, 3), "wall_s": round(time.time() - started, 3)}})
    publish(work_dir, output_dir)
    print(f"masked-LM model saved to {output_dir}: dev loss {before:.4f} -> {best:.4f}", file=sys.stderr)
    return 0
