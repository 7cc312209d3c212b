# Sourced by reproduce.sh once the knobs are set: each bad knob is one line and exit 2, before any job.
knob_error() { echo "reproduce.sh: error: $*" >&2; exit 2; }
each_is() {  # $1 what, $2 regex, then the knobs whose every word must match
  local what=$1 regex=$2 knob word
  shift 2
  for knob; do
    for word in ${!knob}; do [[ $word =~ $regex ]] || knob_error "$knob holds '$word' ($what)"; done
  done
}
each_is "a ratio in [0, 1]: 0, 0.3, 1" '^(0(\.[0-9]+)?|1(\.0+)?|\.[0-9]+)$' RATIOS ADAPTED_RATIOS
each_is "seeds are integers" '^[0-9]+$' SEEDS TEACHER_SEEDS
each_is "transfer tokens: 300000, 300k, 1M, 2.5M" '^[0-9]+(\.[0-9]+)?[kKmMgG]?$' BUDGETS
each_is "use dc, icner or both" '^(dc|icner)$' TASKS
[[ $EXPORT_TASKS == none ]] || each_is "use dc, icner, both or none" '^(dc|icner)$' EXPORT_TASKS
for knob in JOBS JOBS_PER_GPU DISTILL_TOKENS DISTILL_BATCH SEQ_LEN STUDENT_LAYERS STUDENT_HIDDEN STUDENT_HEADS \
            PRETRAIN_STEPS VOCAB_SIZE; do
  [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || knob_error "$knob must be a positive integer, got '${!knob}'"
done
for knob in FT_MAX_TRAIN FT_MAX_DEV; do
  [[ -z ${!knob} || ${!knob} =~ ^[1-9][0-9]*$ ]] || knob_error "$knob must be a positive integer or empty, got '${!knob}'"
done
positive_number() { [[ $1 =~ ^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ && ! $1 =~ ^[0.]+([eE].*)?$ ]]; }
for knob in FT_EPOCHS ADAPT_EPOCHS FT_LR STUDENT_FT_LR PRETRAIN_LR; do
  positive_number "${!knob}" || knob_error "$knob must be a number > 0, got '${!knob}'"
done
[[ -z $LATENCY_BUDGET_MS ]] || positive_number "$LATENCY_BUDGET_MS" \
  || knob_error "LATENCY_BUDGET_MS must be milliseconds > 0 or empty, got '$LATENCY_BUDGET_MS'"
for knob in PRETRAIN_TEACHER UNDISTILLED ICNER_PER_DOMAIN; do
  [[ ${!knob} == 0 || ${!knob} == 1 ]] || knob_error "$knob must be 0 or 1, got '${!knob}'"
done
[[ $STUDENT_INIT =~ ^(auto|select|teacher|random)$ ]] || knob_error "STUDENT_INIT '$STUDENT_INIT' (use auto, select, teacher or random)"
[[ $DATA_FORMAT =~ ^(auto|massive|bio|conll|csv|tsv|jsonl)$ ]] \
  || knob_error "DATA_FORMAT '$DATA_FORMAT' (use auto, massive, bio, conll, csv, tsv or jsonl)"
[[ -n $SEEDS ]] || knob_error "SEEDS is empty (give at least one seed)"
for knob in GENERIC_DATA TARGET_DATA DC_DATA ICNER_DATA; do
  if [[ ${!knob} == "$KD_DATA/"* && ! -d $KD_DATA ]]; then
    knob_error "no data in $KD_DATA (the default of $knob): fetch it with python fetch_data.py --out $KD_DATA, or set KD_DATA"
  fi
done
# A path written as one (./, ../, /, ~ or a data suffix) must exist; anything else may be a hub name.
for knob in KD_DATA GENERIC_DATA TARGET_DATA DC_DATA ICNER_DATA TEACHER; do
  for word in ${!knob}; do
    if [[ ( $word == /* || $word == .* || $word == ~* || $word =~ \.(jsonl|json|txt|csv|tsv|conll)$ ) && ! -e $word ]]; then
      [[ $knob == KD_DATA ]] && knob_error "KD_DATA $word: no such folder (fetch the data: python fetch_data.py --out $word)"
      knob_error "$knob holds $word: no such file or folder"
    fi
  done
done
