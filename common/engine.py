"""The training engine under every loop (distillation, DC/ICNER finetuning, masked-LM): device,
precision, processes (torchrun / DDP), gradient accumulation, checkpoints and resume, progress.

It is Hugging Face accelerate underneath (device placement, autocast, DDP, grad scaler, saving
state with every process's RNG), with what our loops add on top: a precision that is checked
against the machine, checkpoints written atomically with the loop's own state (step, data
position, history) and refused on resume when the precision or process count differ, and a
per-step seed so that a resumed run draws what an uninterrupted one would. A loop keeps only what
is its own: its data, its loss, its evaluation.
"""
import os
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path

import torch
from tqdm import tqdm

from common.run import UsageError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
LOOP_STATE = "loop_state.pt"


def inference_device():
    """Where evaluation and prediction with PyTorch models run: the GPU when there is one."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def resolve_precision(precision):
    """auto: bf16 on a GPU that has it (fp16 on older ones), fp32 on CPU; bf16/fp16 need a GPU."""
    cuda = torch.cuda.is_available()
    if precision == "auto":
        return ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if cuda else "fp32"
    if precision != "fp32" and not cuda:
        raise UsageError(f"--precision {precision} needs a GPU; use fp32 (or auto) on CPU")
    return precision


class Engine:
    def __init__(self, precision="auto"):
        from accelerate import Accelerator

        self.precision = resolve_precision(precision)
        # The loops step their schedulers once per optimizer step themselves: accelerate would
        # otherwise step them once per process.
        # cpu=True on a machine without CUDA: accelerate then runs torchrun's processes as gloo DDP
        self.accelerator = Accelerator(mixed_precision="no" if self.precision == "fp32" else self.precision,
                                       cpu=not torch.cuda.is_available(), step_scheduler_with_optimizer=False)
        self.device = self.accelerator.device
        self.rank, self.world_size = self.accelerator.process_index, self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process

    def info(self):
        """What run.json records about where and how a run trained."""
        import accelerate
        name = torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else None
        return {"device": str(self.device), "device_name": name, "precision": self.precision,
                "world_size": self.world_size, "cpu_threads": torch.get_num_threads(),
                "accelerate": accelerate.__version__}

    # -- the training step ---------------------------------------------------------------------
    def prepare(self, *objects):
        """Model(s), optimizer, scheduler onto the device, in DDP under torchrun."""
        return self.accelerator.prepare(*objects)

    def unwrap(self, model):
        return self.accelerator.unwrap_model(model)

    def autocast(self):
        """Mixed precision for a model that was not prepared (the teacher)."""
        return self.accelerator.autocast()

    def seed_step(self, seed, step):
        """Dropout (and anything else on the global RNG) depends on the step only, so a resumed
        run draws exactly what an uninterrupted one would, in any number of processes."""
        torch.manual_seed(seed * 1_000_003 + step * 997 + self.rank)

    def micro_batch(self, model, index, count):
        """Gradient accumulation: DDP synchronises gradients on the last micro-batch only."""
        return nullcontext() if index == count - 1 else self.accelerator.no_sync(model)

    def backward(self, loss):
        self.accelerator.backward(loss)

    def optimizer_step(self, model, optimizer, scheduler, max_grad_norm=1.0):
        """Clip (unscaled under fp16), step optimizer and schedule, clear gradients."""
        self.accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

    # -- processes -----------------------------------------------------------------------------
    def barrier(self):
        self.accelerator.wait_for_everyone()

    def mean(self, value):
        """The mean over processes of a float or a 0-d tensor, as a float (a host sync: call it
        at logging steps, not every step)."""
        value = torch.as_tensor(value, dtype=torch.float32, device=self.device).detach()
        return self.accelerator.reduce(value, reduction="mean").item() if self.world_size > 1 else value.item()

    def any(self, flag):
        """True in every process when flag is true in any (a stop signal that reached one rank)."""
        return bool(flag) if self.world_size == 1 else self.mean(float(bool(flag))) > 0

    def progress(self, total, initial, desc):
        return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not self.is_main,
                    dynamic_ncols=True, file=sys.stderr)

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self, folder, loop_state):
        """Model, optimizer, scheduler, grad scaler and every process's RNG (accelerate), plus the
        loop's own state, written to folder.tmp and renamed over folder: a run killed at any
        moment leaves the old or the new checkpoint, never half of one."""
        folder = Path(folder)
        tmp, old = folder.with_name(folder.name + ".tmp"), folder.with_name(folder.name + ".old")
        if self.is_main:
            shutil.rmtree(tmp, ignore_errors=True)
        self.barrier()
        self.accelerator.save_state(str(tmp), safe_serialization=False)  # tied weights pickle as is
        # every process writes its own RNG state into tmp: none may still be writing when it is renamed
        self.barrier()
        if self.is_main:
            engine = {"precision": self.precision, "world_size": self.world_size}
            torch.save({**loop_state, "engine": engine}, tmp / LOOP_STATE)
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        self.barrier()

    def has_checkpoint(self, folder):
        folder = Path(folder)
        return (folder / LOOP_STATE).is_file() or (folder.with_name(folder.name + ".old") / LOOP_STATE).is_file()

    def load(self, folder):
        """Restore the last complete checkpoint into the prepared objects; returns the loop's
        state, or None when there is none. Refuses one made on another precision or number of
        processes: the run would not continue as it started."""
        folder = Path(folder)
        if not self.has_checkpoint(folder):
            return None
        if not (folder / LOOP_STATE).is_file():
            folder = folder.with_name(folder.name + ".old")  # killed between the two renames
        state = torch.load(folder / LOOP_STATE, map_location="cpu", weights_only=False)
        saved = state.pop("engine")
        differ = [f"{name} {saved[name]} (now {now})" for name, now in
                  (("precision", self.precision), ("world_size", self.world_size)) if saved[name] != now]
        if differ:
            raise UsageError(f"--resume: the checkpoint in {folder} was made with {', '.join(differ)}; "
                             "resume with the same settings or pass --overwrite to start again")
        self.accelerator.load_state(str(folder))
        return state

    def release(self):
        """Forget the prepared objects: the next prepare() starts another run (per-domain models),
        whose checkpoints must hold only its own model, optimizer and schedule."""
        self.accelerator.free_memory()

    def end(self):
        self.accelerator.end_training()
