#!/usr/bin/env bash
# Issue 13: the multilingual CPU default end to end (MiniLM teacher, en-US es-ES fr-FR, DC,
# 3 seeds, 1M tokens, 3 epochs), from a checkout of main in /work/wt-ml. Resumable: rerun.
set -uo pipefail
cd /work/wt-ml
export PATH=/work/venv/bin:$PATH HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
start=$(date +%s)
OUT_ROOT=/work/runs/ml-study bash reproduce.sh --multilingual >> /work/runs/ml-study.log 2>&1
echo "rc=$? wall=$(( $(date +%s) - start )) s $(date -Is) commit $(git log --format=%h -1)" >> /work/runs/ml-study.times
