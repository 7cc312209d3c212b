#!/usr/bin/env bash
# The generic-vs-target transfer-set study end to end (Peris et al. 2022 on your teacher and data).
#
#   bash reproduce.sh            # the English study (the CPU or GPU profile, by the machine)
#   bash reproduce.sh --quick    # tiny budgets, one seed, data subsets: a smoke test (minutes)
#   bash reproduce.sh --multilingual   # MASSIVE en-US, es-ES, fr-FR, each language's Wikipedia leads
#   BUDGETS="300k 1M 3M" bash reproduce.sh   # the budget sweep: every transfer set at every budget
#   bash reproduce.sh --slurm    # the same study on a SLURM cluster: a job array (docs/slurm.md)
#   bash reproduce.sh --plan     # what it would run (profile, every knob, the jobs), writing nothing
#   bash reproduce.sh --help     # every knob, its default in each profile, what it means
#
# Knobs are environment variables over the profile files of configs/profiles/ (common/profiles.py).
# Per seed: scratch, distill_rR (distilled at target ratio R), adapted_rR (from the teacher adapted
# on the target text), undistilled (the students' start) and the teacher, each finetuned for DC and
# ICNER and scored on test; then aggregate.py (REPORT.md, the best student), similarity.py, the
# best student's int8 export and its DC + ICNER package. Rerun the same command to resume.
set -Eeuo pipefail
SELF=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")  # what xargs runs for each job
cd "$(dirname "$0")"

QUICK=0 MULTILINGUAL=0 PLAN=0 SLURM=0 WAIT=0 STAGE= JOB=() PROFILE=${PROFILE:-auto}
MODE_ARGS=("$@")
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) QUICK=1 ;;
    --multilingual) MULTILINGUAL=1 ;;
    --slurm) SLURM=1 ;;
    --wait) WAIT=1 ;;
    --profile) PROFILE=${2:-}; shift ;;
    --plan) PLAN=1 ;;
    --help|-h) python -m common.profiles help; exit 0 ;;
    --job) JOB=("${@:2:7}"); shift 7 ;;  # internal: one job (a line of `profiles jobs`) for xargs
    --array-task) read -ra JOB < <(sed -n "${SLURM_ARRAY_TASK_ID}p" "$2"); shift ;;  # internal: the job of a SLURM array task
    --stage) STAGE=${2:-}; shift ;;  # internal: teachers or final, as a SLURM job
    *) echo "reproduce.sh: error: unknown argument $1 (use --quick, --multilingual, --profile cpu|gpu, --slurm, --wait, --plan, --help)" >&2; exit 2 ;;
  esac
  shift
