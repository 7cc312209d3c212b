"""A study's REPORT.md: the answer first, in plain words, then the tables, the plots and provenance.

Everything is read from the files a study leaves (results.csv, findings.csv, sweep.csv, the export's
latency.json and parity.json, provenance.json), so a landed study's report is regenerated from its
landed results without training anything again: `python aggregate.py --report FOLDER`.
"""
import csv
import json
import os
import platform
import re
import time
from pathlib import Path

from common.conditions import described
from common.run import _git_commit
from common.study import budget_of

ANSWER_METRICS = [("dc_accuracy", "DC accuracy"), ("intent_accuracy", "intent accuracy"), ("slot_f1", "slot F1"),
                  ("semer", "SemER"), ("exact_match", "exact match")]
# The question's comparisons, in the order a user asks them (better, worse, label).
QUESTIONS = [("distill_r1", "distill_r0", "target-only vs generic-only"),
             ("distill_r0.3", "distill_r0", "7:3 vs generic-only"),
             ("distill_r1", "distill_r0.3", "target-only vs 7:3"),
             ("distill_r0", "scratch", "generic-only vs scratch"),
             ("distill_r1", "scratch", "target-only vs scratch")]
VERDICTS = {"reproduced": "holds", "reversed": "REVERSED", "not resolved (CI spans 0)": "unresolved",
            "one seed: no CI": ""}
BEST_RULE = ("the condition (teacher excluded) with the highest mean over seeds of DC accuracy and exact match "
             "(their average where the study has both), on all locales together")


def read_csv(path):
    return list(csv.DictReader(open(path, encoding="utf-8"))) if path.is_file() else []


def number(value):
    return None if value in (None, "") else float(value)


def rule_score(metrics):
    """BEST_RULE's score of one condition's {metric: mean}: the average of DC accuracy and exact
    match, those of them it has, or None where it has neither."""
    scored = [metrics[m] for m in ("dc_accuracy", "exact_match") if m in metrics]
    return sum(scored) / len(scored) if scored else None


def best_student(result_rows):
    """The condition chosen by BEST_RULE from results.csv rows, or None without students."""
    mean = means(result_rows)
    conditions = dict.fromkeys(c for c, _ in mean if c != "teacher")
    scores = {c: rule_score({m: v for (k, m), v in mean.items() if k == c}) for c in conditions}
    scores = {c: s for c, s in scores.items() if s is not None}
    return max(scores, key=scores.get) if scores else None


def means(result_rows):
    """{(condition, metric): mean} on all locales."""
    return {(r["condition"], r["metric"]): float(r["mean"]) for r in result_rows if r["locale"] == "all"}


def finding_cell(row, marks=None):
    """+1.64 t[+0.43, +2.85] b[+0.71, +2.63] holds: a findings row (numbers or csv strings) in points."""
    text = f"{100 * float(row['diff']):+.2f}"
    for tag, low, high in (("t", "ci_low", "ci_high"), ("b", "boot_low", "boot_high")):
        if number(row.get(low)) is not None:
            text += f" {tag}[{100 * float(row[low]):+.2f}, {100 * float(row[high]):+.2f}]"
    return f"{text} {(marks or VERDICTS).get(row['verdict'], row['verdict'])}".rstrip()


def answer_table(finding_rows):
    """The question's comparisons x metrics, from findings.csv rows (all locales)."""
    rows = [r for r in finding_rows if r["locale"] == "all"]
    names = [(m, title) for m, title in ANSWER_METRICS if any(r["metric"] == m for r in rows)]
    lines = ["| comparison | seeds | " + " | ".join(t for _, t in names) + " |", "|---|---|" + "---|" * len(names)]
    for better, worse, label in QUESTIONS:
        cells = {r["metric"]: r for r in rows if (r["better"], r["worse"]) == (better, worse)}
        if cells:
            seeds = max(int(r["seeds"]) for r in cells.values())
            lines.append(f"| {label} | {seeds} | "
                         + " | ".join(finding_cell(cells[m]) if m in cells else "" for m, _ in names) + " |")
    return lines if len(lines) > 2 else []


