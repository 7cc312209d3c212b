"""The accuracy-latency frontier (aggregate.py --frontier) on fixture studies with known numbers."""
import csv
import json

import pytest

import aggregate
from common.answer import best_cell, students_row
from common.frontier import pareto, recommend, study_point
from common.run import UsageError

# (folder, layers x hidden, DC accuracy, exact match, int8 b1 p50 ms, the teacher's int8 in that run)
STUDIES = [("s-2x128", 2, 128, 0.80, 0.40, 0.20, 0.62), ("s-4x256", 4, 256, 0.86, 0.50, 0.31, 0.60),
           ("s-4x384", 4, 384, 0.87, 0.51, 0.45, 0.61), ("s-6x384", 6, 384, 0.85, 0.49, 0.55, 0.60)]


def write_study(root, name, layers, hidden, dc, em, int8_ms, teacher_ms):
    study = root / name
    rows = [("distill_r1", "dc_accuracy", dc), ("distill_r1", "exact_match", em), ("distill_r1", "intent_accuracy", em + 0.3),
            ("scratch", "dc_accuracy", dc - 0.05), ("scratch", "exact_match", em - 0.05),
            ("teacher", "dc_accuracy", 0.90), ("teacher", "exact_match", 0.59)]
    (study / "seed1" / "distill_r1" / "student").mkdir(parents=True)
    with open(study / "results.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["condition", "locale", "metric", "seeds", "mean"])
        writer.writerows([(c, "all", m, 5, v) for c, m, v in rows])
    (study / "seed1" / "distill_r1" / "student" / "run.json").write_text(json.dumps(
        {"student": {"layers": layers, "hidden": hidden, "init": "random", "parameters": layers * hidden * 10_000}}))
    (study / "export" / "dc").mkdir(parents=True)
    latency = {"PyTorch fp32 teacher": 3.0, "ONNX int8 teacher": teacher_ms, "ONNX int8 student": int8_ms}
    (study / "export" / "dc" / "latency.json").write_text(json.dumps(
        {"rows": [{"model": m, "batch_1": {"p50_ms": v}} for m, v in latency.items()]}))
    agreement = 0.985 if hidden == 384 else 0.995  # the wide students' int8 fails its parity check
    (study / "export" / "dc" / "parity.json").write_text(json.dumps(
        {"int8_vs_fp32_agreement": {"logits": agreement}, "failed": [] if agreement >= 0.99 else ["int8 agrees ..."]}))
    return study


def test_the_frontier_names_the_pareto_students_and_the_one_to_ship(tmp_path, capsys):
    studies = [write_study(tmp_path, *s) for s in STUDIES]
    points = [study_point(s) for s in studies]
    assert [p.student for p in points] == ["2x128 random", "4x256 random", "4x384 random", "6x384 random"]
    assert points[1].condition == "distill_r1" and points[1].score == pytest.approx((0.86 + 0.50) / 2)
    # 6x384 is slower and less accurate than 4x384: off the frontier
    assert [p.study for p in pareto(points)] == ["s-2x128", "s-4x256", "s-4x384"]
    # without a budget: the fastest within 1 point of the best (4x384 scores 0.69, 4x256 0.68)
    chosen, why = recommend(points)
    assert chosen.study == "s-4x256" and "within 1 point" in why
    chosen, _ = recommend(points, budget_ms=0.25)
    assert chosen.study == "s-2x128"
    chosen, why = recommend(points, budget_ms=0.1)
    assert chosen is None and "the fastest, s-2x128, takes 0.20 ms" in why

    out = tmp_path / "frontier"
    assert aggregate.main(["--frontier", *map(str, studies), "--output", str(out), "--latency-budget-ms", "0.5"]) == 0
    md = (out / "frontier.md").read_text()
    assert "**Ship `s-4x384` (4x384 random, `distill_r1`, target-only)**: the most accurate within the latency budget of 0.5 ms. " \
        "Its int8 export failed the parity check (int8 agrees with fp32 on 98.50%)" in md
    # each row's speed-up over the teacher's int8 ONNX of its own run, and its share of the teacher's
    # scores (86 of 90, 50 of 59; the fixture's teacher has no intent accuracy)
    assert "| s-4x256 | 4x256 random | `distill_r1` (target-only) | 10.2 | 0.31 | 1.94 | 9.68 | 86.00 (95.6%) | 80.00 | 50.00 (84.7%) | " \
        "99.50% | yes |" in md
    assert "| s-6x384 | 6x384 random | `distill_r1` (target-only) | 23 | 0.55 | 1.09 | 5.45 | 85.00 (94.4%) | 79.00 | 49.00 (83.1%) | " \
        "98.50% (parity failed) |  |" in md
    rows = {r["study"]: r for r in csv.DictReader(open(out / "frontier.csv"))}
    assert rows["s-6x384"]["pareto"] == "0" and rows["s-2x128"]["pareto"] == "1"
    assert (rows["s-6x384"]["int8_parity_failed"], rows["s-2x128"]["int8_agreement"]) == ("1", "0.995")
    assert (rows["s-2x128"]["teacher_dc_accuracy"], rows["s-2x128"]["teacher_intent_accuracy"]) == ("0.9", "")
    assert (out / "plots" / "frontier.png").stat().st_size > 10_000
    assert aggregate.main(["--frontier", *map(str, studies), "--output", str(out), "--latency-budget-ms", "0.1"]) == 1
    # an export that quantised per channel too (export.py --per-channel auto) is not told to try it
    assert "or export with --per-channel on." in md
    parity = studies[2] / "export" / "dc" / "parity.json"
    parity.write_text(json.dumps({**json.loads(parity.read_text()), "per_channel": False, "per_channel_tried": {}}))
    assert aggregate.main(["--frontier", *map(str, studies), "--output", str(out), "--latency-budget-ms", "0.5"]) == 0
    assert "table (per-channel weights were tried too)." in (out / "frontier.md").read_text()


def test_the_readme_row_of_a_students_study_is_the_student_it_ships(tmp_path):
    """The README's answer row of a study over students: the student its frontier ships, with that
    student's own findings and share of the teacher; none when no student fits the budget."""
    root = tmp_path / "students"
    studies = [write_study(root, *s) for s in STUDIES]
    (root / "s-4x384" / "findings.csv").write_text("better,worse,metric,locale,seeds,diff,verdict\n"
                                                   "distill_r1,scratch,dc_accuracy,all,5,0.05,reproduced\n")
    assert aggregate.main(["--frontier", *map(str, studies), "--output", str(root), "--latency-budget-ms", "0.5"]) == 0
    cells = students_row(root, tmp_path).split(" | ")
    assert "`4x384 random` target-only" in cells and "DC +5.00 holds" in cells and "5" in cells
    assert "96.7% DC, 86.4% EM" in cells  # 0.87 of 0.90 and 0.51 of 0.59
    assert aggregate.main(["--frontier", *map(str, studies), "--output", str(root), "--latency-budget-ms", "0.1"]) == 1
    assert "`" not in students_row(root, tmp_path)


def test_the_readme_names_the_best_student_by_its_transfer_set():
    assert [best_cell(b, s) for b, s in [("distill_r0", "4x384 teacher"), ("distill_r1", None),
                                          ("distill_r0.3", None), ("scratch", None), (None, None)]] == \
        ["`4x384 teacher` generic-only", "target-only", "7:3 generic:target", "`scratch`", ""]


def test_a_study_without_its_export_is_one_line(tmp_path):
    study = write_study(tmp_path, *STUDIES[0])
    (study / "export" / "dc" / "latency.json").unlink()
    with pytest.raises(UsageError, match=r"s-2x128: no export/dc/latency.json or export/icner/latency.json"):
        study_point(study)
