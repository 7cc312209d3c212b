#!/usr/bin/env python
"""Each variant of the 2 x 384 student against the student pilot's (the baseline), paired utterance
by utterance on test with the studies' bootstrap over test utterances (one seed each, so the
interval holds the test set's variance, not the training seed's); its share of the 3e-4 teacher's
score, finetuned for 3 epochs as the profile does and for 6 (teacher6); its ICNER dev curve and
job times.

    python docs/results/pilot-slot-gap/compare.py > docs/results/pilot-slot-gap/compare.txt
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
JOB = "student_2x384-teacher__seed1__distill_r1"
BASELINE = HERE.parent / "pilot-students" / "jobs"
TEACHERS = {"3 epochs": HERE.parent / "pilot-teacher" / "jobs" / "seed1__teacher",
            "6 epochs": HERE / "jobs" / "teacher6" / "seed1__teacher"}
TEACHERS = {label: prefix for label, prefix in TEACHERS.items() if Path(f"{prefix}__icner_test.json.gz").is_file()}
METRICS = {"dc": ["dc_accuracy"], "icner": ["intent_accuracy", "slot_f1", "exact_match"]}


def per_utterance(prefix, task):
    """evaluate.py's per-utterance counts, in utterance-id order."""
    counts = json.loads(gzip.open(f"{prefix}__{task}_test.json.gz", "rt").read())["per_utterance"]
    order = np.argsort(counts["id"])
    return {k: np.asarray(v)[order] for k, v in counts.items() if k not in ("id", "locale")}


def score(counts, metric):
    n = len(next(iter(counts.values())))
    return 100 * float(STATISTICS[metric]({k: v.sum() for k, v in counts.items()}, n))


def record(prefix, name):
    return json.loads(Path(f"{prefix}__{name}_run.json").read_text())


def describe(label, prefix):
    """The job's ICNER dev curve (exact match per evaluation) and its steps' wall times."""
    curve = ", ".join(f"{100 * h['dev']:.2f}" for h in record(prefix, "icner")["history"])
    times = [f"{name} {record(prefix, name)['timings']['wall_s'] / 60:.1f} min" for name in ("student", "dc", "icner")
             if Path(f"{prefix}__{name}_run.json").is_file()]   # a teacher job distils no student
    print(f"{label}: ICNER dev exact match by evaluation {curve}; {', '.join(times)}")


def compare(label, prefix, reference, shares=True):
    """prefix's job minus reference's, metric by metric, with its share of each teacher's score."""
    print(f"## {label}\n")
    print("metric              this reference  difference [paired bootstrap 95%]"
          + ("".join(f"  of teacher, {t}" for t in TEACHERS) if shares else ""))
    for task, metrics in METRICS.items():
        new, old = per_utterance(prefix, task), per_utterance(reference, task)
        teachers = [per_utterance(t, task) for t in TEACHERS.values()] if shares else []
        for metric in metrics:
            diff, low, high = paired_bootstrap_ci([new], [old], STATISTICS[metric])
            print(f"{metric:<16}{score(new, metric):>8.2f} {score(old, metric):>9.2f}"
                  f"   {100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}]          "
                  + "".join(f"{100 * score(new, metric) / score(t, metric):>20.1f}%" for t in teachers))
    describe(label.split()[0], prefix)
    print()


print("The 2 x 384 student from the teacher's layers, target-only at 1M transfer tokens, seed 1.")
for label, prefix in TEACHERS.items():
    print(f"Teacher (FT_LR 3e-4, {label}, seed 1): " + ", ".join(
        f"{m} {score(per_utterance(prefix, t), m):.2f}" for t, ms in METRICS.items() for m in ms))
describe("baseline", BASELINE / JOB)
print()
if len(TEACHERS) == 2:
    compare("teacher6 minus the teacher at 3 epochs", TEACHERS["6 epochs"], TEACHERS["3 epochs"], shares=False)
for variant in sorted(p.name for p in (HERE / "jobs").iterdir() if (p / f"{JOB}__icner_test.json.gz").is_file()):
    compare(f"{variant} minus the baseline", HERE / "jobs" / variant / JOB, BASELINE / JOB)
