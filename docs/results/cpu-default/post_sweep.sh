#!/usr/bin/env bash
# the export of the 1M best student (the first export was of the 300k run's), then candidate (a) on de-DE
bash /work/runs/cpu_sweep3.sh
LOCALES=de-DE bash /work/runs/ml_teacher_candidates.sh >> /work/runs/ml-teacher/log.txt 2>&1
echo "post_sweep done $(date -Is)" >> /work/runs/cpu-sweep.times
