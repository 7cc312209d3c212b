"""What every script shares about a run: one-line errors, atomic output folders, run.json."""
import argparse
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


class UsageError(Exception):
    """Bad input from the user: printed as one line, never as a traceback."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the run; the message says what was kept. A BaseException, like
    KeyboardInterrupt, so that no `except Exception` on the way swallows it."""

    def __init__(self, signum, message):
        super().__init__(message)
        self.exit_code = 128 + signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


def interrupted_at(signum, step, work_dir):
    """What a training loop raises once it has saved its checkpoint after a stop signal. signum is
    None in a process that stops because another one got the signal (torchrun): say SIGTERM."""
    return Interrupted(signum or signal.SIGTERM, f"interrupted at step {step}; rerun with --resume to continue "
                                                 f"(checkpoint in {work_dir})")


class StopSignals:
    """Turns SIGINT and SIGTERM into a flag that a training loop reads between steps, so it can
    save a checkpoint and stop cleanly instead of dying mid-write.

        with StopSignals() as stop:
            for step ...:
                ...
                if stop.signum:
                    save(); raise interrupted_at(stop.signum, step, work_dir)
    """

    def __init__(self):
        self.signum = None
        self._previous = {}

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C: stop now, as the user insists
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self):
        for signum in (signal.SIGINT, signal.SIGTERM):
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _terminate(signum, frame):
    raise Interrupted(signum, "terminated; no result was written")


def run_cli(main, argv=None):
    """Run a script's main(). A UsageError becomes `script: error: ...` and exit status 2; an
    interruption (SIGINT / SIGTERM) one line and 130 / 143, never a traceback."""
    prog = Path(sys.argv[0]).name
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM would otherwise kill without any cleanup
    try:
        return main(argv)
    except UsageError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; no result was written", file=sys.stderr)
        sys.exit(130)
    finally:
        signal.signal(signal.SIGTERM, previous)


def partial_dir(output_dir):
    """Where a run works until it is complete; renamed to output_dir at the end."""
    output_dir = Path(output_dir)
    return output_dir.with_name(output_dir.name + ".partial")


def check_output_dir(output_dir, overwrite, resume):
    """Refuse to clobber a finished result unless asked; say how to resume an unfinished one."""
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UsageError(f"--output-dir {output_dir} is a file, not a folder: remove it or choose another path")
    if output_dir.exists() and not overwrite:
        raise UsageError(f"--output-dir {output_dir} already exists (pass --overwrite to replace it)")
    work = partial_dir(output_dir)
    if work.exists() and not resume and not overwrite:
        raise UsageError(f"{work} holds an unfinished run: pass --resume to continue it "
                         "or --overwrite to start again")
    check_writable_parent(output_dir, "--output-dir")


def check_writable_parent(path, flag):
    """Fail before any work when `path` could not be created: a missing or unwritable parent.
    Writes and removes a probe file, since os.access says yes to root on read-only mounts."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: parent folder {parent} does not exist")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".kd-write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"{flag} {path}: cannot write in {parent} ({err.strerror})") from None


def check_output_file(path, flag="--output"):
    """A file to be written at the end of a run: refuse a folder or an unwritable place up front."""
    if Path(path).is_dir():
        raise UsageError(f"{flag} {path} is a folder, not a file")
    check_writable_parent(path, flag)


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


def run_record(script, args, engine=None, **fields):
    """The head of every run.json: the script, its arguments, the package versions and, for a
    training run, where and how it trained (Engine.info); then the script's own fields."""
    return {"script": script, "args": vars(args), "versions": versions(), **(engine.info() if engine else {}), **fields}


def versions():
    """Package versions from their metadata: importing datasets only to read its version cost
    every script about a second."""
    from importlib.metadata import PackageNotFoundError, version

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return None
    import torch  # its __version__ names the build (+cpu, +cu128), the metadata does not
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        **{name: installed(name) for name in ("transformers", "tokenizers", "datasets", "accelerate", "numpy",
                                              "optimum", "onnxruntime")},
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


def _number(kind, low, high=None, low_open=False, what=None):
    """An argparse type: `kind` within [low, high] (or (low, high] when low_open), checked at
    parse time so a bad number is a one-line error before any work."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not math.isfinite(value) or (value <= low if low_open else value < low) or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value
    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _number(int, 1, what="a positive integer")
non_negative_int = _number(int, 0, what="an integer >= 0")
positive_float = _number(float, 0.0, low_open=True, what="a number > 0")
non_negative_float = _number(float, 0.0, what="a number >= 0")
unit_float = _number(float, 0.0, 1.0, what="a number in [0, 1]")
probability = _number(float, 0.0, 1.0, low_open=True, what="a number in (0, 1]")


def existing_folder(text):
    """An argparse type: a folder that exists."""
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a folder")
    return Path(text)
