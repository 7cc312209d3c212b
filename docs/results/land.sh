#!/usr/bin/env bash
# Land a finished study in the repository: its reports, tables, plots and export figures (not its
# models or logs), with this machine's paths stripped, and each REPORT.md written again from the
# landed files, as the docs tests check them.
#
#   bash docs/results/land.sh STUDY DEST   # e.g. ../runs/students docs/results/students
#
# The study's folder and each of its budget_*/ and student_*/ folders land alike. An export's
# export/<task>/latency.json, parity.json and evaluation.json land as <task>_latency.json, ...,
# and export/<task>.latency.txt as <task>.latency.txt: where aggregate.py looks in a landed copy;
# export/<task>.model (which student was exported) lands as <task>.model, from the study's folder on.
# A student folder keeps seed 1's student run.json files too (the frontier reads the shape there).
# Whatever else DEST holds (jobs/, run.sh, a README.md) stays as it is.
set -euo pipefail
STUDY=${1:?the study folder}
DEST=${2:?the folder to land it in, under docs/results/}
HERE=$(cd "$(dirname "$0")" && pwd)
[[ -f $STUDY/REPORT.md ]] || { echo "land.sh: error: $STUDY/REPORT.md: no report (has the study finished?)" >&2; exit 2; }
unset STUDY_STARTED   # the study's provenance.json is kept, not written anew

exported_model() {  # RECORD: export/<task>.model with the study's own path dropped (budget_*/ or seed*/ on)
  sed -E '\|/budget_[^/]+/|{s|^.*/(budget_[^/]+/)|\1|;b;};s|^.*/(seed[0-9]+/)|\1|' "$1"
}

land_folder() {  # SRC DST
  local src=$1 dst=$2 name task file run
  mkdir -p "$dst"
  for name in REPORT.md provenance.json best_student.txt results.csv results.md findings.csv contrasts.csv \
              sweep.csv sweep.md frontier.csv frontier.md similarity.csv similarity.json; do
    [[ -f $src/$name ]] && cp "$src/$name" "$dst/"
  done
  if compgen -G "$src/plots/*.png" > /dev/null; then mkdir -p "$dst/plots" && cp "$src"/plots/*.png "$dst/plots/"; fi
  for task in dc icner package; do
    for file in latency parity evaluation; do
      [[ -f $src/export/$task/$file.json ]] && cp "$src/export/$task/$file.json" "$dst/${task}_$file.json"
    done
    [[ -s $src/export/$task.latency.txt ]] && cp "$src/export/$task.latency.txt" "$dst/$task.latency.txt"
    [[ -f $src/export/$task.model ]] && exported_model "$src/export/$task.model" > "$dst/$task.model"
  done
  if [[ $(basename "$src") == student_* ]]; then
    for run in "$src"/seed1/*/student/run.json; do
      [[ -f $run && ! -L $(dirname "$(dirname "$run")") ]] || continue   # shared conditions are links
      mkdir -p "$(dirname "$dst/${run#"$src"/}")" && cp "$run" "$dst/${run#"$src"/}"
    done
  fi
  return 0
}

land_folder "$STUDY" "$DEST"
for sub in "$STUDY"/budget_* "$STUDY"/student_*; do
  [[ -d $sub ]] && land_folder "$sub" "$DEST/$(basename "$sub")"
done
find "$DEST" -path "$DEST/jobs" -prune -o -type f \( -name '*.json' -o -name '*.md' -o -name '*.txt' -o -name '*.csv' \) \
  -print0 | xargs -0 -r python "$HERE/strip_paths.py" > /dev/null
# The reports again, from the landed files: the sub-studies first, whose reports the top one reads.
for folder in "$DEST"/budget_* "$DEST"/student_* "$DEST"; do
  [[ -f $folder/REPORT.md ]] && python "$HERE/../../aggregate.py" --report "$folder" > /dev/null
done
echo "landed $STUDY in $DEST"
