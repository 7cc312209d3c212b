"""Training-state checkpoints: weights, optimizer, scheduler, RNG and data position.

A checkpoint is written to a temporary folder and renamed over the previous one, so a run
killed at any moment leaves either the old or the new checkpoint, never half of one.
"""
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

STATE_FILE = "training_state.pt"


def rng_state():
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(folder, state):
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.save(state, tmp / STATE_FILE)
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)


def load(folder):
    """The saved state, or None when there is no complete checkpoint."""
    folder = Path(folder)
    if not (folder / STATE_FILE).is_file():
        old = folder.with_name(folder.name + ".old")  # killed between the two renames
        if (old / STATE_FILE).is_file():
            folder = old
        else:
            return None
    return torch.load(folder / STATE_FILE, map_location="cpu", weights_only=False)
