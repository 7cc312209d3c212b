"""The accuracy-latency frontier over studies of different students (aggregate.py --frontier):
each study's best student (common.report.BEST_RULE) with its test accuracy and its int8 ONNX
batch-1 latency, beside the teacher's PyTorch and int8 ONNX rows timed in the same export run
(export.py --benchmark, which reproduce.sh runs); the Pareto-optimal students, and which to ship.
"""
import csv
import json
from dataclasses import dataclass
from pathlib import Path

from common.conditions import described, transfer_set_of
from common.report import best_student, export_files, means, read_csv, rule_score
from common.run import UsageError

SCORE = "the mean of DC accuracy and exact match, as the best-student rule scores"
NEAR_BEST_POINTS = 1.0  # without a latency budget: the fastest student within this many points of the best
METRICS = ("dc_accuracy", "intent_accuracy", "exact_match")


@dataclass
class Point:
    study: str
    student: str        # its shape and start, e.g. 4x256 random
    condition: str      # the study's best student
    params_m: float
    int8_ms: float      # batch-1 p50 of the int8 ONNX student, tokenisation included
    teacher_int8_ms: float
    teacher_torch_ms: float
    metrics: dict       # test means: dc_accuracy, intent_accuracy, exact_match (those the study has)
    score: float
    teacher_metrics: dict   # the teacher's test means in the same study (those it has)
    int8_agreement: float = None  # the lowest int8-vs-fp32 agreement of its exports' parity checks
    int8_parity_failed: bool = False
    per_channel_tried: bool = False  # export.py --per-channel auto quantised per channel too

    @property
    def teacher_score(self):
        """The teacher's score by the same rule, or None where the study has no teacher."""
        return rule_score(self.teacher_metrics)


def latency_rows(study):
    """{model: batch-1 p50} of the study's export latency table (a study's or a landed report's)."""
    for task in ("dc", "icner"):
        latency, _ = export_files(study, task)
        if latency:
            return {r["model"]: r["batch_1"]["p50_ms"] for r in latency["rows"]}
    raise UsageError(f"{study}: no export/dc/latency.json or export/icner/latency.json (export.py --benchmark "
                     "with --teacher writes it; reproduce.sh does)")


def int8_parity(study):
    """(lowest int8-vs-fp32 agreement, whether a parity check failed, whether per-channel weights
    were tried where one did) over the study's exports."""
    agreements, failed, tried = [], False, False
    for task in ("dc", "icner"):
        _, parity = export_files(study, task)
        if parity:
            agreements += list(parity["int8_vs_fp32_agreement"].values())
            failed = failed or bool(parity.get("failed"))
            tried = tried or (bool(parity.get("failed")) and (parity.get("per_channel") or "per_channel_tried" in parity))
    return (min(agreements) if agreements else None), failed, tried


def study_point(study):
    study = Path(study)
    rows = read_csv(study / "results.csv")
    condition = best_student(rows)
    if condition is None:
        raise UsageError(f"{study}: no results.csv with a student in it (run aggregate.py --out-root {study})")
    mean = means(rows)
    metrics = {m: mean[(condition, m)] for m in METRICS if (condition, m) in mean}
    latency = latency_rows(study)
    missing = [m for m in ("ONNX int8 student", "ONNX int8 teacher", "PyTorch fp32 teacher") if m not in latency]
    if missing:
        raise UsageError(f"{study}: its latency table has no {', '.join(missing)} row (export with --teacher)")
    # The study's student is its distilled students' shape and start (scratch's start is random by definition)
    runs = sorted(study.glob("seed*/distill_r*/student/run.json")) or sorted(study.glob(f"seed*/{condition}/student/run.json"))
    shape = json.loads(runs[0].read_text())["student"] if runs else {}
    student = f"{shape['layers']}x{shape['hidden']} {shape['init']}" if shape else condition
    teacher = {m: mean[("teacher", m)] for m in METRICS if ("teacher", m) in mean}
    return Point(study.name, student, condition, round(shape.get("parameters", 0) / 1e6, 1),
                 latency["ONNX int8 student"], latency["ONNX int8 teacher"], latency["PyTorch fp32 teacher"],
                 metrics, rule_score(metrics), teacher, *int8_parity(study))


def pareto(points):
    """The students no other is at least as fast and as accurate as, and better in one."""
    def dominated(p):
        return any(q.int8_ms <= p.int8_ms and q.score >= p.score and (q.int8_ms, q.score) != (p.int8_ms, p.score)
                   for q in points)
    return [p for p in points if not dominated(p)]


def recommend(points, budget_ms=None):
    """(the student to ship or None, why): the most accurate within the budget; without one, the
    fastest within NEAR_BEST_POINTS of the most accurate."""
    if budget_ms is not None:
        fits = [p for p in points if p.int8_ms <= budget_ms]
        if not fits:
            fastest = min(points, key=lambda p: p.int8_ms)
            return None, f"no student is within {budget_ms:g} ms (the fastest, {fastest.study}, takes {fastest.int8_ms:.2f} ms)"
        return max(fits, key=lambda p: p.score), f"the most accurate within the latency budget of {budget_ms:g} ms"
    best = max(p.score for p in points)
    near = [p for p in points if p.score >= best - NEAR_BEST_POINTS / 100]
    return min(near, key=lambda p: p.int8_ms), f"the fastest within {NEAR_BEST_POINTS:g} point of the most accurate"


