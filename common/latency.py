"""Latency benchmark of PyTorch and ONNX models, each in a fresh Python process (`python -m
common.latency`) that imports only what serving that model imports, so that its peak memory is
what a service of it holds: ONNX Runtime and the tokenizer for an ONNX model, torch and
transformers for a PyTorch one, never the exporter's modules. A service pays for tokenisation too,
so every timed call tokenises its utterances."""
import json
import os
import resource
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from common.run import UsageError


def cpu_name():
    """The CPU's model name, as /proc/cpuinfo gives it (None elsewhere)."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def size_on_disk_mb(folder):
    files = [f for f in Path(folder).iterdir() if f.suffix in (".onnx", ".safetensors", ".bin")]
    return round(sum(f.stat().st_size for f in files) / 2 ** 20, 2)


def _load(kind, folder, threads):
    """A callable texts -> outputs for one model kind."""
    if kind == "package":  # the routed system end to end: DC, then each domain's ICNER, decoded
        from common.pipeline import Pipeline
        pipeline = Pipeline(folder, threads)
        return lambda texts: pipeline.predict(texts, 64, len(texts))
    if kind == "onnx":
        from common.inference import OnnxModel
        model = OnnxModel(folder, threads)
        tok = model.tokenizer

        def run(texts):
            enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="np")
            return model.logits_fn(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        return run
    import torch
    from transformers import AutoModel, AutoTokenizer

    from common.tasks import LABELS_FILE, load_labels, task_of
    if (Path(folder) / LABELS_FILE).is_file():
        cls = task_of(load_labels(folder)).model_class()
    else:  # a bare encoder (e.g. the teacher before finetuning): the same encoder compute
        cls = AutoModel
    torch.set_num_threads(threads)
    device = torch.device("cuda" if kind == "torch-cuda" else "cpu")
    model = cls.from_pretrained(folder).eval().to(device)
    tok = AutoTokenizer.from_pretrained(folder)

    def run(texts):
        enc = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
        with torch.inference_mode():
            out = model(input_ids=enc["input_ids"].to(device), attention_mask=enc["attention_mask"].to(device))
        if device.type == "cuda":
            torch.cuda.synchronize()  # time the work, not its launch
        return out
    return run


def _measure(kind, folder, runs, threads, warmup, rounds):
    """Time every (batch size, texts) of runs in this process: its report with its peak memory,
    or the last line of the error that stopped it."""
    try:
        return {"results": _time_runs(_load(kind, folder, threads), runs, warmup, rounds), "peak_mb": peak_memory_mb()}
    except BaseException as err:  # the parent reports it; a traceback from a child helps no one
        return {"error": traceback.format_exception_only(type(err), err)[-1].strip()}


def _time_runs(run, runs, warmup, rounds=1):
    """Per (batch size, texts): every batch timed once per round, after warmup batches. The
    percentiles pool every round; each round's p50 is kept, so that the rounds' spread says how
    far a figure moves from one pass to the next."""
    results = []
    for batch_size, texts in runs:
        batches = [texts[i:i + batch_size] for i in range(0, len(texts), batch_size)]
        for batch in batches[:warmup]:
            run(batch)
        per_round = []
        for _ in range(rounds):
            times = []
            for batch in batches:
                start = time.perf_counter()
                run(batch)
                times.append(time.perf_counter() - start)
            per_round.append(np.array(times) * 1000)
        ms = np.concatenate(per_round)
        results.append({"batch_size": batch_size, "calls": len(ms),
                        "p50_ms": round(float(np.percentile(ms, 50)), 3),
                        "p95_ms": round(float(np.percentile(ms, 95)), 3),
                        "p99_ms": round(float(np.percentile(ms, 99)), 3),
                        "p50_ms_per_round": [round(float(np.percentile(r, 50)), 3) for r in per_round],
                        "throughput_per_s": round(rounds * len(texts) / (ms.sum() / 1000), 1)})
    return results


def within_spread(rows, batch="batch_1"):
    """For each row, the other rows whose per-round p50 range overlaps its own: their gap is
    within the run-to-run spread, so the table cannot tell them apart."""
    spans = [(min(r[batch]["p50_ms_per_round"]), max(r[batch]["p50_ms_per_round"])) for r in rows]
    return [[rows[j]["model"] for j, (lo, hi) in enumerate(spans) if j != i and lo <= spans[i][1] and spans[i][0] <= hi]
            for i in range(len(rows))]


def peak_memory_mb():
    """This process's peak resident memory. VmHWM, because ru_maxrss survives execve on Linux and
    a spawned child would report its parent's peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def benchmark(kind, folder, runs, threads, warmup=10, rounds=3, timeout_s=3600):
    """Latency p50/p95/p99 (ms) and throughput (utterances/s) for each (batch size, texts) of
    runs, and the peak memory (MB) of the process that served them all. A child that fails,
    dies or runs past timeout_s is a BenchmarkError, never a wait without end."""
    request = {"kind": kind, "folder": str(folder), "runs": [(b, list(t)) for b, t in runs], "threads": threads,
               "warmup": warmup, "rounds": rounds}
    repo = str(Path(__file__).resolve().parents[1])  # `-m common.latency` from wherever the caller runs
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    proc = subprocess.Popen([sys.executable, "-m", "common.latency"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env=env, text=True)
    try:
        out, _ = proc.communicate(json.dumps(request), timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchmarkError(f"benchmark of {folder}: no result after the time limit") from None
    reports = [line for line in out.splitlines() if line.startswith("{")]
    if not reports:
        raise BenchmarkError(f"benchmark of {folder}: its process exited with code {proc.returncode} before reporting")
    outcome = json.loads(reports[-1])
    if "error" in outcome:
        lines = [line.strip() for line in outcome["error"].splitlines() if line.strip()]  # one line, never a trace
        raise BenchmarkError(f"benchmark of {folder} failed: {'; '.join(lines[:2])[:300]}")
    return outcome["results"], outcome["peak_mb"]


class BenchmarkError(UsageError):
    """A benchmark that could not run (most often a model folder that does not load): one line."""


if __name__ == "__main__":  # the child: one request on stdin, its report as the last line of stdout
    request = json.loads(sys.stdin.read())
    print(json.dumps(_measure(request["kind"], request["folder"], request["runs"], request["threads"],
                              request["warmup"], request["rounds"])), flush=True)
