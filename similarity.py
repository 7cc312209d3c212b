#!/usr/bin/env python
"""Per-domain similarity of the generic corpus to the target domains, against the per-domain gain
of target-only over generic-only distillation (the paper's third finding).

    python similarity.py --tokenizer $TEACHER --generic-data wiki/en.jsonl \
        --data massive-1.1 --locales en-US --out-root out/study

The domains are the classes of the labelled DC data (--data, any format of common/task_data.py):
its train split, grouped by class, is each domain's text.

similarity = 1 - Jensen-Shannon divergence of teacher-token distributions (common/similarity.py).
gain = mean over seeds of (distill_r1 - distill_r0) on the domain's test utterances, for DC
accuracy and ICNER exact match. Prints the Spearman correlations with permutation p-values, writes similarity.csv and
plots/similarity_vs_gain.png under OUT_ROOT.
"""
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from common.generic import load_generic
from common.models import load_tokenizer
from common.run import ArgumentParser, UsageError, run_cli
from common.similarity import similarity, spearman, spearman_p_value, token_counts
from common.task_data import add_data_args, load_task_data

GAINS = (("dc_accuracy_gain", "dc_test.json", lambda m: m["per_domain_accuracy"]),
         ("exact_match_gain", "icner_test.json", lambda m: {d: v["exact_match"] for d, v in m["per_domain"].items()}))


def domain_gains(out_root, generic="distill_r0", target="distill_r1"):
    """{gain name: {domain: mean gain over seeds}}."""
    gains = {}
    for name, file, per_domain in GAINS:
        by_domain = defaultdict(list)
        for seed_dir in sorted(Path(out_root).glob("seed*")):
            a, b = seed_dir / generic / file, seed_dir / target / file
            if a.is_file() and b.is_file():
                low, high = per_domain(json.loads(a.read_text())["metrics"]), per_domain(json.loads(b.read_text())["metrics"])
                for domain in low.keys() & high.keys():
                    by_domain[domain].append(high[domain] - low[domain])
        gains[name] = {d: float(np.mean(v)) for d, v in by_domain.items()}
    if not any(gains.values()):
        raise UsageError(f"--out-root {out_root}: no {generic} and {target} test results to compare")
    return gains


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tokenizer", required=True, help="the teacher (its tokenizer defines the tokens)")
    p.add_argument("--generic-data", nargs="+", required=True)
    p.add_argument("--generic-text-field", default="text")
    add_data_args(p, required=True, what="the DC data: its train split grouped by class")
    p.add_argument("--out-root", required=True)
    args = p.parse_args(argv)
    out_root = Path(args.out_root)
    gains = domain_gains(out_root)
    tokenizer = load_tokenizer(args.tokenizer)
    generic = token_counts(tokenizer, load_generic(args.generic_data, args.generic_text_field).documents)
    train = load_task_data(args, "train", "dc")[0]
    texts = defaultdict(list)
    for u in train:
        texts[u.domain].append(u.text)
    if len(texts) < 3:
        raise UsageError(f"--data has {len(texts)} class(es): a correlation over domains needs at least 3")
    rows = []
    for domain in sorted(texts):
        row = {"domain": domain, "utterances": len(texts[domain]),
               "similarity": similarity(generic, token_counts(tokenizer, texts[domain]))}
        for name, _, _ in GAINS:
            row[name] = gains[name].get(domain)
        rows.append(row)
    with open(out_root / "similarity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    correlations, p_values = {}, {}
    for name, _, _ in GAINS:
        pairs = [(r["similarity"], r[name]) for r in rows if r[name] is not None]
        if len(pairs) < 3:  # e.g. ICNER data without domains (BIO): no per-domain gains to correlate
            correlations[name] = p_values[name] = float("nan")
            print(f"Spearman(similarity, {name}): not computed, {len(pairs)} domain(s) with a gain "
                  f"({'no per-domain test results match the DC classes' if not pairs else 'fewer than 3'})")
            continue
        correlations[name] = spearman(*zip(*pairs))
        p_values[name] = spearman_p_value(*zip(*pairs), permutations=2000)
        if np.isnan(correlations[name]):  # every domain the same gain (or the same similarity): no ranks
            print(f"Spearman(similarity, {name}): not computed, every one of the {len(pairs)} domains has the same "
                  f"{'gain' if len({g for _, g in pairs}) == 1 else 'similarity'}")
            continue
        print(f"Spearman(similarity, {name}) = {correlations[name]:+.3f} (permutation p = {p_values[name]:.3f}) over "
              f"{len(pairs)} domains (negative: the less similar a domain is to the generic corpus, the more target data helps)")
    (out_root / "similarity.json").write_text(json.dumps({"spearman": correlations, "spearman_p_value": p_values,
                                                          "domains": rows}, indent=2) + "\n")
    plot(rows, correlations, p_values, out_root / "plots" / "similarity_vs_gain.png")
    print(f"wrote {out_root}/similarity.csv, similarity.json, plots/similarity_vs_gain.png", file=sys.stderr)
    return 0


def plot(rows, correlations, p_values, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(GAINS), figsize=(6 * len(GAINS), 4.2))
    for ax, (name, _, _) in zip(axes, GAINS):
        points = [(r["similarity"], 100 * r[name], r["domain"]) for r in rows if r[name] is not None]
        ax.scatter([x for x, _, _ in points], [y for _, y, _ in points])
        for x, y, label in points:
            ax.annotate(label, (x, y), fontsize=7)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set_xlabel("similarity to the generic corpus (1 - JSD)")
        ax.set_ylabel(f"{name} target-only vs generic-only (points)")
        ax.set_title(f"Spearman {correlations[name]:+.2f} (permutation p = {p_values[name]:.2f})", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    run_cli(main)
