# The study as SLURM jobs (reproduce.sh --slurm; docs/slurm.md), sourced by reproduce.sh: the
# teacher steps, then a job array with a task per unfinished job (each the one-job path of a local
# run), then the aggregation and export, each after the one before by SLURM's own dependencies.

slurm_submit() {  # sbatch with the flags every job of the study shares; prints the job id
  sbatch --parsable --job-name "$SLURM_STUDY" --chdir "$(dirname "$SELF")" --export ALL \
    --kill-on-invalid-dep yes $SLURM_FLAGS "$@"
}

reproduce_command() {  # what a SLURM job runs: this script with the profile resolved here, then "$@"
  printf 'bash %q' "$SELF"; printf ' %q' "${PROFILE_ARGS[@]}" "$@"
}

unfinished_jobs() {  # $1 all the study's job records: those with a task not yet scored on test
  local job
  while read -ra job; do job_finished "${job[@]}" || echo "${job[*]}"; done < "$1"
}

slurm_state() { squeue -h -t all -j "$1" -o %T 2> /dev/null | head -1; }

name_failures() {  # $1 teachers job, $2 array job, $3 the array's job list: the tasks that did not complete
  local index state job
  if [[ -n $1 && $(slurm_state "$1") != COMPLETED ]]; then
    echo "reproduce.sh: error: the teacher steps (SLURM job $1) ended $(slurm_state "$1"): see $SLURM_LOGS/teachers-$1.out" >&2
  fi
  [[ -n $2 ]] || return 0
  local unfinished; unfinished=$( (squeue -h -r -j "$2" -t PENDING,RUNNING -o %K || true) | wc -l)
  [[ $unfinished == 0 ]] || log "$unfinished of the study's tasks are still queued or running (squeue --me -n '$SLURM_STUDY')"
  while read -r index state; do
    [[ $state == COMPLETED || $state == PENDING || $state == RUNNING ]] && continue
    read -ra job < <(sed -n "${index}p" "$3")
    echo "reproduce.sh: error: $(job_name "${job[@]}") ended $state (SLURM job ${2}_$index):" \
      "see $OUT_ROOT/logs/$(job_name "${job[@]}").log and $SLURM_LOGS/${2}_$index.out" >&2
  done < <(squeue -h -r -t all -j "$2" -o "%K %T")
}

slurm_check() {  # before anything is written: SLURM's commands, a cluster, no queued jobs of this study
  local tool missing=() queued
  for tool in sbatch squeue; do command -v "$tool" > /dev/null || missing+=("$tool"); done
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "reproduce.sh: error: --slurm needs SLURM's sbatch and squeue on PATH (not found: ${missing[*]})" >&2
    return 2
  fi
  SLURM_STUDY="kd-transfer:$(realpath -m "$OUT_ROOT")"   # the study's jobs go by its folder's name
  SLURM_LOGS=$OUT_ROOT/logs/slurm
  if ! queued=$(squeue --me -h -n "$SLURM_STUDY" -o %i 2>&1); then
    echo "reproduce.sh: error: --slurm: squeue cannot reach a SLURM cluster ($(tail -1 <<< "$queued"))" >&2
    return 2
  fi
  queued=$(xargs <<< "$queued")
  if [[ -n $queued ]]; then  # two submissions of one study would write the same folders
    echo "reproduce.sh: error: this study's SLURM jobs $queued are still queued or running: wait for them" \
      "(squeue --me -n '$SLURM_STUDY') or scancel them, then rerun" >&2
    return 2
  fi
}

submit_study() {
  [[ -n $USER_THREADS ]] || unset OMP_NUM_THREADS   # a task takes the cores SLURM gives it
  mkdir -p "$SLURM_LOGS"
  lay_out_studies
  local gpu=() after=() teachers= array= final list=$SLURM_LOGS/jobs-$STUDY_STARTED.txt
  [[ $STUDY_PROFILE == gpu ]] && gpu=(--gres gpu:1)
  if teachers_needed; then
    teachers=$(slurm_submit "${gpu[@]}" --output "$SLURM_LOGS/teachers-%j.out" --wrap "$(reproduce_command --stage teachers)")
    after=(--dependency "afterok:$teachers")
  fi
  python -m common.profiles jobs "${PROFILE_ARGS[@]}" > "$list.all"
  unfinished_jobs "$list.all" > "$list"
  local total todo; total=$(wc -l < "$list.all") todo=$(wc -l < "$list")
  rm "$list.all"
  log "$((total - todo)) of $total jobs finished; $todo to run as a job array"
  if [[ $todo -gt 0 ]]; then
    array=$(slurm_submit "${gpu[@]}" "${after[@]}" --array "1-$todo" --output "$SLURM_LOGS/%A_%a.out" \
      --wrap "$(reproduce_command --array-task "$list")")
    after=(--dependency "afterok:$array")
  fi
  local final_job=("${after[@]}" --output "$SLURM_LOGS/final-%j.out" --wrap "$(reproduce_command --stage final)")
  log "SLURM jobs: ${teachers:+teachers $teachers, }${array:+jobs $array (array 1-$todo), }then the aggregation and export"
  log "follow: squeue --me -n '$SLURM_STUDY'; each job's log in $OUT_ROOT/logs, SLURM's output in $SLURM_LOGS"
  if [[ $WAIT == 0 ]]; then
    final=$(slurm_submit "${final_job[@]}")
    log "aggregation and export: job $final; a failed job cancels it (rerun the same command to resume)"
    return 0
  fi
  final=$(slurm_submit --wait "${final_job[@]}") || true   # sbatch --wait returns when the job ends
  study_outcome "$teachers" "$array" "$list" "$final"
}

study_outcome() {  # $1 teachers, $2 array, $3 its job list, $4 the final job: 0 when the study finished
  if [[ $(slurm_state "$4") == COMPLETED ]]; then
    log "done: $OUT_ROOT/REPORT.md"
    return 0
  fi
  name_failures "$1" "$2" "$3"
  if [[ -z $1 && -z $2 ]] || [[ $(slurm_state "$4") != CANCELLED ]]; then
    echo "reproduce.sh: error: the aggregation (SLURM job $4) ended $(slurm_state "$4"): see $SLURM_LOGS/final-$4.out" >&2
  else
    echo "reproduce.sh: error: the study did not finish, so it was not aggregated; rerun the same command to resume" >&2
  fi
  return 1
}
