#!/usr/bin/env python
"""The two seed-1 teachers on test, paired utterance by utterance: FT_LR 3e-4 (this pilot's jobs/)
minus 1e-4 (the student pilot's), with the paired bootstrap over test utterances that the studies
use (one seed each, so the interval holds the test set's variance, not the training seed's).

    python docs/results/pilot-teacher/compare.py > docs/results/pilot-teacher/compare.txt
"""
import gzip
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from common.metrics import paired_bootstrap_ci  # noqa: E402
from common.study import STATISTICS  # noqa: E402

HERE = Path(__file__).resolve().parent
RUNS = {"3e-4": HERE / "jobs", "1e-4": HERE.parent / "pilot-students" / "jobs"}
METRICS = {"dc": ["dc_accuracy"], "icner": ["intent_accuracy", "slot_f1", "exact_match"]}


def per_utterance(jobs, task):
    """evaluate.py's per-utterance counts, in utterance-id order."""
    counts = json.loads(gzip.open(jobs / f"seed1__teacher__{task}_test.json.gz", "rt").read())["per_utterance"]
    order = np.argsort(counts["id"])
    return {k: np.asarray(v)[order] for k, v in counts.items() if k not in ("id", "locale")}


def score(counts, metric):
    n = len(next(iter(counts.values())))
    return 100 * float(STATISTICS[metric]({k: v.sum() for k, v in counts.items()}, n))


print("metric            3e-4    1e-4   3e-4 - 1e-4 [paired bootstrap 95%]")
for task, metrics in METRICS.items():
    new, old = (per_utterance(RUNS[lr], task) for lr in ("3e-4", "1e-4"))
    for metric in metrics:
        diff, low, high = paired_bootstrap_ci([new], [old], STATISTICS[metric])
        print(f"{metric:<16}{score(new, metric):>7.2f} {score(old, metric):>7.2f}"
              f"   {100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]")
