#!/usr/bin/env python
"""REPORT.md of the per-domain package measurement, from its files (run.sh's output folder, or the
landed copy here): each package's test scores with predicted and gold routing, and its batch-1
latency against the DC model's alone, timed in the same package.py run.

    python docs/results/per-domain-package/report.py FOLDER   # writes FOLDER/REPORT.md
"""
import gzip
import json
import sys
from pathlib import Path

PACKAGES = [("global", "one ICNER model for every domain"), ("per-domain", "an ICNER model per domain, 18")]


def read_json(path):
    path = Path(path)
    if not path.is_file() and Path(f"{path}.gz").is_file():
        return json.loads(gzip.open(f"{path}.gz", "rt").read())
    return json.loads(path.read_text())


def package_row(folder, name, what):
    test = read_json(folder / f"package-{name}_test.json")["metrics"]
    latency = read_json(folder / f"package-{name}" / "latency.json")
    dc, package = (next(r for r in latency["rows"] if r["model"].startswith(p)) for p in ("ONNX int8 DC", "package"))
    cells = [f"{name} ({what})", f"{100 * test['dc']['accuracy']:.2f}"]
    for routing in ("predicted_routing", "gold_routing"):
        cells += [f"{100 * test[routing][m]:.2f}" for m in ("intent_accuracy", "exact_match")]
    cells += [f"{dc['batch_1']['p50_ms']:.2f}", f"{package['batch_1']['p50_ms']:.2f}",
              f"{latency['package_over_dc_p50_batch_1']:.2f}", f"{package['batch_32']['p50_ms']:.1f}"]
    return "| " + " | ".join(cells) + " |", latency


def main(folder):
    folder = Path(folder)
    rows = [package_row(folder, name, what) for name, what in PACKAGES]
    machine = f"{rows[0][1]['threads']} threads, {rows[0][1]['cpu']}"
    lines = ["# The deployed NLU system: DC routing to global or per-domain ICNER students", "",
             "The student pilot's 2x384 student (from the teacher's layers, target-only at 1M transfer tokens, "
             "seed 1): its DC model routes each test utterance to the ICNER model of the predicted domain "
             "(predicted routing) or of the gold one (gold routing); all int8 ONNX. Latency: batch 1 over "
             f"300 test utterances x 3 rounds, tokenisation included, {machine}; the DC model alone and the "
             "package timed in the same package.py run.", "",
             "| package | DC accuracy | intent, predicted routing | exact match, predicted | intent, gold routing | "
             "exact match, gold | DC b1 p50 ms | package b1 p50 ms | x the DC model | package b32 p50 ms |",
             "|---|---|---|---|---|---|---|---|---|---|", *(row for row, _ in rows), "",
             "Commands: [run.sh](run.sh) (finetune.py --all-domains, export.py, package.py --benchmark, "
             "evaluate.py on each package); this file: `python docs/results/per-domain-package/report.py "
             "docs/results/per-domain-package`.", ""]
    (folder / "REPORT.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {folder / 'REPORT.md'}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent)