def verdict_sentence(finding_rows, better, worse, label):
    """'target-only vs generic-only: holds on 5 of 5 metrics (...)', or None when not measured."""
    rows = [r for r in finding_rows if r["locale"] == "all" and (r["better"], r["worse"]) == (better, worse)]
    if not rows:
        return None
    if all(r["verdict"] == "one seed: no CI" for r in rows):
        return f"**{label}**: one seed, so no interval and no verdict (differences in the table below)."
    holds = [r for r in rows if r["verdict"] == "reproduced"]
    reversed_ = [r for r in rows if r["verdict"] == "reversed"]
    title = dict(ANSWER_METRICS)
    text = f"**{label}**: better, both intervals agreeing, on {len(holds)} of {len(rows)} metrics"
    if holds:
        text += " (" + ", ".join(title[r["metric"]] for r in holds) + ")"
    if reversed_:
        text += "; worse on " + ", ".join(title[r["metric"]] for r in reversed_)
    return text + "."


def teacher_percentages(result_rows, best):
    """{"DC accuracy": (share %, best's mean %, teacher's mean %), "exact match": ...} where both ran."""
    m = means(result_rows)
    return {title: (100 * m[(best, k)] / m[("teacher", k)], 100 * m[(best, k)], 100 * m[("teacher", k)])
            for k, title in (("dc_accuracy", "DC accuracy"), ("exact_match", "exact match"))
            if (best, k) in m and m.get(("teacher", k))}


def teacher_share(result_rows, best):
    """'96.2% of the teacher's DC accuracy (87.98 vs 91.49) and ...', or None without a teacher."""
    shares = teacher_percentages(result_rows, best)
    return " and ".join(f"{share:.1f}% of the teacher's {title} ({mine:.2f} vs {teacher:.2f})"
                        for title, (share, mine, teacher) in shares.items()) or None


def export_files(folder, task):
    """(latency, parity) of a task's export: a study's export/<task>/, or a landed copy's <task>_*.json."""
    for latency, parity in ((folder / "export" / task / "latency.json", folder / "export" / task / "parity.json"),
                            (folder / f"{task}_latency.json", folder / f"{task}_parity.json")):
        if latency.is_file() or parity.is_file():
            return (json.loads(latency.read_text()) if latency.is_file() else None,
                    json.loads(parity.read_text()) if parity.is_file() else None)
    return None, None


def export_lines(folder):
    """The exported best student: size, batch-1 latency against the teacher, parity; one block per task."""
    lines = []
    for task in ("dc", "icner"):
        latency, parity = export_files(folder, task)
        if latency is None and parity is None:
            continue
        lines.append(f"**{task.upper()}**" + (f" ({latency.get('cpu', 'CPU')}, {latency.get('threads')} threads, "
                                                f"batch 1 over {latency.get('utterances_batch_1')} test utterances, "
                                                "tokenisation included):" if latency else ":"))
        if latency:
            metric = {"accuracy": "dev DC accuracy", "exact_match": "dev exact match"}.get(latency.get("dev_metric"), "dev")
            lines += ["", f"| model | MB | b1 p50 ms | b1 p95 ms | b1 p99 ms | b32 /s | speed-up b1 p50 | {metric} "
                          "| b1 p50 within the spread of |", "|---|---|---|---|---|---|---|---|---|"]
            for r in latency["rows"]:
                b1, b32 = r["batch_1"], r.get("batch_32") or {}
                dev = "" if r.get("dev_headline") is None else f"{100 * r['dev_headline']:.2f}"
                alike = ", ".join(r["within_spread_of"]) if "within_spread_of" in r else "not measured"
                lines.append(f"| {r['model']} | {r['size_mb']:.1f} | {b1['p50_ms']:.2f} | {b1['p95_ms']:.2f} | "
                             f"{b1['p99_ms']:.2f} | {b32.get('throughput_per_s', '')} | {r['speedup_p50_batch_1']:.1f}x | {dev} "
                             f"| {alike or '-'} |")
            lines += ["", "The spread: each row's batch-1 p50 over 3 rounds of the same utterances; rows within each "
                          "other's spread are not told apart.", ""]
        if parity:
            names = {"logits": "label", "intent_logits": "intent", "slot_logits": "slot tag per token"}
            agreement = ", ".join(f"{names.get(k, k)} {100 * v:.2f}%" for k, v in parity["int8_vs_fp32_agreement"].items())
            status = "failed: " + ", ".join(parity["failed"]) if parity.get("failed") else "passed"
            lines.append(f"Parity on {parity['utterances']} dev utterances ({status}): fp32 ONNX vs PyTorch max "
                         f"|logit difference| {parity['fp32_vs_torch_max_abs_diff']:.1e} (target <= "
                         f"{parity['max_abs_diff_target']:g}); int8 vs fp32 agreement {agreement} (target >= "
                         f"{100 * parity['agreement_target']:g}%).")
            lines.append("")
    return lines + package_lines(folder)


