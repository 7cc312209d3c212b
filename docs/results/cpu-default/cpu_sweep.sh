#!/usr/bin/env bash
# Issue 11 measurement: seed variance and convergence on 2 CPU cores, to choose the CPU profile.
# 5 seeds, generic-only vs target-only, 3 finetuning epochs (dev-selected), budgets 300k then 1M.
# Resumable: rerun this script; finished steps are skipped. Runs from a frozen worktree.
set -uo pipefail
cd /work/wt-sweep
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
COMMON=("SEEDS=1 2 3 4 5" "RATIOS=0 1" ADAPTED_RATIOS= FT_EPOCHS=3 OUT_ROOT=/work/runs/cpu-sweep
        GENERIC_DATA=/work/shared/data/wikipedia-lead/en.jsonl TARGET_DATA=/work/shared/data/massive-1.1
        TASK_DATA=/work/shared/data/massive-1.1)
for budgets in "300k" "300k 1M"; do
  start=$(date +%s)
  env "${COMMON[@]}" "BUDGETS=$budgets" bash reproduce.sh >> /work/runs/cpu-sweep.log 2>&1
  echo "BUDGETS=$budgets rc=$? wall=$(( $(date +%s) - start )) s $(date -Is)" >> /work/runs/cpu-sweep.times
done
