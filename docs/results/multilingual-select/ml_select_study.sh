#!/usr/bin/env bash
# The multilingual CPU profile with weight-selection students (STUDENT_INIT=select), from commit 53b2729.
# scratch (3 seeds) and the teacher are copied from /work/runs/ml-study (commits ef9a16c/4722d41): same commands.
cd /work/wt-sel
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
STUDENT_INIT=select OUT_ROOT=/work/runs/ml-select bash reproduce.sh --multilingual
rc=$?
echo "rc=$rc wall=$(( $(date +%s) - start )) s $(date -Iseconds) commit $(git rev-parse --short HEAD)" >> /work/runs/ml-select/times.txt
