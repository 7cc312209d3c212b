#!/usr/bin/env bash
# Pilot (issue 35): what closes the rest of the 2 x 384 student's slot gap? The student pilot's
# fastest student worth shipping (2 x 384 from all-MiniLM-L6-v2's layers 2 and 5, target-only at
# the CPU profile's 1M transfer tokens, seed 1) keeps 91.4% of the 3e-4 teacher's exact match.
# Three changes, one at a time, each the same job as the student pilot's but for one knob:
#   uniform: every student layer matched to a teacher layer (--hidden-layers uniform)
#   attn:    the MiniLMv2 attention-relation loss beside the hidden-state losses (--alpha-attn 1)
#   epochs6: six finetuning epochs instead of three (FT_EPOCHS=6; its dev curve was still rising)
# and the teacher's job at six epochs too (teacher6), since its dev curve was rising as well; then
# the two that helped together (uniform-epochs6).
# The baseline is the student pilot's job (../pilot-students/jobs/), the teacher the teacher
# pilot's (../pilot-teacher/jobs/); compare.py pairs them utterance by utterance. Resumable:
#
#   bash docs/results/pilot-slot-gap/run.sh [STUDY] [VARIANT...]   # default: ../runs/pilot-slot-gap, all three
#   python docs/results/pilot-slot-gap/compare.py > docs/results/pilot-slot-gap/compare.txt
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/pilot-slot-gap}
VARIANTS=("${@:2}"); [[ ${#VARIANTS[@]} -gt 0 ]] || VARIANTS=(uniform attn epochs6 teacher6 uniform-epochs6)
export STUDENTS="2x384:teacher" RATIOS=1
for variant in "${VARIANTS[@]}"; do
  job=(1 distill_r1 - distill 1 - 2x384-teacher)
  case $variant in
    uniform) knobs=(STUDENT_DISTILL_FLAGS="2x384:teacher=--hidden-layers uniform") ;;
    attn)    knobs=(STUDENT_DISTILL_FLAGS="2x384:teacher=--alpha-attn 1") ;;
    epochs6) knobs=(FT_EPOCHS=6) ;;
    teacher6) knobs=(FT_EPOCHS=6) job=(1 teacher - teacher - - -) ;;
    uniform-epochs6) knobs=(STUDENT_DISTILL_FLAGS="2x384:teacher=--hidden-layers uniform" FT_EPOCHS=6) ;;
    *) echo "run.sh: error: unknown variant '$variant' (use uniform, attn, epochs6, teacher6 or uniform-epochs6)" >&2
       exit 2 ;;
  esac
  mkdir -p "$STUDY/$variant"
  bash docs/results/jobs.sh restore "$STUDY/$variant" "$HERE/jobs/$variant"
  env OUT_ROOT="$STUDY/$variant" "${knobs[@]}" python -m common.profiles layout --profile cpu
  env OUT_ROOT="$STUDY/$variant" "${knobs[@]}" bash reproduce.sh --profile cpu --job "${job[@]}"
  bash docs/results/jobs.sh save "$STUDY/$variant" "$HERE/jobs/$variant"
done
