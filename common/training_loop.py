"""The one training loop under distillation, DC/ICNER finetuning and masked-LM training.

A loop states only its step and its evaluation, as a StepTask; this module owns the rest:
starting fresh or resuming from the checkpoint, the stop signals (Ctrl-C / SIGTERM: finish the
step, save, stop), the per-step seed, gradient accumulation, the optimizer step, the progress
bar, the checkpoint and dev-evaluation cadence, early stopping and the train-time accounting.

    state = start_or_resume(engine, work_dir, args.resume, max_steps)
    loop = state["loop"] if state else {"step": 0, "train_seconds": 0.0}
    run_steps(engine, task, model, optimizer, scheduler, loop, Cadence(max_steps, args.seed), work_dir)
"""
import shutil
import sys
import time
from dataclasses import dataclass

import torch
from transformers import get_scheduler

from common.run import StopSignals, interrupted_at

# Kept out of weight decay in every loop: decaying a bias or a LayerNorm scale towards 0 only
# fights the normalisation.
NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm.weight", "norm.weight")
# transformers' schedules that need nothing beyond warm-up and total steps
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt")


@dataclass
class Cadence:
    """How many steps, and what happens between them."""
    max_steps: int
    seed: int
    grad_accum: int = 1
    max_grad_norm: float = 1.0
    eval_steps: int | None = None  # dev evaluation every N steps and at the last one (None: never)
    save_steps: int | None = None  # a checkpoint every N steps too (besides evaluations and stops)
    patience: int | None = None  # stop after N evaluations without a gain (the task keeps loop["stale"])


class StepTask:
    """What a loop states: its micro-batches, their loss, and what it does after a step."""
    name = "train"  # the progress bar's label

    def micro_batch(self, step, micro):
        """This process's inputs for micro-batch `micro` of optimizer step `step`, or None when it
        has none (the short last step of an epoch)."""
        raise NotImplementedError

    def loss(self, inputs):
        """The loss of one micro-batch, computed inside the gradient-accumulation context."""
        raise NotImplementedError

    def logged(self, loop, loss, progress):
        """After every optimizer step (loop["step"] is the count done): the task's own logging."""

    def evaluate(self, loop, loss, progress):
        """At each evaluation step: score dev, keep the best model, count loop["stale"] if it stops
        early."""

    def state(self, loop):
        """What the checkpoint holds besides loop and accelerate's state (data position, args)."""
        return {}


def add_optimizer_args(group, lr, warmup_ratio, lr_help=None):
    """The knobs every loop shares: its optimizer and schedule, accumulation, clipping, seed and
    precision (distill.py and finetune.py each give their own learning rate and warm-up)."""
    from common.engine import PRECISIONS
    from common.run import non_negative_float, non_negative_int, positive_float, positive_int, unit_float
    group.add_argument("--grad-accum", type=positive_int, default=1, help="micro-batches per optimizer step")
    group.add_argument("--lr", type=positive_float, default=lr, help=lr_help)
    group.add_argument("--weight-decay", type=non_negative_float, default=0.01, help="AdamW's, not on biases and norms")
    group.add_argument("--lr-scheduler", choices=SCHEDULERS, default="linear", help="the learning-rate schedule after warm-up")
    group.add_argument("--warmup-ratio", type=unit_float, default=warmup_ratio, help="share of the steps warming up")
    group.add_argument("--max-grad-norm", type=positive_float, default=1.0, help="gradients clipped to this norm")
    group.add_argument("--seed", type=non_negative_int, default=42)
    group.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="auto: bf16 (or fp16) autocast on a GPU, fp32 on CPU")


def optimizer_and_schedule(model, args, max_steps, device):
    """AdamW over the trained weights (no decay on biases and norms) and --lr-scheduler's schedule
    with --warmup-ratio of max_steps warming up: the same for every loop."""
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    groups = [{"params": [p for n, p in trained if not n.endswith(NO_DECAY)], "weight_decay": args.weight_decay},
              {"params": [p for n, p in trained if n.endswith(NO_DECAY)], "weight_decay": 0.0}]
    # fused AdamW: one kernel for all parameters on a GPU, instead of one launch per tensor
    optimizer = torch.optim.AdamW(groups, lr=args.lr, fused=device.type == "cuda")
    scheduler = get_scheduler(args.lr_scheduler, optimizer, num_warmup_steps=int(args.warmup_ratio * max_steps),
                              num_training_steps=max(max_steps, 1))
    return optimizer, scheduler


def start_or_resume(engine, work_dir, resume, max_steps, check=None):
    """The checkpoint's state when --resume finds one (check(state) may refuse it), else None
    with work_dir emptied for a fresh run."""
    state = engine.load(work_dir / "checkpoint") if resume else None
    if state is not None:
        if check:
            check(state)
        if engine.is_main:
            print(f"resuming from step {state['loop']['step']} of {max_steps}", file=sys.stderr)
    elif engine.is_main:
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True)
    engine.barrier()
    return state


def run_steps(engine, task, model, optimizer, scheduler, loop, cadence, work_dir):
    """Optimizer steps from loop["step"] to cadence.max_steps, or until early stopping;
    checkpoints into work_dir. A stop signal saves the checkpoint and raises interrupted_at."""
    progress = engine.progress(cadence.max_steps, loop["step"], task.name)
    clock = time.perf_counter()

    def finished(step):
        return step >= cadence.max_steps or (cadence.patience is not None and loop["stale"] >= cadence.patience)

    def save_checkpoint():
        nonlocal clock
        loop["train_seconds"] += time.perf_counter() - clock
        engine.save(work_dir / "checkpoint", {**task.state(loop), "loop": loop})
        clock = time.perf_counter()

    model.train()
    with StopSignals() as stop:
        while not finished(loop["step"]):
            step = loop["step"]
            engine.seed_step(cadence.seed, step)
            for micro in range(cadence.grad_accum):
                inputs = task.micro_batch(step, micro)
                if inputs is None:
                    continue
                with engine.micro_batch(model, micro, cadence.grad_accum):
                    loss = task.loss(inputs)
                    engine.backward(loss / cadence.grad_accum)
            engine.optimizer_step(model, optimizer, scheduler, cadence.max_grad_norm)
            loop["step"] = step = step + 1
            progress.update(1)
            task.logged(loop, loss, progress)
            evaluated = cadence.eval_steps is not None and (step % cadence.eval_steps == 0 or step == cadence.max_steps)
            if evaluated:
                task.evaluate(loop, loss, progress)
                model.train()
            stopping = engine.any(stop.signum) and not finished(step)
            periodic = cadence.save_steps is not None and step % cadence.save_steps == 0 and step < cadence.max_steps
            if evaluated or periodic or stopping:
                save_checkpoint()
            if stopping:
                progress.close()
                raise interrupted_at(stop.signum, step, work_dir)
    progress.close()
    loop["train_seconds"] += time.perf_counter() - clock