done
PROFILE_ARGS=(--profile "$PROFILE")
[[ $QUICK == 1 ]] && PROFILE_ARGS+=(--quick)
[[ $MULTILINGUAL == 1 ]] && PROFILE_ARGS+=(--multilingual)
# Every knob in force (common/profiles.py: the environment, then the profile files), the flag
# arrays passed on, and the study's provenance; then every knob checked before any job, one line each.
USER_THREADS=${OMP_NUM_THREADS:-}   # the threads the user set, if any (the profile may set them per job)
RESOLVED=$(python -m common.profiles resolve "${PROFILE_ARGS[@]}" --mode "${MODE_ARGS[@]}") || exit $?
eval "$RESOLVED"
PROFILE_ARGS[1]=$STUDY_PROFILE  # what auto chose here: a job on another machine runs the same profile
source "$(dirname "$SELF")/configs/check_knobs.sh"
if [[ $WAIT == 1 && $SLURM == 0 ]]; then echo "reproduce.sh: error: --wait goes with --slurm" >&2; exit 2; fi
if [[ $PLAN == 1 ]]; then exec python -m common.profiles plan "${PROFILE_ARGS[@]}"; fi
if [[ $SLURM == 1 && -z $STAGE && ${#JOB[@]} == 0 ]]; then
  source "$(dirname "$SELF")/common/slurm.sh"
  slurm_check || exit $?
fi
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
mkdir -p "$OUT_ROOT/logs"
TARGET=(--target-data $TARGET_DATA --locales $LOCALES ${TARGET_TEXT_FIELD:+--target-text-field "$TARGET_TEXT_FIELD"})
LABELLED=(--locales $LOCALES --data-format "$DATA_FORMAT" --text-column "$TEXT_COLUMN" --label-column "$LABEL_COLUMN"
          ${CONLL_COLUMNS:+--conll-columns "$CONLL_COLUMNS"})
DC_FLAGS=(--data $DC_DATA "${LABELLED[@]}")        # the labelled data of each task
ICNER_FLAGS=(--data $ICNER_DATA "${LABELLED[@]}")

finetune_and_evaluate() {  # $1 model, $2 condition folder, $3 seed, $4 learning rate
  local model=$1 dir=$2 seed=$3 lr=$4 task; mkdir -p "$dir"
  for task in $TASKS; do
    local -n flags=${task^^}_FLAGS
    if [[ ! -d $dir/$task ]]; then  # an interrupted finetuning resumes from its last checkpoint (each epoch)
      log "finetune $task: $dir"
      local per_domain=(); [[ $task == icner && $ICNER_PER_DOMAIN == 1 ]] && per_domain=(--all-domains)
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

distill() {  # $1 teacher, $2 ratio, $3 output, $4 seed, then the student's and the budget's flags
  local teacher=$1 ratio=$2 out=$3 seed=$4; shift 4
  if [[ ! -d $out ]]; then
    log "distill ratio $ratio: $out"
    mkdir -p "$(dirname "$out")"
    python distill.py --teacher "$teacher" --generic-data $GENERIC_DATA "${TARGET[@]}" \
      --target-ratio "$ratio" --output-dir "$out" --seed "$seed" "${DISTILL_SHAPE[@]}" $DISTILL_FLAGS --resume "$@"
  fi
}

[[ $PRETRAIN_TEACHER == 1 ]] && TEACHER=$OUT_ROOT/pretrained_teacher
ADAPTED=$OUT_ROOT/adapted_teacher   # the teacher after masked-LM training on the target text
teachers_needed() {  # 0 when a teacher is still to be pretrained or adapted
  [[ ($PRETRAIN_TEACHER == 1 && ! -d $TEACHER) || (-n "$ADAPTED_RATIOS" && ! -d $ADAPTED) ]]
}

prepare_teachers() {  # before any job: the pretrained teacher, then the adapted one
  if [[ $PRETRAIN_TEACHER == 1 && ! -d $TEACHER ]]; then
    log "pretrain the multilingual teacher: $TEACHER"
    python finetune.py --task mlm --from-scratch --model configs/multilingual_teacher.json --tokenizer-type unigram \
      --vocab-size "$VOCAB_SIZE" --text-data $GENERIC_DATA --max-steps "$PRETRAIN_STEPS" --lr "$PRETRAIN_LR" \
      --batch-size 32 --max-seq-length 128 --output-dir "$TEACHER" --overwrite --resume
  fi
  if [[ -n "$ADAPTED_RATIOS" && ! -d $ADAPTED ]]; then
    log "adapt the teacher: $ADAPTED"
    python finetune.py --task mlm --model "$TEACHER" --data $TARGET_DATA --locales $LOCALES \
      ${TARGET_TEXT_FIELD:+--target-text-field "$TARGET_TEXT_FIELD"} --output-dir "$ADAPTED" \
      --epochs "$ADAPT_EPOCHS" --overwrite "${EXTRA_ADAPT[@]}"
  fi
}

job_dir() {  # a job's condition folder, from its record (common.profiles jobs): seed condition budget ... student
  local root=$OUT_ROOT; [[ $7 == - ]] || root=$OUT_ROOT/student_$7
  if [[ $3 == - ]]; then echo "$root/seed$1/$2"; else echo "$root/budget_$3/seed$1/$2"; fi
}
job_name() { echo "seed$1_$2$([[ $3 == - ]] || echo "_$3")$([[ $7 == - ]] || echo "_$7")"; }
job_finished() {  # 0 when every task of the job is scored on test
  local dir task; dir=$(job_dir "$@")
  for task in $TASKS; do [[ -f $dir/${task}_test.json ]] || return 1; done
}

run_job() {  # a job's record: seed condition budget kind ratio tokens student (- : none)
  local seed=$1 condition=$2 kind=$4 ratio=$5 amount=("${DISTILL_AMOUNT[@]}") dir; dir=$(job_dir "$@")
  [[ $3 == - ]] || amount=(--max-tokens "$6")
  local shape=(--student-layers "$STUDENT_LAYERS" --student-hidden "$STUDENT_HIDDEN" --student-heads "$STUDENT_HEADS"
               --student-init "$STUDENT_INIT")
  [[ $7 == - ]] || eval "shape=(${STUDENT_ARGS[$7]})"   # a student of STUDENTS: its shape, start and flags
  case $kind in
    scratch) distill "$TEACHER" 0 "$dir/student" "$seed" "${shape[@]}" --max-steps 0 --student-init random ;;  # not distilled
    undistilled) distill "$TEACHER" 0 "$dir/student" "$seed" "${shape[@]}" --max-steps 0 ;;  # the student's start
    distill) distill "$TEACHER" "$ratio" "$dir/student" "$seed" "${shape[@]}" "${amount[@]}" ;;
    adapted) distill "$ADAPTED" "$ratio" "$dir/student" "$seed" "${shape[@]}" "${amount[@]}" ;;
  esac
  local model=$dir/student lr=$STUDENT_FT_LR
  [[ $kind == teacher ]] && model=$TEACHER lr=$FT_LR
  finetune_and_evaluate "$model" "$dir" "$seed" "$lr"
}

