#!/usr/bin/env bash
# Issue 11, session 4: the CPU profile at 1M end to end (seeds 3-5 at 1M remain; everything finished is
# skipped), from a checkout of main 0c77119. JOBS=1 (the CPU default).
set -uo pipefail
cd /work/wt-sweep
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
env "RATIOS=0 1" ADAPTED_RATIOS= FT_EPOCHS=3 OUT_ROOT=/work/runs/cpu-sweep \
  GENERIC_DATA=/work/shared/data/wikipedia-lead/en.jsonl TARGET_DATA=/work/shared/data/massive-1.1 \
  TASK_DATA=/work/shared/data/massive-1.1 "SEEDS=1 2 3 4 5" "BUDGETS=300k 1M" bash reproduce.sh >> /work/runs/cpu-sweep.log 2>&1
echo "SEEDS=1 2 3 4 5 BUDGETS=300k 1M rc=$? wall=$(( $(date +%s) - start )) s $(date -Is) (commit 0c77119)" >> /work/runs/cpu-sweep.times
