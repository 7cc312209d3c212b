#!/usr/bin/env bash
# Issue 29's package target: the paper's deployed system, a DC student routing each utterance to
# the ICNER student of its predicted domain, as one int8 package: its end-to-end batch-1 latency
# against the DC model's alone, and what per-domain models and predicted routing do to exact match.
# The student pilot's 2x384 student (from the teacher's layers 2 and 5, target-only at 1M transfer
# tokens, seed 1) finetuned per domain as the GPU profile finetunes (up to 10 epochs, early
# stopping), exported per domain, packaged with the pilot's DC export; beside it, the pilot's own
# package of the same DC export and the global ICNER model. Resumable:
#
#   bash docs/results/per-domain-package/run.sh [PILOT] [OUT]   # defaults: ../runs/pilot-students ../runs/per-domain-package
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
PILOT=${1:-../runs/pilot-students}
OUT=${2:-../runs/per-domain-package}
STUDENT=$PILOT/student_2x384-teacher
DATA=${KD_DATA:-../shared/data}/massive-1.1
mkdir -p "$OUT"
[[ -f $OUT/icner/run.json ]] ||
  python finetune.py --task icner --all-domains --model "$STUDENT/seed1/distill_r1/student" --data "$DATA" \
    --locales en-US --output-dir "$OUT/icner" --epochs 10 --lr 3e-4 --seed 1 --resume
python evaluate.py --model "$OUT/icner" --data "$DATA" --locales en-US --split test --output "$OUT/icner_test.json"
[[ -f $OUT/icner_onnx/run.json ]] ||
  python export.py --model "$OUT/icner" --output-dir "$OUT/icner_onnx" --data "$DATA" --locales en-US ||
    [[ $? == 1 ]]  # 1: a domain's parity check failed (the export stands, parity.json says which); else stop
for icner in "$OUT/icner_onnx" "$STUDENT/export/icner"; do
  name=$([[ $icner == "$OUT/icner_onnx" ]] && echo per-domain || echo global)
  python package.py --dc "$STUDENT/export/dc" --icner "$icner" --output-dir "$OUT/package-$name" --overwrite \
    --data "$DATA" --locales en-US --benchmark 2> "$OUT/package-$name.log"
  tail -n 8 "$OUT/package-$name.log"
  python evaluate.py --model "$OUT/package-$name" --data "$DATA" --locales en-US --split test \
    --output "$OUT/package-${name}_test.json"
done
python docs/results/per-domain-package/report.py "$OUT"
