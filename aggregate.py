#!/usr/bin/env python
"""Aggregate a reproduce.sh study: mean and 95% CI over seeds per condition, gaps to generic-only,
budgets and wall times, and a plot of every metric against the target ratio.

    python aggregate.py --out-root out/study

Reads OUT_ROOT/seed*/<condition>/{dc_test.json, icner_test.json, student/run.json, dc/run.json,
icner/run.json}; writes OUT_ROOT/results.csv, results.md (at-a-glance tables, the paper's findings
with verdicts read off paired CIs, every row), findings.csv and plots/metrics_vs_ratio.png.
"""
import csv
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

from common.metrics import mean_ci
from common.run import ArgumentParser, UsageError, run_cli

# (name in the tables, test file, key in its metrics, higher is better)
METRICS = [("dc_accuracy", "dc_test.json", "accuracy", True),
           ("intent_accuracy", "icner_test.json", "intent_accuracy", True),
           ("slot_f1", "icner_test.json", "slot_f1", True),
           ("semer", "icner_test.json", "semer", False),
           ("exact_match", "icner_test.json", "exact_match", True)]
BASELINE = "distill_r0"  # generic only
# The paper's findings as paired comparisons (better, worse, claim): per seed, the difference of
# the two conditions (sign flipped for SemER, so positive always means 'better' holds).
FINDINGS = [("distill_r0", "scratch", "distillation (even generic-only) beats training from scratch"),
            ("distill_r0.3", "distill_r0", "7:3 generic:target beats generic only"),
            ("distill_r1", "distill_r0.3", "target only beats 7:3 generic:target"),
            ("distill_r1", "distill_r0", "target only beats generic only"),
            ("adapted_r1", "distill_r1", "an adapted teacher helps (target-only transfer set)"),
            ("adapted_r0", "distill_r0", "an adapted teacher helps (generic-only transfer set)")]


def condition_order(name):
    """scratch, distilled by ratio, adapted-teacher students by ratio, teacher."""
    ratio = re.search(r"_r([\d.]+)$", name)
    group = {"scratch": 0, "distill": 1, "adapted": 2, "teacher": 3}.get(name.split("_")[0], 4)
    return group, float(ratio.group(1)) if ratio else 0.0


def read_json(path):
    return json.loads(path.read_text()) if path.is_file() else None


def collect(out_root):
    """{condition: {seed: {"metrics": {(locale, metric): value}, "budget": ..., "wall": {...}}}}."""
    runs = defaultdict(dict)
    for seed_dir in sorted(out_root.glob("seed*")):
        for cond_dir in sorted(p for p in seed_dir.iterdir() if p.is_dir()):
            values, wall = {}, {}
            for name, file, key, _ in METRICS:
                result = read_json(cond_dir / file)
                if result is None:
                    continue
                m = result["metrics"]
                values[("all", name)] = m[key]
                if name == "dc_accuracy":
                    for locale, group in m.get("per_group", {}).items():
                        values[(locale, name)] = group["accuracy"]
                else:
                    for locale, group in m.get("per_locale", {}).items():
                        values[(locale, name)] = group[{"slot_f1": "slot_f1_spans"}.get(key, key)]
            for step in ("student", "dc", "icner"):
                run = read_json(cond_dir / step / "run.json")
                if run:
                    wall[step] = run["timings"]["wall_s"]
            student = read_json(cond_dir / "student" / "run.json")
            runs[cond_dir.name][seed_dir.name] = {
                "metrics": values, "wall": wall,
                "ratio": student["transfer"]["target_ratio"] if student and student["transfer"]["tokens_seen"] else None,
                "tokens": student["transfer"]["tokens_seen"] if student else None}
    if not runs:
        raise UsageError(f"--out-root {out_root}: no seed*/<condition> results found")
    return runs


def locales_of(runs):
    """"all" first, then each locale; just "all" when there is one locale (its rows would repeat it)."""
    locales = sorted({loc for seeds in runs.values() for r in seeds.values() for loc, _ in r["metrics"]},
                     key=lambda loc: (loc != "all", loc))
    return ["all"] if len(locales) == 2 else locales


