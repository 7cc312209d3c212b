"""Paired test-set differences of the width pilot (pilot_width.sh): DC accuracy of one finetuned
student minus another on the same es-ES test utterances, with the study's paired bootstrap
(common.metrics.paired_bootstrap_ci; one seed, so it resamples the test utterances only).

    python paired.py ../runs/pilot-width
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the repository root, for common/
from common.metrics import paired_bootstrap_ci  # noqa: E402

PAIRS = [("select_4x256_lr3e-4", "random_4x256_lr3e-4"), ("teacher_4x384_lr3e-4", "random_4x384_lr3e-4"),
         ("teacher_4x384_lr1e-4", "random_4x384_lr3e-4"), ("random_4x384_lr3e-4", "random_4x256_lr3e-4")]


def correct(folder, name):
    rows = json.load(open(f"{folder}/ft_{name}_test.json"))["per_utterance"]
    return rows["id"], {"correct": rows["correct"]}


for better, worse in PAIRS:
    (ids_a, a), (ids_b, b) = correct(sys.argv[1], better), correct(sys.argv[1], worse)
    assert ids_a == ids_b, "the two reports must cover the same utterances in the same order"
    diff, low, high = paired_bootstrap_ci([a], [b], lambda sums, n: sums["correct"] / n)
    print(f"{better} - {worse}: {100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] "
          f"(paired bootstrap over {len(ids_a)} test utterances)")
