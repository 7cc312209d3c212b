#!/usr/bin/env bash
# Issue 13 on a lent GPU (the `device` tool: one H200, 15 device-minutes in all, one call):
#   1. the gpu-marked tests (every loop on CUDA in bf16 and fp32),
#   2. `reproduce.sh --multilingual` in its GPU profile (5 seeds, 3M tokens, DC, 3 epochs),
#   3. candidate (b) of the teacher choice at a GPU budget: our own teacher pretrained for
#      PRETRAIN_STEPS masked-LM steps (reproduce.sh's PRETRAIN_TEACHER command), then finetuned for
#      DC per locale as candidate (a) was (1 epoch, lr 1e-4, seed 1).
# The three run side by side on the one GPU, each under its own timeout; what they leave comes back
# as two archives (the device returns at most 8 files): figures, logs, run.json, no weights.
# Run from the project root: source .device/on-device.sh first (bash ../shared/device/prepare.sh
# here, plus the optimum wheels for export.py).
set -uo pipefail
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/session.log"; }
command -v python > /dev/null || { mkdir -p /tmp/bin && ln -sf "$(command -v python3)" /tmp/bin/python; export PATH=/tmp/bin:$PATH; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/device.txt"
python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" >> "$OUT/device.txt"
nproc >> "$OUT/device.txt"
STUDY=/tmp/ml-gpu PRE=/tmp/ml-pretrained DATA=/tmp/kd-data
stamp "start: $(cat "$OUT/device.txt" | tr '\n' ' ')"

# 1. the gpu tests
( timeout "${TEST_S:-240}" python -m pytest tests -m gpu -p no:cacheprovider -q > "$OUT/gpu_tests.log" 2>&1
  echo "rc=$?" >> "$OUT/gpu_tests.log"; stamp "gpu tests done: $(tail -2 "$OUT/gpu_tests.log" | tr '\n' ' ')" ) &

# 3. candidate (b): pretrain, then finetune and test per locale
( mkdir -p $PRE
  export OMP_NUM_THREADS=2
  s=$(date +%s)
  timeout "${PRETRAIN_S:-360}" python finetune.py --task mlm --from-scratch --model configs/multilingual_teacher.json \
    --tokenizer-type unigram --vocab-size 16000 --text-data $DATA/wikipedia-lead/{en,es,fr}.jsonl \
    --max-steps "${PRETRAIN_STEPS:-10000}" --lr 5e-4 --batch-size 32 --max-seq-length 128 \
    --output-dir $PRE/teacher --overwrite > $PRE/pretrain.log 2>&1
  stamp "pretraining rc=$? in $(( $(date +%s) - s )) s"
  for locale in es-ES fr-FR en-US; do
    [[ -d $PRE/teacher && $(( $(date +%s) - T0 )) -lt ${FINETUNE_BEFORE_S:-480} ]] || break
    s=$(date +%s)
    timeout 90 python finetune.py --task dc --model $PRE/teacher --data $DATA/massive-1.1 --locales $locale \
      --output-dir $PRE/$locale/dc --epochs 1 --lr 1e-4 --seed 1 --overwrite > $PRE/$locale.log 2>&1 &&
    timeout 60 python evaluate.py --model $PRE/$locale/dc --data $DATA/massive-1.1 --locales $locale --split test \
      --output $PRE/$locale/dc_test.json > $PRE/$locale/dc_test.txt 2>> $PRE/$locale.log
    stamp "pretrained teacher, $locale: rc=$? in $(( $(date +%s) - s )) s"
  done ) &
PRE_PID=$!

# 2. the multilingual study, GPU profile. Its jobs drive the GPU from one Python thread each.
s=$(date +%s)
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OUT_ROOT=$STUDY TARGET_DATA=$DATA/massive-1.1 TASK_DATA=$DATA/massive-1.1 WIKIPEDIA_LEADS=$DATA/wikipedia-lead \
  JOBS_PER_GPU=${JOBS_PER_GPU:-8} timeout "${STUDY_S:-530}" bash reproduce.sh --multilingual ${STUDY_ARGS:-} > "$OUT/study.log" 2>&1
stamp "study rc=$? in $(( $(date +%s) - s )) s"
wait
pack() { tar czf "$1" --exclude='*.safetensors' --exclude='*.bin' --exclude='*.pt' --exclude='*.onnx' \
  --exclude='*.partial' --exclude='*.pth' --exclude='*.data' -C "$(dirname "$2")" "$(basename "$2")"; }
pack "$OUT/study.tar.gz" $STUDY
pack "$OUT/pretrained.tar.gz" $PRE
stamp "packed: $(du -sh "$OUT"/*.tar.gz | tr '\n' ' ')"
