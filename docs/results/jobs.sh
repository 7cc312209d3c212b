#!/usr/bin/env bash
# A long study's finished jobs (the sweep's, a pilot's), kept in the repository so that a run on
# another machine (or after the study folder is lost) skips them and aggregate.py still reads them.
#
#   bash docs/results/jobs.sh save    STUDY JOBS_DIR   # copy each finished job's records into JOBS_DIR
#   bash docs/results/jobs.sh restore STUDY JOBS_DIR [JOB]   # put them back (those named JOB, a glob:
#                                                    # seed1__teacher); reproduce.sh then skips those jobs
#
# A job's records: its test reports (with the per-utterance results the paired bootstrap needs,
# gzip -n for reproducible bytes; this machine's folders rewritten as relative paths) and the run.json of its student and finetuned models. reproduce.sh
# counts a job done when its student/, dc/, icner/ folders and its *_test.json exist.
set -euo pipefail
verb=${1:?save or restore}
STUDY=${2:?the study folder (OUT_ROOT)}
JOBS_DIR=${3:?the folder of the job records, e.g. docs/results/sweep/jobs}
ONLY=${4:-*}
case $verb in
  save)
    mkdir -p "$JOBS_DIR"
    for done in "$STUDY"/{,student_*/}{,budget_*/}seed*/*/icner_test.json; do
      [[ -f $done && ! -L $(dirname "$done") ]] || continue   # shared conditions are links in budget and student folders
      dir=$(dirname "$done")
      job=${dir#"$STUDY"/}; job=${job//\//__}                 # budget_3M__seed1__distill_r0
      [[ -f $JOBS_DIR/${job}__icner_test.json.gz ]] && continue
      for task in dc icner; do
        gzip -n -c "$dir/${task}_test.json" > "$JOBS_DIR/${job}__${task}_test.json.gz"
        cp "$dir/${task}_test.txt" "$JOBS_DIR/${job}__${task}_test.txt"
        cp "$dir/$task/run.json" "$JOBS_DIR/${job}__${task}_run.json"
      done
      [[ -f $dir/student/run.json ]] && cp "$dir/student/run.json" "$JOBS_DIR/${job}__student_run.json"
      python "$(dirname "$0")/strip_paths.py" "$JOBS_DIR/${job}"__* > /dev/null   # no machine's folders
      echo "saved $job"
    done ;;
  restore)
    for report in "$JOBS_DIR"/${ONLY}__icner_test.json.gz; do
      [[ -f $report ]] || continue
      job=$(basename "$report" __icner_test.json.gz)
      dir=$STUDY/${job//__//}
      [[ -f $dir/icner_test.json ]] && continue
      for task in dc icner; do
        mkdir -p "$dir/$task"
        gunzip -c "$JOBS_DIR/${job}__${task}_test.json.gz" > "$dir/${task}_test.json"
        cp "$JOBS_DIR/${job}__${task}_test.txt" "$dir/${task}_test.txt"
        cp "$JOBS_DIR/${job}__${task}_run.json" "$dir/$task/run.json"
      done
      if [[ -f $JOBS_DIR/${job}__student_run.json ]]; then
        mkdir -p "$dir/student" && cp "$JOBS_DIR/${job}__student_run.json" "$dir/student/run.json"
      fi
      echo "restored $job"
    done ;;
  *) echo "jobs.sh: error: unknown verb '$verb' (use save or restore)" >&2; exit 2 ;;
esac
