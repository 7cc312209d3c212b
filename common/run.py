"""What every script shares about a run: one-line errors, atomic output folders, run.json."""
import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: printed as one line, never as a traceback."""


def run_cli(main, argv=None):
    """Run a script's main(); a UsageError becomes `script: error: ...` and exit status 2."""
    prog = Path(sys.argv[0]).name
    try:
        return main(argv)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)


def partial_dir(output_dir):
    """Where a run works until it is complete; renamed to output_dir at the end."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + ".partial")


def check_output_dir(output_dir, overwrite, resume):
    """Refuse to clobber a finished result unless asked; say how to resume an unfinished one."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise UsageError(f"--output-dir {output_dir} already exists (pass --overwrite to replace it)")
    work = partial_dir(output_dir)
    if work.exists() and not resume and not overwrite:
        raise UsageError(f"{work} holds an unfinished run: pass --resume to continue it "
                         "or --overwrite to start again")
    if not output_dir.parent.exists():
        raise UsageError(f"--output-dir {output_dir}: parent folder {output_dir.parent} does not exist")


def publish(work_dir, output_dir, keep=("checkpoint",)):
    """Move the finished files of work_dir to output_dir in one rename.

    Files named in `keep` (resume state) are dropped: a finished output holds only the result.
    """
    work_dir, output_dir = Path(work_dir), Path(output_dir)
    for name in keep:
        shutil.rmtree(work_dir / name, ignore_errors=True)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(work_dir, output_dir)


def write_json_atomic(path, obj):
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, default=str)
        f.write("\n")
    os.replace(tmp, path)


def file_fingerprint(path):
    """sha256 of a file's bytes, so run.json says exactly which data a result came from."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(Path(path).resolve()), "sha256": digest.hexdigest(),
            "bytes": Path(path).stat().st_size}


def versions():
    import datasets
    import numpy
    import tokenizers
    import torch
    import transformers
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "datasets": datasets.__version__,
        "numpy": numpy.__version__,
        "kd_transfer_commit": _git_commit(),
        "platform": platform.platform(),
    }


def _git_commit():
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


@contextmanager
def timed(timings, name):
    """Add the wall time of a block to timings[name] (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - start, 3)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block): bad input is one line everywhere."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")