def package_lines(folder):
    """The deployed system (package.py): its latency beside the DC model's, and what routing costs."""
    found = [(folder / "export" / "package" / "latency.json", folder / "export" / "package" / "evaluation.json"),
             (folder / "package_latency.json", folder / "package_evaluation.json")]
    latency_file, evaluation_file = next(((a, b) for a, b in found if a.is_file() or b.is_file()), (None, None))
    if latency_file is None:
        return []
    lines = ["**The package**: the DC student routing each utterance to the ICNER student of its predicted domain."]
    if latency_file.is_file():
        latency = json.loads(latency_file.read_text())
        lines += ["", f"| {latency.get('cpu', 'CPU')}, {latency['threads']} threads | b1 p50 ms | b1 p95 ms | "
                      "b32 p50 ms | b32 /s |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['batch_1']['p50_ms']:.2f} | {r['batch_1']['p95_ms']:.2f} | "
                  f"{r['batch_32']['p50_ms']:.2f} | {r['batch_32']['throughput_per_s']} |" for r in latency["rows"]]
        lines += ["", f"The package takes {latency['package_over_dc_p50_batch_1']}x the DC model's batch-1 p50."]
    if evaluation_file.is_file():
        m = json.loads(evaluation_file.read_text())["metrics"]
        routed, gold = m["predicted_routing"], m["gold_routing"]
        lines += ["", f"On {m['dc']['n']} dev utterances: DC accuracy {100 * m['dc']['accuracy']:.2f}; exact match "
                      f"{100 * routed['exact_match']:.2f} routed by the DC prediction, {100 * gold['exact_match']:.2f} "
                      f"by the gold domain (routing costs {m['routing_cost_points']['exact_match']:.2f} points; intent "
                      f"accuracy {100 * routed['intent_accuracy']:.2f} against {100 * gold['intent_accuracy']:.2f})."]
    return lines + ["", "Serve it over HTTP (STUDY: the folder this report is in; docs/export.md, \"Serving\"):", "",
                    "    python serve.py --model STUDY/export/package --port 8000", ""]


def provenance(folder):
    """provenance.json: written by the study that made the folder (reproduce.sh sets STUDY_STARTED and
    STUDY_COMMAND), kept as it is when a report is regenerated later from landed results."""
    path = folder / "provenance.json"
    if path.is_file() and not os.environ.get("STUDY_STARTED"):
        return read_provenance(folder)
    started = os.environ.get("STUDY_STARTED")
    record = {"title": os.environ.get("STUDY_TITLE"), "commit": (_git_commit() or "")[:7] or None, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": machine(),
              "device": device(), "command": os.environ.get("STUDY_COMMAND"),
              "elapsed_s": round(time.time() - float(started)) if started else None,
              "job_seconds": round(job_seconds(folder))}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def read_provenance(folder):
    path = Path(folder) / "provenance.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def job_seconds(folder):
    """The sum of the wall times in the study's run.json files (a sweep's shared links counted once)."""
    total = 0.0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "export"]
        if "run.json" in files:
            total += json.loads((Path(root) / "run.json").read_text()).get("timings", {}).get("wall_s", 0)
    return total


def machine():
    from common.latency import cpu_name
    model = cpu_name() or platform.processor()
    return f"{len(os.sched_getaffinity(0))} cores of {model or platform.machine()}"


def device():
    try:
        import torch
        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    except ImportError:
        return "CPU"


def provenance_lines(record):
    hours = lambda s: "" if s is None else f"{int(s) // 3600} h {int(s) % 3600 // 60} min" if s >= 3600 \
        else f"{int(s) // 60} min {int(s) % 60} s"
    lines = ["## Provenance", "", "| | |", "|---|---|"]
    for key, label in (("command", "command"), ("commit", "commit"), ("date", "date"), ("machine", "machine"),
                       ("device", "device"), ("elapsed_s", "elapsed"), ("job_seconds", "sum of job times")):
        if record.get(key) not in (None, ""):
            value = hours(record[key]) if key.endswith("_s") or key == "job_seconds" else record[key]
            lines.append(f"| {label} | {f'`{value}`' if key == 'command' else value} |")
    if record.get("note"):
        lines += ["", record["note"]]
    return lines


def plots_of(folder):
    return sorted(p.relative_to(folder) for p in list(folder.glob("plots/*.png")) + list(folder.glob("*.png")))


