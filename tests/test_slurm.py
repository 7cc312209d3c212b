"""reproduce.sh --slurm on a real SLURM cluster: the one-node cluster on localhost that .ci/run starts
(bash .ci/slurm-cluster start DIR; SLURM_CONF=DIR/slurm.conf). Skipped without one, unless
KD_REQUIRE_SLURM=1 (as in CI), where a missing cluster fails."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from test_study import quick_study, results_without_wall_times


@pytest.fixture
def slurm_cluster():
    reachable = shutil.which("sinfo") and subprocess.run(["sinfo", "-h"], capture_output=True).returncode == 0
    if not reachable:
        message = "no SLURM cluster: bash .ci/slurm-cluster start DIR, then export SLURM_CONF=DIR/slurm.conf"
        if os.environ.get("KD_REQUIRE_SLURM") == "1":
            pytest.fail(message)
        pytest.skip(message)


def tiny_study(teacher_dir, data_dir):
    """The quick study on the tiny teacher and the fixture's lines, DC only, not exported (the
    export is the local run's, test_study.py): scratch, target-only and the teacher."""
    return dict(TEACHER=str(teacher_dir), TARGET_DATA=str(data_dir / "massive"), TASK_DATA=str(data_dir / "massive"),
                GENERIC_DATA=str(data_dir / "wiki.jsonl"), STUDENT_LAYERS="1", STUDENT_HIDDEN="16",
                STUDENT_HEADS="2", TASKS="dc", QUICK_RATIOS="1", QUICK_ADAPTED_RATIOS="", EXPORT_TASKS="none")


def slurm_study(out_root, **env):
    return quick_study(out_root, SLURM_FLAGS="--time 20", **env, extra_args=["--slurm", "--wait"])


def test_the_quick_study_through_slurm_matches_the_local_run_names_a_failed_task_and_resumes(
        slurm_cluster, teacher_dir, data_dir, tmp_path):
    tiny = tiny_study(teacher_dir, data_dir)
    local = quick_study(tmp_path / "local", JOBS="2", OMP_NUM_THREADS="1", **tiny)
    assert local.returncode == 0, local.stderr[-3000:]
    study = tmp_path / "slurm"
    proc = slurm_study(study, OMP_NUM_THREADS="1", **tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "0 of 3 jobs finished; 3 to run as a job array" in proc.stderr
    assert "SLURM jobs: jobs " in proc.stderr and "(array 1-3)" in proc.stderr
    assert f"follow: squeue --me -n 'kd-transfer:{study}'" in proc.stderr
    assert results_without_wall_times(study) == results_without_wall_times(tmp_path / "local")
    assert (study / "REPORT.md").is_file() and len(list((study / "logs" / "slurm").glob("*_[1-3].out"))) == 3

    # A task that fails, half done: its student is distilled, its finetuning cannot load it. It is
    # named with its logs, and the aggregation does not run on the partial study.
    config = study / "seed1" / "distill_r1" / "student" / "config.json"
    good_config = config.read_text()
    config.write_text("{oops")
    shutil.rmtree(study / "seed1" / "distill_r1" / "dc")
    (study / "seed1" / "distill_r1" / "dc_test.json").unlink()
    for stale in ("results.csv", "REPORT.md"):
        (study / stale).unlink()
    proc = slurm_study(study, OMP_NUM_THREADS="1", **tiny)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "2 of 3 jobs finished; 1 to run as a job array" in proc.stderr and "SLURM jobs: jobs " in proc.stderr
    failed = [line for line in proc.stderr.splitlines() if "seed1_distill_r1 ended FAILED" in line]
    assert len(failed) == 1 and f"see {study}/logs/seed1_distill_r1.log and {study}/logs/slurm/" in failed[0]
    assert proc.stderr.strip().splitlines()[-1] == \
        "reproduce.sh: error: the study did not finish, so it was not aggregated; rerun the same command to resume"
    assert not (study / "results.csv").exists() and not (study / "REPORT.md").exists()

    # Fixed and resubmitted: only that job runs, from its distilled student, with the cores SLURM
    # gave its task (1 CPU, as OMP_NUM_THREADS is not set); the results are the local run's again.
    config.write_text(good_config)
    proc = slurm_study(study, **tiny)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 of 3 jobs finished; 1 to run as a job array" in proc.stderr
    resumed = (study / "logs" / "seed1_distill_r1.log").read_text().split("start seed1_distill_r1")[-1]
    assert "finetune dc" in resumed and "distill ratio" not in resumed
    assert results_without_wall_times(study) == results_without_wall_times(tmp_path / "local")
    assert json.loads((study / "seed1" / "distill_r1" / "dc" / "run.json").read_text())["cpu_threads"] == 1


def test_under_the_gpu_profile_each_task_asks_for_a_gpu(slurm_cluster, teacher_dir, data_dir, tmp_path):
    """Submitted held (SLURM_FLAGS=--hold), read back from the queue, then cancelled."""
    study = tmp_path / "study"
    env = dict(os.environ, OUT_ROOT=str(study), NGPU="0", SLURM_FLAGS="--hold --time 5",
               **tiny_study(teacher_dir, data_dir))
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--profile", "gpu", "--slurm"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    name = f"kd-transfer:{study}"
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        ids = re.search(r"SLURM jobs: teachers (\d+), jobs (\d+) \(array 1-35\)", proc.stderr).groups()
        final = re.search(r"aggregation and export: job (\d+);", proc.stderr).group(1)
        queued = lambda job: subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%b %l %r"], capture_output=True,  # noqa: E731
                                            text=True, check=True).stdout.splitlines()
        # the teacher step and a task per job of the GPU profile (5 seeds x 7) on a GPU each; the
        # aggregation needs none; SLURM_FLAGS reached every job
        assert queued(ids[0]) == ["gres:gpu:1 5:00 JobHeldUser"]
        assert queued(ids[1]) == ["gres:gpu:1 5:00 JobHeldUser"] * 35
        assert queued(final) == ["N/A 5:00 JobHeldUser"]
        again = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--profile", "gpu", "--slurm"], cwd=REPO,
                               env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and again.stderr.strip().startswith("reproduce.sh: error: this study's SLURM jobs")
    finally:
        subprocess.run(["scancel", "-n", name], check=True)


def test_slurm_without_sbatch_is_one_line_naming_what_is_missing(tmp_path):
    bin_dir = tmp_path / "bin"  # the machine's commands, less SLURM's
    bin_dir.mkdir()
    for name in ("python", "python3"):  # this Python by its own path: a link to a venv's python leaves the venv
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
        (bin_dir / name).chmod(0o755)
    for folder in os.environ["PATH"].split(os.pathsep):
        for tool in Path(folder).glob("*") if Path(folder).is_dir() else []:
            if tool.name not in ("sbatch", "squeue") and not (bin_dir / tool.name).exists():
                (bin_dir / tool.name).symlink_to(tool)
    out = tmp_path / "study"
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--quick", "--slurm"], cwd=REPO,
                          env=dict(os.environ, PATH=str(bin_dir), OUT_ROOT=str(out)),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == \
        "reproduce.sh: error: --slurm needs SLURM's sbatch and squeue on PATH (not found: sbatch squeue)"
    assert not out.exists()
    proc = subprocess.run(["bash", str(REPO / "reproduce.sh"), "--quick", "--wait"], cwd=REPO,
                          env=dict(os.environ, OUT_ROOT=str(out)), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip() == "reproduce.sh: error: --wait goes with --slurm"
    assert not out.exists()