def agreement_cell(p):
    if p.int8_agreement is None:
        return "not checked"
    return f"{100 * p.int8_agreement:.2f}%" + (" (parity failed)" if p.int8_parity_failed else "")


def metric_cell(p, metric):
    """The student's test score, and its share of the teacher's where the study has one: how close
    it comes to the teacher, beside the speed-up columns."""
    if metric not in p.metrics:
        return ""
    teacher = p.teacher_metrics.get(metric)
    return f"{100 * p.metrics[metric]:.2f}" + (f" ({100 * p.metrics[metric] / teacher:.1f}%)" if teacher else "")


def table_lines(points, optimal):
    lines = ["| study | student | best condition | M params | int8 b1 p50 ms | x the teacher's int8 | "
             "x the PyTorch teacher | DC accuracy | intent accuracy | exact match | int8 vs fp32 agreement | "
             "Pareto-optimal |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in sorted(points, key=lambda p: p.int8_ms):
        lines.append(f"| {p.study} | {p.student} | {described(p.condition)} | {p.params_m:g} | {p.int8_ms:.2f} | "
                     f"{p.teacher_int8_ms / p.int8_ms:.2f} | {p.teacher_torch_ms / p.int8_ms:.2f} | "
                     f"{' | '.join(metric_cell(p, m) for m in METRICS)} | "
                     f"{agreement_cell(p)} | {'yes' if p in optimal else ''} |")
    return lines


def write_frontier(points, out_dir, budget_ms=None):
    """frontier.csv, frontier.md and plots/frontier.png; returns the recommended point."""
    out_dir = Path(out_dir)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    optimal = pareto(points)
    chosen, why = recommend(points, budget_ms)
    with open(out_dir / "frontier.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["study", "student", "condition", "params_m", "int8_b1_p50_ms", "teacher_int8_b1_p50_ms",
                         "teacher_torch_b1_p50_ms", *METRICS, "score",
                         "int8_agreement", "int8_parity_failed", "pareto", "shipped",
                         *(f"teacher_{m}" for m in METRICS)])
        for p in points:
            writer.writerow([p.study, p.student, p.condition, p.params_m, p.int8_ms, p.teacher_int8_ms,
                             p.teacher_torch_ms, *(p.metrics.get(m, "") for m in METRICS),
                             round(p.score, 6), "" if p.int8_agreement is None else p.int8_agreement,
                             int(p.int8_parity_failed), int(p in optimal), int(p is chosen),
                             *(p.teacher_metrics.get(m, "") for m in METRICS)])
    ship = f"**{why}.**"
    if chosen:
        named = filter(None, [chosen.student, f"`{chosen.condition}`", transfer_set_of(chosen.condition)])
        ship = f"**Ship `{chosen.study}` ({', '.join(named)})**: {why}."
    if chosen and chosen.int8_parity_failed:  # its int8 export may not predict as its test accuracy says
        ship += (f" Its int8 export failed the parity check (int8 agrees with fp32 on {100 * chosen.int8_agreement:.2f}%): "
                 "compare the int8 and fp32 rows' dev scores in its study's latency table"
                 + (" (per-channel weights were tried too)." if chosen.per_channel_tried else ", or export with --per-channel on."))
    lines = ["# The accuracy-latency frontier", "", ship, "",
             f"Accuracy is {SCORE}, on test; each score's share of the teacher's own in the same study is in "
             "brackets. Latency is each study's export run, batch 1, tokenisation included, its teacher rows "
             "timed in the same run.", "", *table_lines(points, optimal), "",
             "![accuracy against int8 latency](plots/frontier.png)", ""]
    (out_dir / "frontier.md").write_text("\n".join(lines))
    plot_frontier(points, optimal, out_dir / "plots" / "frontier.png")
    return chosen


def plot_frontier(points, optimal, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for p in points:
        ax.scatter(p.int8_ms, 100 * p.score, color="tab:blue" if p in optimal else "tab:gray", zorder=3)
        ax.annotate(p.student, (p.int8_ms, 100 * p.score), textcoords="offset points", xytext=(4, 4), fontsize=8)
    line = sorted(optimal, key=lambda p: p.int8_ms)
    ax.plot([p.int8_ms for p in line], [100 * p.score for p in line], color="tab:blue", label="Pareto-optimal")
    reference = sorted(points, key=lambda p: p.teacher_int8_ms)[len(points) // 2]  # the median run's teacher
    if reference.teacher_score is not None:
        ax.scatter(reference.teacher_int8_ms, 100 * reference.teacher_score, marker="*", s=150, color="tab:red",
                   zorder=4, label=f"the teacher, int8 ONNX ({reference.teacher_int8_ms:.2f} ms)")
    else:
        ax.axvline(reference.teacher_int8_ms, color="tab:red", linestyle="--",
                   label=f"the teacher, int8 ONNX ({reference.teacher_int8_ms:.2f} ms)")
    ax.set_xlabel("int8 ONNX, batch-1 p50 (ms)")
    ax.set_ylabel("mean of DC accuracy and exact match (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