def mean_table(result_rows):
    """Conditions x metrics: mean [95% CI] over seeds, all locales (results.csv)."""
    rows = [r for r in result_rows if r["locale"] == "all"]
    names = [(m, t) for m, t in ANSWER_METRICS if any(r["metric"] == m for r in rows)]
    lines = ["| condition | seeds | " + " | ".join(t for _, t in names) + " |", "|---|---|" + "---|" * len(names)]
    for condition in dict.fromkeys(r["condition"] for r in rows):
        cells = {r["metric"]: r for r in rows if r["condition"] == condition}
        seeds = max(int(r["seeds"]) for r in cells.values())
        lines.append(f"| {condition} | {seeds} | " + " | ".join(mean_cell(cells.get(m)) for m, _ in names) + " |")
    return lines


def mean_cell(row):
    if row is None:
        return ""
    ci = f" [{100 * float(row['ci_low']):.2f}, {100 * float(row['ci_high']):.2f}]" if number(row["ci_low"]) is not None else ""
    return f"{100 * float(row['mean']):.2f}{ci}"


def best_lines(folder, result_rows, with_export=True):
    best = best_student(result_rows)
    if best is None:
        return []
    share = teacher_share(result_rows, best)
    lines = [f"**The best student is {described(best)}** ({BEST_RULE})" + (f": it keeps {share}." if share else "."), ""]
    exported = export_lines(folder) if with_export else []
    if exported:
        seed = exported_seed(folder)
        lines += [f"Its export to int8 ONNX ({f'seed {seed}; ' if seed else ''}`export/`):", ""] + exported
    return lines


def exported_seed(folder):
    """The seed whose models were exported, from export/<task>.model (a landed copy's <task>.model)."""
    for record in (folder / "export" / "dc.model", folder / "dc.model", folder / "export" / "icner.model",
                   folder / "icner.model"):
        if record.is_file():
            parts = Path(record.read_text().splitlines()[0]).parts
            seeds = [part[len("seed"):] for part in parts if re.fullmatch(r"seed\d+", part)]
            return seeds[-1] if seeds else None
    return None


def study_report(folder, record):
    """REPORT.md of one study folder (results.csv, findings.csv, export, provenance.json)."""
    result_rows, finding_rows = read_csv(folder / "results.csv"), read_csv(folder / "findings.csv")
    lines = [f"# Which transfer set? {record.get('title') or 'The study'}", "", "## The answer", ""]
    sentences = [verdict_sentence(finding_rows, *q) for q in QUESTIONS]
    lines += [f"- {s}" for s in sentences if s] + [""]
    table = answer_table(finding_rows)
    if table:
        lines += ["Paired differences over seeds, in points (positive: the first condition is better; SemER's sign "
                  "flipped); t: 95% t-interval over seeds; b: 95% paired bootstrap over seeds and test utterances; "
                  "a verdict needs both to exclude 0 (docs/statistics.md).", ""] + table + [""]
    lines += best_lines(folder, result_rows)
    lines += ["## Tables", "", "Mean [95% t-interval] over seeds, %, test partition (SemER: lower is better). "
              "Every row, locale and claim: [results.md](results.md), [findings.csv](findings.csv).", ""]
    lines += mean_table(result_rows) + [""]
    return lines + plot_lines(folder) + provenance_lines(record)


def exports_not_of(folder, budget_folder):
    """The exported models (export/<task>.model as reproduce.sh records them, <task>.model in a
    landed copy) that are not of BUDGET_FOLDER's students, from the budget folder on."""
    records = [folder / where for task in ("dc", "icner") for where in (f"export/{task}.model", f"{task}.model")]
    models = [r.read_text().splitlines()[0] for r in records if r.is_file()]
    return [m[m.find("budget_"):] if "budget_" in m else m for m in models if budget_folder not in Path(m).parts]


def sweep_gains(rows):
    """sweep.csv's gain rows as findings rows (each vs generic-only, all locales)."""
    return [dict(r, diff=r["value"], better=r["condition"], worse="distill_r0", locale="all")
            for r in rows if r["kind"] == "gain"]


