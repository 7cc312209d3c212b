#!/usr/bin/env python
"""Aggregate a reproduce.sh study: mean and 95% CI over seeds per condition, gaps to generic-only,
budgets and wall times, and a plot of every metric against the target ratio.

    python aggregate.py --out-root out/study
    python aggregate.py --sweep out/study       # a budget sweep: OUT_ROOT/budget_*/ side by side
    python aggregate.py --report docs/results/cpu-default   # REPORT.md again, from the folder's files
    python aggregate.py --readme README.md      # the README's answer table, from the landed reports
    python aggregate.py --frontier out/s-2x128 out/s-4x256 out/s-4x384 [--latency-budget-ms 0.5]
                                                # studies of different students: which one to ship

Reads OUT_ROOT/seed*/<condition>/{dc_test.json, icner_test.json, student/run.json, dc/run.json,
icner/run.json}; writes OUT_ROOT/results.csv, results.md (at-a-glance tables, the paper's findings
with verdicts read off paired CIs, every row), findings.csv and plots/metrics_vs_ratio.png; with
several locales also contrasts.csv: each finding's difference in one locale minus that in another.
--sweep reads every OUT_ROOT/budget_<B>/ (each a study as above) and writes OUT_ROOT/sweep.csv,
sweep.md and plots/gain_vs_budget.png: each transfer set's gain over generic-only against the
distillation budget, the question being which transfer set to use at *your* budget. Each writes
REPORT.md (common/report.py): the answer in plain words, the best student and its export, the
tables and plots, provenance; and best_student.txt, the condition the report names.
"""
import csv
import sys
from pathlib import Path

from common.answer import update_readme
from common.report import VERDICTS, best_student, finding_cell, read_csv, write_report
from common.frontier import study_point, write_frontier
from common.run import ArgumentParser, existing_folder, positive_float, run_cli
from common.study import (METRICS, SWEEP_GAINS, collect, collect_sweep, condition_order, findings, locale_contrasts,
                          locales_of, summarise, sweep_rows)

# The conditions no transfer set or budget changes, drawn as horizontal lines: (style, colour).
LINES = {"scratch": (":", "grey"), "undistilled": ("--", "tab:green"), "teacher": ("-.", "black")}


def fmt(v, pct=True):
    return "" if v is None else f"{100 * v:.2f}" if pct else f"{v}"


