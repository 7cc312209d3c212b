"""The study: CI maths, the similarity measure, aggregation, and reproduce.sh --quick end to end."""
import csv
import json
import os
import shutil
import subprocess
from collections import Counter

import numpy as np
import pytest

import aggregate
from common.massive import PARTITIONS, load_massive
from common.metrics import mean_ci
from common.similarity import js_divergence, similarity, spearman, spearman_p_value
from conftest import DATA, REPO, write_bio_folder


def test_mean_ci_on_known_numbers():
    mean, low, high = mean_ci([0.80, 0.82, 0.84])
    # sd = 0.02, t(0.975, 2) = 4.303: half width 4.303 * 0.02 / sqrt(3)
    assert mean == pytest.approx(0.82)
    assert high - mean == pytest.approx(4.303 * 0.02 / np.sqrt(3))
    assert mean - low == pytest.approx(high - mean)
    assert mean_ci([0.5]) == (0.5, None, None)
    assert mean_ci([0.7, 0.7]) == (0.7, 0.7, 0.7)


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
    assert float(r1["gap_ci_high"]) - 0.05 == pytest.approx(4.303 * 0.01 / np.sqrt(3))
    assert rows[("distill_r0", "dc_accuracy")]["gap_vs_generic"] == ""
    assert (tmp_path / "plots" / "metrics_vs_ratio.png").stat().st_size > 10_000
    assert "| distill_r1 | all | dc_accuracy | 3 | 87.00 |" in (tmp_path / "results.md").read_text()
    findings = {(r["better"], r["worse"], r["metric"]): r for r in csv.DictReader(open(tmp_path / "findings.csv"))}
    target_vs_generic = findings[("distill_r1", "distill_r0", "dc_accuracy")]
    assert float(target_vs_generic["diff"]) == pytest.approx(0.05)
    assert target_vs_generic["verdict"] == "reproduced"  # CI 0.05 +- 0.025 excludes 0
    # SemER = 1 - exact here, so its lower-is-better difference flips to the same +0.05
    assert float(findings[("distill_r1", "distill_r0", "semer")]["diff"]) == pytest.approx(0.05)
    assert not any(b == "scratch" or w == "scratch" for b, w, _ in findings)  # scratch did not run


def test_findings_verdicts_read_off_the_ci(tmp_path):
    # adapted beats distilled by 0.01, 0.00, -0.01 (spans 0); scratch beats generic by 0.05 +- 0.01 (reversed)
    for seed, (d, a, s) in enumerate([(0.80, 0.81, 0.85), (0.82, 0.82, 0.86), (0.84, 0.83, 0.90)], start=1):
        fake_result(tmp_path, seed, "distill_r0", d, 0.5, ratio=0.0)
        fake_result(tmp_path, seed, "adapted_r0", a, 0.5, ratio=0.0)
        fake_result(tmp_path, seed, "scratch", s, 0.5)
    runs = aggregate.collect(tmp_path)
    verdicts = {(r["better"], r["metric"]): r["verdict"] for r in aggregate.findings(runs)}
    assert verdicts[("adapted_r0", "dc_accuracy")] == "not resolved (CI spans 0)"
    assert verdicts[("distill_r0", "dc_accuracy")] == "reversed"


