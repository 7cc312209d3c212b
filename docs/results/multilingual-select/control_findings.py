"""The control's comparisons, with aggregate.py's statistics: the selected, undistilled student
(seed*/selected) against scratch and against the distilled students. Run from the repository root:
    PYTHONPATH=. python docs/results/multilingual-select/control_findings.py /work/runs/ml-select"""
import sys
from pathlib import Path

import common.study as study

study.FINDINGS = [("selected", "scratch", "the teacher's selected weights, undistilled, beat scratch"),
                  ("distill_r0", "selected", "generic-only distillation adds to the selected weights"),
                  ("distill_r1", "selected", "target-only distillation adds to the selected weights")]
runs = study.collect(Path(sys.argv[1]))
for row in study.summarise(runs):
    if row["condition"] == "selected":
        print(f"selected {row['locale']:6s} {100 * row['mean']:.2f} [{100 * row['ci_low']:.2f}, {100 * row['ci_high']:.2f}]")
for locale in ["all", "en-US", "es-ES", "fr-FR"]:
    for r in study.findings(runs, locale):
        pts = lambda x: f"{100 * x:+.2f}"  # noqa: E731
        print(f"{locale:6s} {r['better']:>10s} - {r['worse']:<10s} {pts(r['diff'])} t[{pts(r['ci_low'])}, "
              f"{pts(r['ci_high'])}] b[{pts(r['boot_low'])}, {pts(r['boot_high'])}] {r['verdict']}")
