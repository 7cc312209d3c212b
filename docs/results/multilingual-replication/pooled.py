"""The secondary, after-the-fact figure of plan.md: generic-only - scratch over the 10 seeds pooled.

Seeds 1-5 (the multilingual CPU default) survive only as aggregate.py's summary per finding (mean
and sd of the per-seed differences), so the pooled figure is a t-interval from those summaries
(no bootstrap over test utterances). It is not a verdict: see plan.md.

    python pooled.py ../multilingual-select/findings.csv findings.csv
"""
import csv
import math
import sys

from scipy import stats


def summaries(path):
    """(locale -> (n, mean, sd)) of generic-only - scratch on DC accuracy, in points."""
    rows = csv.DictReader(open(path))
    return {r["locale"]: (int(r["seeds"]), 100 * float(r["diff"]), 100 * float(r["sd"])) for r in rows
            if (r["better"], r["worse"], r["metric"]) == ("distill_r0", "scratch", "dc_accuracy")}


def pool(a, b):
    """Mean, sd and n of two samples given as (n, mean, sd): their sums of squares added."""
    n = a[0] + b[0]
    mean = (a[0] * a[1] + b[0] * b[1]) / n
    squares = sum((k - 1) * sd ** 2 + k * m ** 2 for k, m, sd in (a, b))
    return n, mean, math.sqrt((squares - n * mean ** 2) / (n - 1))


first, replication = summaries(sys.argv[1]), summaries(sys.argv[2])
print("generic-only - scratch, DC accuracy points: seeds 1-5 | 6-10 | pooled 1-10 [95% t-interval]")
for locale in first:
    n, mean, sd = pool(first[locale], replication[locale])
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    print(f"{locale:6s} {first[locale][1]:+.2f} | {replication[locale][1]:+.2f} | "
          f"{mean:+.2f} [{mean - half:+.2f}, {mean + half:+.2f}] (n={n}, sd {sd:.2f})")
