#!/usr/bin/env bash
# Pilot (issue 35): do students started from the teacher's weights close the slot gap on MASSIVE
# en-US, and at what latency? The CPU profile's target-only student at its 1M transfer tokens,
# seed 1, in three shapes: 4 x 384 from all-MiniLM-L6-v2's layers 1, 2, 3, 5; 4 x 256 cut from
# them by weight selection; 2 x 384 from its layers 2 and 5; and the teacher's seed-1 job, which
# the exports' latency tables need. The distill_r1 and teacher jobs of the study that
# STUDENTS="..." RATIOS=1 bash reproduce.sh --profile cpu would run (it would add scratch and the
# undistilled control per student), then its aggregation, exports and frontier. Resumable:
#
#   bash docs/results/pilot-students/run.sh [STUDY]   # default: ../runs/pilot-students
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/pilot-students}
export OUT_ROOT=$STUDY STUDENTS=${STUDENTS:-"4x384:teacher 4x256:select 2x384:teacher"} RATIOS=1
mkdir -p "$STUDY"
bash docs/results/jobs.sh restore "$STUDY" "$HERE/jobs"
python -m common.profiles layout --profile cpu
for student in $STUDENTS; do
  bash reproduce.sh --profile cpu --job 1 distill_r1 - distill 1 - "${student/:/-}"
  bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
done
bash reproduce.sh --profile cpu --job 1 teacher - teacher - - -
bash docs/results/jobs.sh save "$STUDY" "$HERE/jobs"
bash reproduce.sh --profile cpu --stage final