def quick_study(out_root, **env):
    env = {**os.environ, "OUT_ROOT": str(out_root), "TARGET_DATA": str(DATA / "massive-1.1"),
           "TASK_DATA": str(DATA / "massive-1.1"), "GENERIC_DATA": str(DATA / "wikipedia-lead" / "en.jsonl"), **env}
    return subprocess.run(["bash", str(REPO / "reproduce.sh"), "--quick"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def results_without_wall_times(study):
    return [{k: v for k, v in row.items() if not k.endswith("_wall_s")}
            for row in csv.DictReader(open(study / "results.csv"))]


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_end_to_end_in_parallel_and_resumed(tmp_path):
    study = tmp_path / "study"
    proc = quick_study(study, JOBS="2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "5 jobs, 2 at a time" in proc.stderr
    rows = list(csv.DictReader(open(study / "results.csv")))
    conditions = {r["condition"] for r in rows}
    assert conditions == {"scratch", "distill_r0", "distill_r1", "adapted_r1", "teacher"}
    assert {r["metric"] for r in rows} == {"dc_accuracy", "intent_accuracy", "slot_f1", "semer", "exact_match"}
    assert all(0 <= float(r["mean"]) <= (10 if r["metric"] == "semer" else 1) for r in rows)  # SemER counts insertions
    sim = json.loads((study / "similarity.json").read_text())
    assert len(sim["domains"]) == 18 and all(0 <= d["similarity"] <= 1 for d in sim["domains"])
    assert (study / "plots" / "metrics_vs_ratio.png").is_file() and (study / "plots" / "similarity_vs_gain.png").is_file()
    latency = json.loads((study / "export" / "dc" / "latency.json").read_text())
    assert [r["model"] for r in latency["rows"]] == ["PyTorch fp32 teacher", "PyTorch fp32 student",
                                                     "ONNX fp32 student", "ONNX int8 student"]
    parity = json.loads((study / "export" / "dc" / "parity.json").read_text())
    assert parity["fp32_vs_torch_max_abs_diff"] <= 1e-4
    assert (study / "logs" / "seed1_distill_r1.log").is_file()

    # One job at a time gives the same results: redo two conditions sequentially (a resumed study
    # skips everything else) and compare every figure but the wall times.
    parallel = results_without_wall_times(study)
    for condition in ("distill_r1", "teacher"):
        shutil.rmtree(study / "seed1" / condition)
    (study / "results.csv").unlink()
    proc = quick_study(study, JOBS="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "start seed1_distill_r1" in proc.stderr and "5 jobs, 1 at a time" in proc.stderr
    assert results_without_wall_times(study) == parallel

    # A failing job stops new launches, names itself and its log; the rest is left to a rerun.
    for condition in ("scratch", "distill_r0"):
        shutil.rmtree(study / "seed1" / condition / "dc")
    proc = quick_study(study, JOBS="1", STUDENT_FT_LR="-1")
    assert proc.returncode == 1
    assert f"FAILED seed1_scratch: see {study}/logs/seed1_scratch.log" in proc.stderr
    assert "start seed1_distill_r0" not in proc.stderr and "a job failed" in proc.stderr
    assert "argument --lr: -1 is not a number > 0" in (study / "logs" / "seed1_scratch.log").read_text()


@pytest.mark.skipif(not (DATA / "massive-1.1").is_dir(), reason="needs the shared MASSIVE data")
def test_reproduce_quick_on_your_own_data(tmp_path):
    """Unlabelled plain-text target utterances and BIO slot data, ICNER only (TASKS=icner)."""
    by_split = {split: load_massive(DATA / "massive-1.1" / "en-US.jsonl", None, [split])[0] for split in PARTITIONS}
    traffic = tmp_path / "traffic.txt"
    traffic.write_text("".join(u.utt + "\n" for u in by_split["train"]), encoding="utf-8")
    for split, folder in (("train", "train"), ("dev", "valid"), ("test", "test")):
        write_bio_folder(tmp_path / "slots" / folder, by_split[split])
    study = tmp_path / "study"
    proc = quick_study(study, TARGET_DATA=str(traffic), TASK_DATA=str(tmp_path / "slots"), TASKS="icner",
                       QUICK_RATIOS="1", QUICK_ADAPTED_RATIOS="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = list(csv.DictReader(open(study / "results.csv")))
    assert {r["condition"] for r in rows} == {"scratch", "distill_r1", "adapted_r1", "teacher"}
    assert {r["metric"] for r in rows} == {"intent_accuracy", "slot_f1", "semer", "exact_match"}
    assert "similarity analysis skipped: it correlates over DC classes, and TASKS has no dc" in proc.stderr
    adapted = json.loads((study / "adapted_teacher" / "run.json").read_text())
    assert adapted["data"]["fingerprints"]["target"][0]["path"] == str(traffic)
    student = json.loads((study / "seed1" / "distill_r1" / "student" / "run.json").read_text())
    assert student["data"]["fingerprints"]["target"][0]["path"] == str(traffic)
    icner = json.loads((study / "seed1" / "distill_r1" / "icner" / "run.json").read_text())
    assert icner["data"]["fingerprints"]["format"] == "bio"
    assert json.loads((study / "export" / "icner" / "parity.json").read_text())["fp32_vs_torch_max_abs_diff"] <= 1e-4


def test_jobs_must_be_a_positive_integer(tmp_path):
    for jobs in ("0", "two", "-1"):
        proc = quick_study(tmp_path / "never", JOBS=jobs, NGPU="0")
        assert proc.returncode == 2 and proc.stderr.strip() == \
            f"reproduce.sh: error: JOBS must be a positive integer, got '{jobs}'"
