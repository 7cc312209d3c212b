"""Paired test-set differences of the width pilot (pilot_width.sh): DC accuracy of one finetuned
student minus another on the same es-ES test utterances, with a 95% bootstrap over the utterances.

    python paired.py /work/runs/pilot-width
"""
import json
import sys

import numpy as np

PAIRS = [("select_4x256_lr3e-4", "random_4x256_lr3e-4"), ("teacher_4x384_lr3e-4", "random_4x384_lr3e-4"),
         ("teacher_4x384_lr1e-4", "random_4x384_lr3e-4"), ("random_4x384_lr3e-4", "random_4x256_lr3e-4")]


def correct(folder, name):
    rows = json.load(open(f"{folder}/ft_{name}_test.json"))["per_utterance"]
    return rows["id"], np.array(rows["correct"])


rng = np.random.default_rng(0)
for better, worse in PAIRS:
    (ids_a, a), (ids_b, b) = correct(sys.argv[1], better), correct(sys.argv[1], worse)
    assert ids_a == ids_b, "the two reports must cover the same utterances in the same order"
    diff = a - b
    means = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
    low, high = np.percentile(means, [2.5, 97.5])
    print(f"{better} - {worse}: {100 * diff.mean():+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] "
          f"(paired bootstrap over {len(diff)} test utterances)")
