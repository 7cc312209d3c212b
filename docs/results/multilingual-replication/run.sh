#!/usr/bin/env bash
# The confirmatory replication of plan.md: the multilingual CPU default on seeds 6-10, scratch and
# generic-only only, from commit a860b9f. Rerun the same command to resume. JOBS=2 (one thread each):
# started at JOBS=1, where scratch finetuned at 3.3-3.8 steps/s on this AMD EPYC (about 2 h 55 min
# for the 10 jobs, past the session), restarted at 10:16 with two jobs at a time; results do not
# depend on JOBS.
cd /work/wt-rep
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
JOBS=2 SEEDS="6 7 8 9 10" RATIOS=0 UNDISTILLED=0 TEACHER_SEEDS=none OUT_ROOT=/work/runs/ml-rep \
  bash reproduce.sh --multilingual
rc=$?
echo "rc=$rc wall=$(( $(date +%s) - start )) s $(date -Iseconds) commit $(git rev-parse --short HEAD)" >> /work/runs/ml-rep/times.txt