def write_summary(rows, finding_rows, contrast_rows=()):
    """The at-a-glance tables: conditions x metrics, the paper's findings, their locale contrasts."""
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
    for locale in dict.fromkeys(r["locale"] for r in finding_rows):
        mine = [r for r in finding_rows if r["locale"] == locale]
        names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in mine)]
        lines += [f"### The paper's findings ({'all locales' if locale == 'all' else locale}): paired difference "
                  "over seeds, positive = the claim holds (SemER sign flipped); t: 95% t-interval over seeds; "
                  "b: 95% paired bootstrap over seeds and test utterances; verdict: both exclude 0", "",
                  "| claim | seeds | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for claim in dict.fromkeys((r["claim"], r["better"], r["worse"]) for r in mine):
            cells = {r["metric"]: r for r in mine if (r["claim"], r["better"], r["worse"]) == claim}
            seeds = max(r["seeds"] for r in cells.values())
            lines.append(f"| {claim[0]} ({claim[1]} vs {claim[2]}) | {seeds} | " + " | ".join(
                "" if n not in cells else finding_cell(cells[n]) for n in names) + " |")
        lines.append("")
    if contrast_rows:
        names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in contrast_rows)]
        lines += ["### Between locales: a finding's paired difference in one locale minus that in another; t: 95% "
                  "t-interval over seeds; b: 95% bootstrap over seeds and each locale's test utterances; "
                  "'larger in': both exclude 0", "",
                  "| claim | locales | seeds | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
        for claim in dict.fromkeys((r["claim"], r["better"], r["worse"], r["locale"]) for r in contrast_rows):
            cells = {r["metric"]: r for r in contrast_rows if (r["claim"], r["better"], r["worse"], r["locale"]) == claim}
            a, b = claim[3].split(" - ")
            marks = {**VERDICTS, "reproduced": f"larger in {a}", "reversed": f"larger in {b}"}
            lines.append(f"| {claim[0]} ({claim[1]} vs {claim[2]}) | {claim[3]} | {max(r['seeds'] for r in cells.values())} | "
                         + " | ".join("" if n not in cells else finding_cell(cells[n], marks) for n in names) + " |")
        lines.append("")
    return "\n".join(lines)


def write_markdown(rows, finding_rows, path, contrast_rows=()):
    lines = ["| condition | locale | metric | seeds | mean | 95% CI | gap vs generic-only (95% CI) | distil tokens | wall s (distil / dc / icner) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ci = f"[{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]" if r["ci_low"] is not None else ""
        gap = "" if r["gap_vs_generic"] is None else f"{100 * r['gap_vs_generic']:+.2f}" + (
            f" [{100 * r['gap_ci_low']:+.2f}, {100 * r['gap_ci_high']:+.2f}]" if r["gap_ci_low"] is not None else "")
        walls = " / ".join(fmt(r[f"{s}_wall_s"], False) or "-" for s in ("student", "dc", "icner"))
        lines.append(f"| {r['condition']} | {r['locale']} | {r['metric']} | {r['seeds']} | {fmt(r['mean'])} | {ci} | "
                     f"{gap} | {r['distill_tokens'] or ''} | {walls} |")
    path.write_text("All numbers in %, test partition; SemER: lower is better.\n\n" + write_summary(rows, finding_rows, contrast_rows)
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
        for cond, (style, colour) in LINES.items():
            if cond in mine:
                ax.axhline(100 * mine[cond]["mean"], linestyle=style, color=colour, label=cond)
        ax.set_title(name + ("" if higher else " (lower is better)"), fontsize=10)
        ax.set_xlabel("target ratio")
        ax.set_xticks([0, 0.3, 0.5, 1])
    if axes[0].get_legend_handles_labels()[0]:  # results without students' run.json have no curves
        axes[0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


def write_sweep_markdown(rows, path):
    lines = ["Gain over generic-only distillation at each budget (points; SemER sign flipped, positive = better): "
             "mean over seeds, t: 95% t-interval, b: 95% paired bootstrap over seeds and test utterances.", ""]
    for condition, label in SWEEP_GAINS:
        mine = [r for r in rows if r["kind"] == "gain" and r["condition"] == condition]
        names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in mine)]
        if not mine:
            continue
        lines += [f"### {label} ({condition}) vs generic only", "", "| budget | seeds | " + " | ".join(names) + " |",
                  "|---|---|" + "---|" * len(names)]
        for budget in dict.fromkeys(r["budget"] for r in mine):
            cells = {r["metric"]: dict(r, diff=r["value"]) for r in mine if r["budget"] == budget}
            seeds = max(r["seeds"] for r in cells.values())
            lines.append(f"| {budget.removeprefix('budget_')} | {seeds} | " +
                         " | ".join(finding_cell(cells[n]) if n in cells else "" for n in names) + " |")
        lines.append("")
    path.write_text("\n".join(lines))


def plot_sweep(rows, path):
    """Top: each condition's metric against the budget (the budget-free conditions as lines). Bottom: the
    gain over generic-only with its bootstrap (else t) interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m[0] for m in METRICS if any(r["metric"] == m[0] for r in rows)]
    fig, axes = plt.subplots(2, len(names), figsize=(4 * len(names), 6.4), squeeze=False)
    for col, name in enumerate(names):
        top, bottom = axes[0][col], axes[1][col]
        means = [r for r in rows if r["kind"] == "mean" and r["metric"] == name]
        for condition in sorted({r["condition"] for r in means}, key=condition_order):
            points = sorted((r["tokens"], r) for r in means if r["condition"] == condition)
            if condition in LINES:
                style, colour = LINES[condition]
                top.axhline(100 * points[0][1]["value"], linestyle=style, color=colour, label=condition)
            else:
                errorbars(top, points, "ci_low", "ci_high", condition)
        for condition, label in SWEEP_GAINS:
            points = sorted((r["tokens"], r) for r in rows if r["kind"] == "gain" and r["metric"] == name
                            and r["condition"] == condition)
            if points:
                errorbars(bottom, points, "boot_low" if points[0][1]["boot_low"] is not None else "ci_low",
                          "boot_high" if points[0][1]["boot_low"] is not None else "ci_high", label)
        bottom.axhline(0, color="grey", linewidth=0.5)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.set_xlabel("distillation budget (transfer tokens)")
        top.set_title(name, fontsize=10)
        bottom.set_ylabel("gain over generic only (points)")
    axes[0][0].legend(fontsize=7)
    axes[1][0].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)


def errorbars(ax, points, low, high, label):
    xs = [t for t, _ in points]
    ys = [100 * r["value"] for _, r in points]
    err = [[100 * (r["value"] - r[low]) if r[low] is not None else 0 for _, r in points],
           [100 * (r[high] - r["value"]) if r[high] is not None else 0 for _, r in points]]
    ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=4, label=label)


def write_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def main(argv=None):
    p = ArgumentParser(description=__doc__.split("\n")[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--out-root", help="a study's folder")
    g.add_argument("--sweep", help="a budget sweep's folder (its budget_*/ studies)")
    g.add_argument("--report", type=existing_folder, help="write REPORT.md again from a study's files")
    g.add_argument("--readme", help="write the README's answer table from the landed reports in docs/results/")
    g.add_argument("--frontier", nargs="+", metavar="STUDY",
                   help="studies of different students: the accuracy-latency frontier of their best students")
    p.add_argument("--output", default="frontier", help="--frontier: the folder it writes (default: frontier)")
    p.add_argument("--latency-budget-ms", type=positive_float,
                   help="--frontier: ship the most accurate student within this batch-1 latency")
    args = p.parse_args(argv)
    if args.frontier:
        chosen = write_frontier([study_point(s) for s in args.frontier], args.output, args.latency_budget_ms)
        print(Path(args.output, "frontier.md").read_text())
        print(f"wrote {args.output}/frontier.csv, frontier.md, plots/frontier.png", file=sys.stderr)
        if chosen is None:
            print(f"aggregate.py: no student is within --latency-budget-ms {args.latency_budget_ms:g} "
                  f"(frontier.md says how close each comes)", file=sys.stderr)
        return 0 if chosen else 1
    if args.sweep:
        return main_sweep(Path(args.sweep))
    if args.report:
        print(f"wrote {write_report(args.report)}", file=sys.stderr)
        return 0
    if args.readme:
        update_readme(Path(args.readme))
        print(f"wrote the answer table of {args.readme}", file=sys.stderr)
        return 0
    out_root = Path(args.out_root)
    runs = collect(out_root)
    rows = summarise(runs)
    write_csv(rows, out_root / "results.csv")
    finding_rows = [row for locale in locales_of(runs) for row in findings(runs, locale)]
    if finding_rows:
        write_csv(finding_rows, out_root / "findings.csv")
    contrast_rows = locale_contrasts(runs)
    if contrast_rows:
        write_csv(contrast_rows, out_root / "contrasts.csv")
    write_markdown(rows, finding_rows, out_root / "results.md", contrast_rows)
    plot(rows, runs, out_root / "plots" / "metrics_vs_ratio.png")
    write_best_student(out_root)
    write_report(out_root)
    print((out_root / "results.md").read_text())
    print(f"wrote {out_root}/results.csv, results.md, findings.csv, plots/metrics_vs_ratio.png, REPORT.md",
          file=sys.stderr)
    return 0


def write_best_student(out_root):
    """best_student.txt: the condition REPORT.md names (common.report.BEST_RULE); none without students."""
    best = best_student(read_csv(out_root / "results.csv"))
    if best:
        (out_root / "best_student.txt").write_text(best + "\n")


def main_sweep(out_root):
    rows = sweep_rows(collect_sweep(out_root))
    write_csv(rows, out_root / "sweep.csv")
    write_sweep_markdown(rows, out_root / "sweep.md")
    plot_sweep(rows, out_root / "plots" / "gain_vs_budget.png")
    write_report(out_root)
    print((out_root / "sweep.md").read_text())
    print(f"wrote {out_root}/sweep.csv, sweep.md, plots/gain_vs_budget.png, REPORT.md", file=sys.stderr)
    return 0


if __name__ == "__main__":
    run_cli(main)
