#!/usr/bin/env bash
# Epsilon grid for FGM and the gradient penalty on SST-2 / all-MiniLM-L6-v2, 3 seeds, in the
# regime of experiments/sst2_minilm (same flags: see PLAN.md).
#
#   bash experiments/epsilon_grid/run.sh [OUT] [extra compare flags]
#
# OUT defaults to /work/sweeps/epsilon_grid. Resumable like every compare.
#   OUT/fgm   none, FGM in the relative unit, eps 0.03,0.1,0.3,1,3
#   OUT/gp    gradient penalty, eps 0.1,1,10,100,1000   (none: linked from OUT/fgm)
set -euo pipefail

OUT=${1:-/work/sweeps/epsilon_grid}
shift || true
EXTRA=("$@")
DATA=${ADVNLP_DATA:-/work/shared/data}
SEEDS=0,1,2
FGM_GRID=0.03,0.1,0.3,1,3
GP_GRID=0.1,1,10,100,1000

COMMON=(  # exactly experiments/sst2_minilm/run.sh's COMMON
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

# Every point is trained here, none included: until 2026-12-01 the grid was to link sst2_minilm's
# none, FGM 0.3 relative and GP 1 runs, which were lost with their machine (PLAN.md, "Amendment").
compare fgm --methods none,fgm --epsilon $FGM_GRID --epsilon-unit relative --seeds $SEEDS
# gp pairs with fgm's none runs (same regime and seeds): its own runs first (compare makes the
# folder), then the links, then the folder's summary with none (as ../sst2_minilm/run.sh does)
compare gp --methods gp --epsilon $GP_GRID --seeds $SEEDS
if wanted gp; then
  for seed in ${SEEDS//,/ }; do
    test -f "$OUT/fgm/runs/none-seed$seed/results.json" || { echo "run fgm first (its none seed $seed)"; exit 1; }
    ln -sfn "$OUT/fgm/runs/none-seed$seed" "$OUT/gp/runs/none-seed$seed"
  done
fi
compare gp --methods none,gp --epsilon $GP_GRID --seeds $SEEDS
echo "== $(date -u +%FT%TZ) epsilon_grid done"
