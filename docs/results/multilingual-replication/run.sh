#!/usr/bin/env bash
# The confirmatory replication of plan.md: the multilingual CPU default on seeds 6-10, scratch and
# generic-only only, from commit a860b9f. Rerun the same command to resume.
cd /work/wt-rep
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
SEEDS="6 7 8 9 10" RATIOS=0 UNDISTILLED=0 TEACHER_SEEDS=none OUT_ROOT=/work/runs/ml-rep \
  bash reproduce.sh --multilingual
rc=$?
echo "rc=$rc wall=$(( $(date +%s) - start )) s $(date -Iseconds) commit $(git rev-parse --short HEAD)" >> /work/runs/ml-rep/times.txt
