#!/usr/bin/env bash
# Issue 35's study: the students the pilot (../pilot-students/) found worth deploying, at 5 seeds,
# each with its own scratch and undistilled controls and both transfer sets: 2 x 384 and 4 x 384
# from the teacher's layers, MASSIVE en-US, the CPU profile (1M transfer tokens, 3 finetuning
# epochs). The pilot's seed-1 target-only jobs are the same jobs and are restored from its records.
# Run from the repository, over as many sittings as it takes: each job's records are saved in
# jobs/ as it finishes, and a rerun restores them and goes on with the rest.
#
#   bash docs/results/students/run.sh [STUDY]   # default: ../runs/students beside the checkout
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/students}
export OUT_ROOT=$STUDY STUDENTS="2x384:teacher 4x384:teacher" RATIOS="0 1"
export TITLE="MASSIVE en-US, students from the teacher's layers (the CPU profile)"
mkdir -p "$STUDY"
bash docs/results/jobs.sh restore "$STUDY" "$HERE/../pilot-students/jobs" "student_[24]x384-teacher__seed1__distill_r1"
bash docs/results/jobs.sh restore "$STUDY" "$HERE/jobs"
python -m common.profiles layout --profile cpu
python -m common.profiles jobs --profile cpu | while read -r -a job; do
  bash reproduce.sh --profile cpu --job "${job[@]}" < /dev/null
  bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
done
bash reproduce.sh --profile cpu --stage final
