#!/usr/bin/env bash
# Pilot (issue 35): does a student at the teacher's width, started from the teacher's layers, close
# the slot gap on MASSIVE en-US? The CPU profile's target-only student at its 1M transfer tokens,
# seed 1, as 4 x 384 from all-MiniLM-L6-v2's layers 1, 2, 3, 5 (STUDENTS="4x384:teacher"), and
# the teacher's seed-1 job, which the export's latency table needs. Two jobs of the study that
# STUDENTS="4x384:teacher" RATIOS=1 bash reproduce.sh --profile cpu would run (it would add scratch
# and the undistilled control), then its aggregation, export and frontier. Resumable:
#
#   bash docs/results/pilot-students/run.sh [STUDY]   # default: ../runs/pilot-students
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/pilot-students}
export OUT_ROOT=$STUDY STUDENTS="4x384:teacher" RATIOS=1
mkdir -p "$STUDY"
bash docs/results/jobs.sh restore "$STUDY" "$HERE/jobs"
python -m common.profiles layout --profile cpu
bash reproduce.sh --profile cpu --job 1 distill_r1 - distill 1 - 4x384-teacher
bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
bash reproduce.sh --profile cpu --job 1 teacher - teacher - - -
bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
bash reproduce.sh --profile cpu --stage final
