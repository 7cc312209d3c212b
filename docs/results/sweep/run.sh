#!/usr/bin/env bash
# The CPU budget sweep, extended (issue 32): the CPU profile (5 seeds, 3 finetuning epochs) at
# 3M transfer tokens for generic-only and target-only, and the 7:3 mix at 300k and 1M; scratch and
# the teacher run once and are shared by every budget. Run from the repository, over as many
# sittings as it takes: each rerun restores the jobs recorded in jobs/ and resumes the rest.
#
#   bash docs/results/sweep/run.sh [STUDY]   # default: ../runs/cpu-sweep beside the checkout
#   bash docs/results/jobs.sh save STUDY docs/results/sweep/jobs   # after each job: record it in the repository
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../../.."
STUDY=${1:-../runs/cpu-sweep}
export TITLE="MASSIVE en-US, the CPU budget sweep"   # the reports' and the README answer's name for it
mkdir -p "$STUDY"
bash "$HERE/../jobs.sh" restore "$STUDY" "$HERE/jobs"
# 3M first: the new budget is the sweep's open question; 7:3 at the two landed budgets after it.
OUT_ROOT=$STUDY RATIOS="0 1" BUDGETS=3M bash reproduce.sh --profile cpu
# The paired intervals need every condition's per-utterance results from this run, so generic-only
# and target-only at 300k and 1M run again beside 7:3. aggregate.py --sweep reads every budget_*/.
# No export there: export/ keeps the largest budget's (3M) student, the one the report names.
OUT_ROOT=$STUDY RATIOS="0 0.3 1" BUDGETS="300k 1M" EXPORT_TASKS=none bash reproduce.sh --profile cpu
python aggregate.py --sweep "$STUDY"