def sweep_report(folder, record):
    """REPORT.md of a budget sweep (sweep.csv): the answer per budget, then the largest budget's study."""
    gains = sweep_gains(read_csv(folder / "sweep.csv"))
    lines = [f"# Which transfer set at which budget? {record.get('title') or 'The budget sweep'}", "", "## The answer", ""]
    for budget in dict.fromkeys(r["budget"] for r in gains):
        mine = [r for r in gains if r["budget"] == budget]
        for better, worse, label in QUESTIONS:
            sentence = verdict_sentence(mine, better, worse, f"{budget.removeprefix('budget_')}: {label}")
            if sentence:
                lines.append(f"- {sentence}")
    lines.append("")
    for better, worse, label in QUESTIONS[:2]:
        mine = [r for r in gains if r["better"] == better]
        if not mine:
            continue
        names = [(m, t) for m, t in ANSWER_METRICS if any(r["metric"] == m for r in mine)]
        lines += [f"**{label}**, per budget of transfer tokens (points, as in the study's report):", "",
                  "| budget | seeds | " + " | ".join(t for _, t in names) + " |", "|---|---|" + "---|" * len(names)]
        for budget in dict.fromkeys(r["budget"] for r in mine):
            cells = {r["metric"]: r for r in mine if r["budget"] == budget}
            lines.append(f"| {budget.removeprefix('budget_')} | {max(int(r['seeds']) for r in cells.values())} | "
                         + " | ".join(finding_cell(cells[m]) if m in cells else "" for m, _ in names) + " |")
        lines.append("")
    lines += ["Every budget's means and gains: [sweep.md](sweep.md), [sweep.csv](sweep.csv).", ""]
    largest = max(folder.glob("budget_*/results.csv"), key=lambda p: budget_of(p.parent) or 0, default=None)
    if largest:
        lines += [f"At the largest budget ({largest.parent.name.removeprefix('budget_')}, its own report: "
                  f"[{largest.parent.name}/REPORT.md]({largest.parent.name}/REPORT.md)):", ""]
        elsewhere = exports_not_of(folder, largest.parent.name)
        lines += best_lines(folder, read_csv(largest), with_export=not elsewhere)
        if elsewhere:
            lines += [f"`export/` holds another budget's student ({', '.join(f'`{m}`' for m in elsewhere)}), "
                      "so its figures are not shown here: a sweep run in parts exports each part's largest budget.", ""]
    if record.get("largest_budget_report"):
        lines += [f"The largest budget's own study, with its best student and export: "
                  f"[{record['largest_budget_report']}]({record['largest_budget_report']})."]
    return lines + [""] + plot_lines(folder) + provenance_lines(record)


def students_report(folder, record):
    """REPORT.md of a study with STUDENTS: the student to ship (frontier.md), then each student's
    answer, from its own study folder (student_<shape>/, its REPORT.md the whole of it)."""
    lines = [f"# Which student, and which transfer set? {record.get('title') or 'The students'}", "",
             "## The student to ship", ""]
    frontier = folder / "frontier.md"
    if frontier.is_file():
        lines += frontier.read_text().splitlines()[2:] + [""]  # its own title dropped
    else:
        lines += ["No frontier: it needs every student's export (aggregate.py --frontier says which is missing).", ""]
    lines += ["## Which transfer set, per student", ""]
    for study in sorted(p.parent for p in folder.glob("student_*/results.csv")):
        result_rows = read_csv(study / "results.csv")
        finding_rows = read_csv(study / "findings.csv") if (study / "findings.csv").is_file() else []
        lines += [f"### {study.name.removeprefix('student_')} ([its report]({study.name}/REPORT.md))", ""]
        lines += [f"- {s}" for s in (verdict_sentence(finding_rows, *q) for q in QUESTIONS) if s]
        best = best_student(result_rows)
        if best:
            share = teacher_share(result_rows, best)
            lines.append(f"- its best student is {described(best)}" + (f": it keeps {share}." if share else "."))
        lines.append("")
    return lines + provenance_lines(record)


def plot_lines(folder):
    plots = plots_of(folder)
    return (["## Plots", ""] + [f"![{p.stem}]({p.as_posix()})" for p in plots] + [""]) if plots else []


def render_report(folder, record):
    """REPORT.md's text: a students' study's, a sweep's (sweep.csv) or a study's."""
    if any(folder.glob("student_*/results.csv")):
        lines = students_report(folder, record)
    elif (folder / "sweep.csv").is_file():
        lines = sweep_report(folder, record)
    else:
        lines = study_report(folder, record)
    return "\n".join(lines).rstrip() + "\n"


def write_report(folder):
    """Write FOLDER/REPORT.md and return its path."""
    folder = Path(folder)
    path = folder / "REPORT.md"
    path.write_text(render_report(folder, provenance(folder)), encoding="utf-8")
    return path
