#!/usr/bin/env bash
# Issue 11 measurement, session 3: the CPU default candidate (5 seeds, ratios 0 and 1, 3 finetuning
# epochs, 300k tokens), then the sweep's 1M point on seeds 1-3. JOBS=2 was tried and was 4-25x slower (threads
# oversubscribed). Resumable: rerun; finished jobs are skipped.
set -uo pipefail
cd /work/wt-sweep
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
COMMON=("RATIOS=0 1" ADAPTED_RATIOS= FT_EPOCHS=3 OUT_ROOT=/work/runs/cpu-sweep
        GENERIC_DATA=/work/shared/data/wikipedia-lead/en.jsonl TARGET_DATA=/work/shared/data/massive-1.1
        TASK_DATA=/work/shared/data/massive-1.1)
run() {
  start=$(date +%s)
  env "${COMMON[@]}" "SEEDS=$1" "BUDGETS=$2" bash reproduce.sh >> /work/runs/cpu-sweep.log 2>&1
  echo "SEEDS=$1 BUDGETS=$2 rc=$? wall=$(( $(date +%s) - start )) s $(date -Is)" >> /work/runs/cpu-sweep.times
}
run "1 2 3 4 5" "300k"
run "1 2 3" "300k 1M"
