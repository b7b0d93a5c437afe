#!/usr/bin/env bash
# SST-2 with all-MiniLM-L6-v2: none / FGM (epsilon 0.5 absolute, the source's; and 0.3 relative,
# the relative value equivalent to 0.5 on TNEWS's e5-small) / gradient penalty (epsilon 1) /
# PGD / FreeLB, 3 seeds, in the reduced regime of PLAN.md (chosen before any result).
#
#   bash experiments/sst2_minilm/run.sh [OUT] [extra compare flags, e.g. --attack ...]
#
# OUT defaults to /work/sweeps/sst2_minilm (outside git). Resumable: `advnlp compare` skips
# finished runs and resumes interrupted ones, so rerunning this script continues.
# One compare folder per setting that compare cannot vary within a folder (its --epsilon list
# and --epsilon-unit are shared by every method):
#   OUT/fgm_abs      none + FGM eps 0.5 (absolute)                        seeds 0-2
#   OUT/fgm_rel      FGM eps 0.3 relative (= 0.36 absolute on MiniLM)     seeds 0-2
#   OUT/gp           gradient penalty eps 1                               seeds 0-2
#   OUT/fgm_free     FreeFGM eps 0.5, the ~1x-cost FGM (added 2026-12-01)  seeds 0-2
#   OUT/pgd_freelb   PGD eps 1 in token scope (the popular recipe's; the  seeds 0-2
#                    library's example scope collapsed on TNEWS, see tnews_e5/PLAN.md) and
#                    FreeLB eps 1, library defaults otherwise
# The others reuse fgm_abs's none runs (symbolic links: same seeds, data and base settings,
# so the pairing holds), but pgd_freelb, which trains its own.
set -euo pipefail

OUT=${1:-/work/sweeps/sst2_minilm}
shift || true
EXTRA=("$@")
DATA=${ADVNLP_DATA:-/work/shared/data}
SEEDS=0,1,2

COMMON=(
  --train "$DATA/sst2/train.tsv" --dev "$DATA/sst2/dev.tsv"
  --max-train-examples 12000
  --model minilm
  --epochs 3 --batch-size 32 --max-length 64 --lr 2e-5
)

# Accuracy under attack (added 2026-11-30 20:58, see PLAN.md "Attacks"): every run's best model
# on one fixed sample of 500 dev examples; a run attacked earlier with these settings is reused,
# so linked baseline runs are attacked once.
ATTACK=(--attack typo,embedding --attack-examples 500 --attack-budget 0.1 --attack-radius 0.01,0.02)

# FOLDERS="a b" runs only those compare folders (default: all), e.g. to finish one folder on a new
# machine after `python experiments/keep_runs.py restore NAME` put its kept runs back.
wanted() { [ -z "${FOLDERS:-}" ] || [[ " $FOLDERS " == *" $1 "* ]]; }

compare() {  # compare FOLDER FLAGS...: one advnlp compare call, logged
  local folder=$1
  shift
  wanted "$folder" || return 0
  echo "== $(date -u +%FT%TZ) advnlp compare -> $OUT/$folder $* (advnlp from $(python -c 'import advnlp, os; print(os.path.dirname(advnlp.__file__))'))"
  advnlp compare "${COMMON[@]}" "$@" "${ATTACK[@]}" --output "$OUT/$folder" "${EXTRA[@]}"
}

link_baseline() {  # link_baseline FOLDER: reuse fgm_abs's none runs
  wanted "$1" || return 0
  mkdir -p "$OUT/$1/runs"
  for seed in ${SEEDS//,/ }; do
    local source="$OUT/fgm_abs/runs/none-seed$seed"
    # a run trained again is another run, so a missing one is not made again here
    test -f "$source/results.json" || { echo "$source is not on this machine: run fgm_abs first"; exit 1; }
    ln -sfn "$source" "$OUT/$1/runs/none-seed$seed"
  done
}

compare fgm_abs --methods none,fgm --epsilon 0.5 --seeds $SEEDS
compare gp --methods gp --epsilon 1 --seeds $SEEDS
link_baseline gp
compare gp --methods none,gp --epsilon 1 --seeds $SEEDS
compare fgm_rel --methods fgm --epsilon 0.3 --epsilon-unit relative --seeds $SEEDS
link_baseline fgm_rel
compare fgm_rel --methods none,fgm --epsilon 0.3 --epsilon-unit relative --seeds $SEEDS
# added 2026-12-01 (issue 14, item 3): what the ~1x-cost FGM keeps of FGM's gain on a second task
compare fgm_free --methods fgm_free --epsilon 0.5 --seeds $SEEDS
link_baseline fgm_free
compare fgm_free --methods none,fgm_free --epsilon 0.5 --seeds $SEEDS
# pgd_freelb trains its own none runs: fgm_abs's were lost with their machine before this folder
# finished (../tnews_e5/PLAN.md, "Amendment: pgd_freelb's own none runs")
compare pgd_freelb --methods none,pgd,freelb --epsilon 1 --scope token --seeds $SEEDS
echo "== $(date -u +%FT%TZ) sst2_minilm done"