def summarise(runs):
    rows = []
    locales = locales_of(runs)
    for cond in sorted(runs, key=condition_order):
        seeds = runs[cond]
        for locale in locales:
            for name, _, _, _ in METRICS:
                values = [r["metrics"].get((locale, name)) for r in seeds.values()]
                if all(v is None for v in values):
                    continue
                mean, low, high = mean_ci(values)
                row = {"condition": cond, "locale": locale, "metric": name, "seeds": sum(v is not None for v in values),
                       "mean": mean, "ci_low": low, "ci_high": high}
                base = runs.get(BASELINE, {})
                gaps = [r["metrics"].get((locale, name)) - base[s]["metrics"][(locale, name)]
                        for s, r in seeds.items() if s in base and r["metrics"].get((locale, name)) is not None
                        and (locale, name) in base[s]["metrics"]]
                row["gap_vs_generic"], row["gap_ci_low"], row["gap_ci_high"] = mean_ci(gaps) if cond != BASELINE else (None,) * 3
                row["distill_tokens"] = next((r["tokens"] for r in seeds.values() if r["tokens"] is not None), None)
                for step in ("student", "dc", "icner"):
                    walls = [r["wall"][step] for r in seeds.values() if step in r["wall"]]
                    row[f"{step}_wall_s"] = round(sum(walls) / len(walls), 1) if walls else None
                rows.append(row)
    return rows


def findings(runs, locale="all"):
    """One row per (finding, metric) whose two conditions both ran: the mean paired difference
    over seeds, its 95% CI and a verdict read off the CI."""
    rows = []
    for better, worse, claim in FINDINGS:
        if better not in runs or worse not in runs:
            continue
        for name, _, _, higher in METRICS:
            sign = 1 if higher else -1
            diffs = [sign * (r["metrics"][(locale, name)] - runs[worse][s]["metrics"][(locale, name)])
                     for s, r in runs[better].items()
                     if s in runs[worse] and (locale, name) in r["metrics"] and (locale, name) in runs[worse][s]["metrics"]]
            if not diffs:
                continue
            mean, low, high = mean_ci(diffs)
            verdict = ("one seed: no CI" if low is None else "reproduced" if low > 0
                       else "reversed" if high < 0 else "not resolved (CI spans 0)")
            rows.append({"claim": claim, "better": better, "worse": worse, "metric": name, "locale": locale,
                         "seeds": len(diffs), "diff": mean, "ci_low": low, "ci_high": high, "verdict": verdict})
    return rows


def fmt(v, pct=True):
    return "" if v is None else f"{100 * v:.2f}" if pct else f"{v}"


