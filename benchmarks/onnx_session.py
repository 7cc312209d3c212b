#!/usr/bin/env python
"""Batch-1 latency of exported ONNX folders side by side, in one process, on real test utterances.

Each round times every folder once per utterance, in turn, so that a machine that speeds up or
slows down during the run moves all of them alike; the ratio of medians is the figure to quote.
"session" is ONNX Runtime's run on pre-tokenised inputs; "end to end" adds tokenisation, as a
service pays it. Models that take turns slow each other: six 2 x 384 int8 models timed together,
each model's call right after the others', took 1.6-1.8x the session time of one of them beside one
other (2026-12-02, 2 cores of an AMD EPYC; docs/results/per-domain-package/). So each timed call is
warm by default (an untimed call on the same input just before it), and --cold times the call a
package whose models take turns pays.

    python benchmarks/onnx_session.py out/x_onnx/int8 out/x_onnx_fused/int8 --threads 1 2
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common.massive import load_massive  # noqa: E402
from common.inference import OnnxModel  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def percentiles(ms):
    q = np.percentile(ms, [50, 95, 99])
    return {"p50": round(float(q[0]), 3), "p95": round(float(q[1]), 3), "p99": round(float(q[2]), 3)}


def encode(model, text):
    enc = model.tokenizer([text], return_tensors="np")
    return enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64)


def time_rounds(models, texts, rounds, cold=False):
    """{name: {"session": [ms], "end to end": [ms]}}, each model timed in turn on every utterance.
    Warm (the default): an untimed call on the same input first, so each model is timed with its
    weights where a service running it alone has them. Cold: the first call after the other models
    ran, as in a package whose models take turns."""
    inputs = {name: [encode(m, t) for t in texts] for name, m in models.items()}
    times = {name: {"session": [], "end to end": []} for name in models}
    for _ in range(rounds):
        for i, text in enumerate(texts):
            for name, model in models.items():
                if not cold:
                    model.logits_fn(*inputs[name][i])
                start = time.perf_counter()
                model.logits_fn(*inputs[name][i])
                times[name]["session"].append(1e3 * (time.perf_counter() - start))
            for name, model in models.items():
                if not cold:
                    model.logits_fn(*inputs[name][i])
                start = time.perf_counter()
                model.logits_fn(*encode(model, text))
                times[name]["end to end"].append(1e3 * (time.perf_counter() - start))
    return times


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("folders", nargs="+", help="export.py fp32/ or int8/ folders")
    p.add_argument("--data", default=str(SHARED / "massive-1.1" / "en-US.jsonl"), help="MASSIVE JSONL (its test partition)")
    p.add_argument("--utterances", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="intra-op threads to compare")
    p.add_argument("--cold", action="store_true", help="time each model's first call after the others ran "
                   "(a package's models taking turns) instead of a warm call")
    args = p.parse_args(argv)
    texts = [u.text for u in load_massive(args.data, None, ["test"])[0][:args.utterances]]
    models = {f"{folder} x{threads}": OnnxModel(folder, threads) for folder in args.folders for threads in args.threads}
    time_rounds(models, texts[:20], 1)  # warm-up
    times = time_rounds(models, texts, args.rounds, args.cold)
    first = next(iter(models))
    print(f"batch 1, {len(texts)} test utterances x {args.rounds} rounds, {'cold' if args.cold else 'warm'} calls, ms; "
          f"ratio: p50 / p50 of {first}")
    print(f"{'model':<60} {'what':<11} {'p50':>7} {'p95':>7} {'p99':>7} {'ratio':>6}")
    for name, kinds in times.items():
        for kind, ms in kinds.items():
            q = percentiles(ms)
            ratio = statistics.median(ms) / statistics.median(times[first][kind])
            print(f"{name:<60} {kind:<11} {q['p50']:7.3f} {q['p95']:7.3f} {q['p99']:7.3f} {ratio:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