lay_out_studies() {  # the symlinks that share a condition between budgets and students (common.profiles)
  python -m common.profiles layout "${PROFILE_ARGS[@]}"
}

run_jobs_here() {  # every job on this machine, JOBS at a time (xargs), each by the one-job path below
  local study_jobs; study_jobs=$(python -m common.profiles jobs "${PROFILE_ARGS[@]}")
  log "$(wc -l <<< "$study_jobs") jobs, $JOBS at a time"
  if ! xargs -P "$JOBS" -L 1 --process-slot-var=SLOT bash "$SELF" "${PROFILE_ARGS[@]}" --job <<< "$study_jobs"; then
    echo "reproduce.sh: error: a job failed (named above, with its log); rerun the same command to resume" >&2
    exit 1
  fi
}

aggregate_study() {  # results, REPORT.md, the best student; then the similarity of the final study
  FINAL=$OUT_ROOT   # the study whose best student is exported and whose domains are correlated
  if [[ -n $BUDGETS ]]; then
    for budget in $BUDGETS; do python aggregate.py --out-root "$OUT_ROOT/budget_$budget" > /dev/null; done
    python aggregate.py --sweep "$OUT_ROOT"
    FINAL=$OUT_ROOT/budget_$LARGEST_BUDGET
    log "similarity and export from the largest budget: $FINAL"
  else
    python aggregate.py --out-root "$OUT_ROOT"
  fi
  # Domains are the DC classes; without DC (or with fewer than 3 classes) there is nothing to correlate.
  if [[ " $TASKS " != *" dc "* ]]; then
    log "similarity analysis skipped: it correlates over DC classes, and TASKS has no dc"
  elif ! compgen -G "$FINAL/seed*/distill_r0/dc_test.json" > /dev/null || ! compgen -G "$FINAL/seed*/distill_r1/dc_test.json" > /dev/null; then
    log "similarity analysis skipped: it correlates the gain of distill_r1 over distill_r0, and RATIOS lacks one"
  else
    python similarity.py --tokenizer "$TEACHER" --generic-data $GENERIC_DATA "${DC_FLAGS[@]}" --out-root "$FINAL" \
      || log "similarity analysis skipped (see the line above)"
  fi
}

export_seed() {  # the first seed whose best-student models are here: a record restored from another
  local seed task   # machine (docs/results/jobs.sh) holds the scores, not the weights
  for seed in $SEEDS; do
    for task in $EXPORT_TASKS; do [[ -f $FINAL/seed$seed/$BEST/$task/config.json ]] || continue 2; done
    echo "$seed"; return
  done
  echo "$FIRST_SEED"   # none: export.py names the missing model
}

export_best() {  # the best student (aggregate.py chose it; REPORT.md states the rule) of one seed
  local task model exported_as status seed
  [[ $EXPORT_TASKS != none ]] || return 0
  BEST=$(cat "$FINAL/best_student.txt")
  seed=$(export_seed)
  log "best student: $BEST (exported from seed $seed)"
  for task in $EXPORT_TASKS; do
    local -n flags=${task^^}_FLAGS
    model=$FINAL/seed$seed/$BEST/$task
    # Exported once per model and EXPORT_FLAGS (the record: the model, then the flags if any): a sweep
    # extended to a larger budget, a new best or other flags (--per-channel) export again.
    exported_as=$(printf '%s\n' "$model" ${EXPORT_FLAGS:+"flags: $EXPORT_FLAGS"})
    if [[ ! -d $OUT_ROOT/export/$task || $(cat "$OUT_ROOT/export/$task.model" 2>/dev/null) != "$exported_as" ]]; then
      mkdir -p "$OUT_ROOT/export"
      status=0   # a failed export is reported, not fatal: the study's results stand without it
      python export.py --model "$model" --output-dir "$OUT_ROOT/export/$task" --overwrite \
        "${flags[@]}" --benchmark --teacher "$OUT_ROOT/seed$FIRST_SEED/teacher/$task" "${EXTRA_EXPORT[@]}" $EXPORT_FLAGS \
        > "$OUT_ROOT/export/$task.latency.txt" || status=$?
      [[ $status == 1 ]] && log "export $task: parity check failed, see $OUT_ROOT/export/$task/parity.json"
      [[ $status -gt 1 ]] && log "export $task: export.py failed (exit $status; its error is the line above)"
      [[ -d $OUT_ROOT/export/$task ]] && echo "$exported_as" > "$OUT_ROOT/export/$task.model"
      cat "$OUT_ROOT/export/$task.latency.txt"
    fi
    unset -n flags
  done
}