def write_summary(rows, finding_rows):
    """The at-a-glance tables: conditions x metrics, then the paper's findings."""
    lines = []
    for locale in sorted({r["locale"] for r in rows}, key=lambda loc: (loc != "all", loc)):
        mine = [r for r in rows if r["locale"] == locale]
        names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in mine)]
        lines += [f"### {'all locales' if locale == 'all' else locale}: mean [95% CI] over seeds", "",
                  "| condition | seeds | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for cond in dict.fromkeys(r["condition"] for r in mine):
            cells = {r["metric"]: r for r in mine if r["condition"] == cond}
            seeds = max(r["seeds"] for r in cells.values())
            lines.append(f"| {cond} | {seeds} | " + " | ".join(
                "" if n not in cells else fmt(cells[n]["mean"]) + (
                    f" [{fmt(cells[n]['ci_low'])}, {fmt(cells[n]['ci_high'])}]" if cells[n]["ci_low"] is not None else "")
                for n in names) + " |")
        lines.append("")
    mark = {"reproduced": "holds", "reversed": "REVERSED", "not resolved (CI spans 0)": "unresolved",
            "one seed: no CI": ""}
    for locale in dict.fromkeys(r["locale"] for r in finding_rows):
        mine = [r for r in finding_rows if r["locale"] == locale]
        names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in mine)]
        lines += [f"### The paper's findings ({'all locales' if locale == 'all' else locale}): paired difference "
                  "over seeds, positive = the claim holds (SemER sign flipped); 95% CI; verdict from the CI", "",
                  "| claim | seeds | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for claim in dict.fromkeys((r["claim"], r["better"], r["worse"]) for r in mine):
            cells = {r["metric"]: r for r in mine if (r["claim"], r["better"], r["worse"]) == claim}
            seeds = max(r["seeds"] for r in cells.values())
            lines.append(f"| {claim[0]} ({claim[1]} vs {claim[2]}) | {seeds} | " + " | ".join(
                "" if n not in cells else f"{100 * cells[n]['diff']:+.2f}" + (
                    f" [{100 * cells[n]['ci_low']:+.2f}, {100 * cells[n]['ci_high']:+.2f}]"
                    if cells[n]["ci_low"] is not None else "") + (" " + mark[cells[n]["verdict"]]).rstrip()
                for n in names) + " |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(rows, finding_rows, path):
    lines = ["| condition | locale | metric | seeds | mean | 95% CI | gap vs generic-only (95% CI) | distil tokens | wall s (distil / dc / icner) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if r["ci_low"] is not None else ""
        gap = "" if r["gap_vs_generic"] is None else f"{100 * r['gap_vs_generic']:+.2f}" + (
            f" [{100 * r['gap_ci_low']:+.2f}, {100 * r['gap_ci_high']:+.2f}]" if r["gap_ci_low"] is not None else "")
        walls = " / ".join(fmt(r[f"{s}_wall_s"], False) or "-" for s in ("student", "dc", "icner"))
        lines.append(f"| {r['condition']} | {r['locale']} | {r['metric']} | {r['seeds']} | {fmt(r['mean'])} | {ci} | "
                     f"{gap} | {r['distill_tokens'] or ''} | {walls} |")
    path.write_text("All numbers in %, test partition; SemER: lower is better.\n\n" + write_summary(rows, finding_rows)
                    + "\n### Every condition, metric and locale\n\n" + "\n".join(lines) + "\n")


def plot(rows, runs, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ratio_of = {c: next((r["ratio"] for r in s.values() if r["ratio"] is not None), None) for c, s in runs.items()}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, (name, _, _, higher) in zip(axes, METRICS):
        mine = {r["condition"]: r for r in rows if r["metric"] == name and r["locale"] == "all"}
        for prefix, marker, label in (("distill", "o-", "distilled"), ("adapted", "s--", "adapted teacher")):
            points = sorted((ratio_of[c], r) for c, r in mine.items() if c.startswith(prefix) and ratio_of.get(c) is not None)
            if points:
                xs = [p[0] for p in points]
                ys = [100 * p[1]["mean"] for p in points]
                err = [[100 * (p[1]["mean"] - p[1]["ci_low"]) if p[1]["ci_low"] is not None else 0 for p in points],
                       [100 * (p[1]["ci_high"] - p[1]["mean"]) if p[1]["ci_high"] is not None else 0 for p in points]]
                ax.errorbar(xs, ys, yerr=err, fmt=marker, capsize=4, label=label)
        for cond, style in (("scratch", ":"), ("teacher", "-.")):
            if cond in mine:
                ax.axhline(100 * mine[cond]["mean"], linestyle=style, color="grey" if cond == "scratch" else "black",
                           label=cond)
        ax.set_title(name + ("" if higher else " (lower is better)"), fontsize=10)
        ax.set_xlabel("target ratio")
        ax.set_xticks([0, 0.3, 0.5, 1])
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out-root", required=True)
    args = p.parse_args(argv)
    out_root = Path(args.out_root)
    runs = collect(out_root)
    rows = summarise(runs)
    with open(out_root / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    finding_rows = [row for locale in locales_of(runs) for row in findings(runs, locale)]
    if finding_rows:
        with open(out_root / "findings.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(finding_rows[0]))
            writer.writeheader()
            writer.writerows(finding_rows)
    write_markdown(rows, finding_rows, out_root / "results.md")
    plot(rows, runs, out_root / "plots" / "metrics_vs_ratio.png")
    print((out_root / "results.md").read_text())
    print(f"wrote {out_root}/results.csv, results.md, findings.csv, plots/metrics_vs_ratio.png", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
