#!/usr/bin/env bash
# Pilot: which finetuning LR suits students that start from the teacher's weights?
# es-ES DC alone (11,514 utterances, 3 epochs, seed 1), dev accuracy per epoch chooses; test shown after.
set -euo pipefail
cd /work/main
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
P=/work/runs/pilot; Q=/work/runs/pilot-lr
ft() { # model out lr
  [[ -d $2 ]] || { echo "[$(date +%T)] ft $2 lr $3"; python finetune.py --task dc --model "$1" --data ../shared/data/massive-1.1 --locales es-ES \
    --output-dir "$2" --epochs 3 --lr "$3" --seed 1 --overwrite > "$2.log" 2>&1; }
  [[ -f $2_test.json ]] || python evaluate.py --model "$2" --data ../shared/data/massive-1.1 --locales es-ES --split test --output "$2_test.json" > "$2_test.txt"
  echo "[$(date +%T)] $2 done"
}
ft $P/select_init $Q/select_init_1e-4 1e-4
ft $P/select_r1 $Q/select_r1_1e-4 1e-4
ft $P/select_init $Q/select_init_2e-4 2e-4
# (a fourth run, scratch at 1e-4, was stopped unfinished: the question is the inherited start)
echo "[$(date +%T)] done"