package_best() {
  # The deployed system: the DC student routing to the ICNER student(s) (per domain with
  # ICNER_PER_DOMAIN=1), one int8 package; built again whenever either export is new.
  [[ -f $OUT_ROOT/export/dc.model && -f $OUT_ROOT/export/icner.model && " $EXPORT_TASKS " == *" dc "* \
     && " $EXPORT_TASKS " == *" icner "* ]] || return 0
  local packaged_from status=0; packaged_from=$(cat "$OUT_ROOT/export/dc.model" "$OUT_ROOT/export/icner.model")
  if [[ ! -d $OUT_ROOT/export/package || $(cat "$OUT_ROOT/export/package.model" 2>/dev/null) != "$packaged_from" ]]; then
    python package.py --dc "$OUT_ROOT/export/dc" --icner "$OUT_ROOT/export/icner" --output-dir "$OUT_ROOT/export/package" \
      --overwrite "${ICNER_FLAGS[@]}" --benchmark "${EXTRA_PACKAGE[@]}" > "$OUT_ROOT/export/package.latency.txt" || status=$?
    if [[ $status == 0 ]]; then echo "$packaged_from" > "$OUT_ROOT/export/package.model"
    else log "package: package.py failed (exit $status; its error is the line above)"; fi
    cat "$OUT_ROOT/export/package.latency.txt"
  fi
}

finish_study() {  # after every job: aggregation, similarity, the best student's export and package
  aggregate_study
  export_best
  package_best
  [[ $FINAL == "$OUT_ROOT" ]] || cp "$FINAL/best_student.txt" "$OUT_ROOT/best_student.txt"
  python aggregate.py --report "$OUT_ROOT" 2> /dev/null   # the report again, now with the export's figures
  log "done: $OUT_ROOT/REPORT.md (the answer, the best student, its export), results and plots in $FINAL"
}

finish_studies() {  # each study (one per student of STUDENTS) finished; then the student to ship
  local root
  [[ -n $STUDENTS ]] || { finish_study; return; }
  for root in "${STUDY_ROOTS[@]}"; do
    (OUT_ROOT=$root STUDY_TITLE="$STUDY_TITLE, student ${root##*/student_}"; finish_study)
  done
  # The frontier needs each student's export; without one it says which, and the studies stand.
  python aggregate.py --frontier "${STUDY_ROOTS[@]}" --output "$OUT_ROOT" \
    ${LATENCY_BUDGET_MS:+--latency-budget-ms "$LATENCY_BUDGET_MS"} > /dev/null || log "frontier: see the line above"
  python aggregate.py --report "$OUT_ROOT" 2> /dev/null
  log "done: $OUT_ROOT/REPORT.md (the student to ship; each student's study in its student_* folder)"
}

if [[ ${#JOB[@]} -gt 0 ]]; then  # one job (of xargs, or a SLURM array task): on one GPU, logged to a file
  name=$(job_name "${JOB[@]}")
  LOG=$OUT_ROOT/logs/$name.log
  if [[ -n ${SLURM_JOB_ID:-} ]]; then  # SLURM chose the GPU (--gres) and the cores
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}}
  elif [[ $NGPU -gt 0 ]]; then
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
  log "start $name" >> "$LOG" 2>&1   # appended: a resumed study must not wipe the log of the work done
  run_job "${JOB[@]}" >> "$LOG" 2>&1
  log "done  $name"
  exit 0
fi

case $STAGE in
  teachers) prepare_teachers; exit 0 ;;  # SLURM jobs: before the array, and after it
  final) finish_studies; exit 0 ;;
  '') ;;
  *) echo "reproduce.sh: error: --stage $STAGE (internal: teachers or final)" >&2; exit 2 ;;
esac
if [[ $SLURM == 1 ]]; then submit_study; exit $?; fi
prepare_teachers
lay_out_studies
run_jobs_here
finish_studies
