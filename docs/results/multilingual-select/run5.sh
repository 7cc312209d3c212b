#!/usr/bin/env bash
# Seeds 4 and 5 of the multilingual CPU default (STUDENT_INIT=select, with the undistilled control),
# from commit 135c787; seeds 1-3 exist (the control's folders renamed selected -> undistilled: same commands).
cd /work/wt-sel
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
SEEDS="1 2 3 4 5" OUT_ROOT=/work/runs/ml-select bash reproduce.sh --multilingual
rc=$?
echo "rc=$rc wall=$(( $(date +%s) - start )) s $(date -Iseconds) commit $(git rev-parse --short HEAD) seeds 4-5" >> /work/runs/ml-select/times.txt
