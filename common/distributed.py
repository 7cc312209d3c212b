"""One process or many (torchrun): rank, device, mixed precision."""
import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

from common.run import UsageError


@dataclass
class Context:
    rank: int
    world_size: int
    device: torch.device
    precision: str  # fp32, bf16 or fp16

    @property
    def is_main(self):
        return self.rank == 0

    def autocast(self):
        if self.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def barrier(self):
        if self.world_size > 1:
            dist.barrier()

    def any(self, flag):
        """True in every process when flag is true in any (a stop signal that reached one rank)."""
        return bool(flag) if self.world_size == 1 else self.all_reduce_sum(float(bool(flag))) > 0

    def all_reduce_sum(self, value):
        """Sum a float over processes (returns it unchanged in one process)."""
        if self.world_size == 1:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device if self.device.type == "cuda" else "cpu")
        dist.all_reduce(t)
        return t.item()


def setup(precision="auto"):
    """Start the process group under torchrun (gloo on CPU, NCCL on GPUs); pick device and precision."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = 0, 0
    if world_size > 1:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
        rank, local_rank = dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.type == "cuda" else "fp32"
    if precision != "fp32" and device.type != "cuda":
        raise UsageError(f"--precision {precision} needs a GPU; use fp32 (or auto) on CPU")
    return Context(rank, world_size, device, precision)


def teardown(ctx):
    if ctx.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()
