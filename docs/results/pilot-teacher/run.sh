#!/usr/bin/env bash
# Pilot (issue 35): was the CPU profile's teacher under-finetuned? Its seed-1 teacher job, finetuned
# at the students' learning rate (3e-4) instead of the old default 1e-4, 3 epochs as the profile
# finetunes; the 1e-4 teacher is the student pilot's (../pilot-students/jobs/seed1__teacher__*).
#
#   bash docs/results/pilot-teacher/run.sh [STUDY]   # default: ../runs/pilot-teacher
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/pilot-teacher}
mkdir -p "$STUDY"
bash docs/results/jobs.sh restore "$STUDY" "$HERE/jobs"
OUT_ROOT=$STUDY FT_LR=3e-4 bash reproduce.sh --profile cpu --job 1 teacher - teacher - - -
bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
