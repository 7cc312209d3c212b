#!/usr/bin/env bash
# Put the finished jobs recorded in jobs/ back into a study folder (default /work/runs/ml-rep), so that
# run.sh, rerun on a machine that lost the folder, skips them: reproduce.sh counts a job done when its
# student/ and dc/ folders and its dc_test.json exist. aggregate.py needs only the reports and run.json files.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-/work/runs/ml-rep}
for report in "$HERE"/jobs/*_dc_test.json.gz; do
  job=$(basename "$report" _dc_test.json.gz)       # seed6_distill_r0
  seed=${job%%_*} condition=${job#*_}
  dir=$OUT/$seed/$condition
  [[ -f $dir/dc_test.json ]] && continue
  mkdir -p "$dir/student" "$dir/dc"
  gunzip -c "$report" > "$dir/dc_test.json"
  cp "$HERE/jobs/${job}_dc_test.txt" "$dir/dc_test.txt"
  cp "$HERE/jobs/${job}_student_run.json" "$dir/student/run.json"
  cp "$HERE/jobs/${job}_dc_run.json" "$dir/dc/run.json"
  echo "restored $job"
done
