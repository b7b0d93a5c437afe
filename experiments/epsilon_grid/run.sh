#!/usr/bin/env bash
# Epsilon grid for FGM and the gradient penalty on SST-2 / all-MiniLM-L6-v2, 3 seeds, in the
# regime of experiments/sst2_minilm (same flags, so its runs are reused: see PLAN.md).
#
#   bash experiments/epsilon_grid/run.sh [OUT] [SST2_OUT] [extra compare flags]
#
# OUT defaults to /work/sweeps/epsilon_grid, SST2_OUT (the finished sst2_minilm sweep whose
# runs are linked in) to sst2_minilm beside OUT. Resumable like every compare.
#   OUT/fgm   FGM, relative unit, eps 0.03,0.1,0.3,1,3   (0.3 and none: linked from SST2_OUT)
#   OUT/gp    gradient penalty, eps 0.1,1,10,100,1000   (1 and none: linked from SST2_OUT)
set -euo pipefail

OUT=${1:-/work/sweeps/epsilon_grid}
SST2_OUT=${2:-$(dirname "$OUT")/sst2_minilm}
shift 2 || shift $# || true
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

# A machine that lacks one of those SST2_OUT runs (a sweep folder does not outlive its machine)
# trains it again in its place, with FLAGS and one thread as sst2_minilm did (runs[].environment
# in its summaries), so that the grid pairs with the very runs of sst2_minilm's table.
link() {  # link FOLDER SOURCE_FOLDER RUN_PREFIX FLAGS...: reuse SST2_OUT's runs for every seed
  wanted "$1" || return 0
  local folder=$1 source_folder=$2 prefix=$3
  shift 3
  mkdir -p "$OUT/$folder/runs"
  for seed in ${SEEDS//,/ }; do
    local source="$SST2_OUT/$source_folder/runs/$prefix-seed$seed"
    if ! test -f "$source/results.json"; then
      echo "== $(date -u +%FT%TZ) $source is not on this machine: trained again with 1 thread"
      OMP_NUM_THREADS=1 advnlp compare "${COMMON[@]}" "$@" --seeds "$seed" "${ATTACK[@]}" \
        --output "$SST2_OUT/$source_folder" "${EXTRA[@]}"
    fi
    ln -sfn "$source" "$OUT/$folder/runs/$prefix-seed$seed"
  done
}

# The first call of each folder trains one new epsilon and creates the folder (compare wants
# an empty or compare folder); the links then let the full call skip the runs already made.
compare fgm --methods fgm --epsilon 0.03 --epsilon-unit relative --seeds $SEEDS
link fgm fgm_abs none --methods none
link fgm fgm_rel fgm-eps0.3 --methods fgm --epsilon 0.3 --epsilon-unit relative
compare fgm --methods none,fgm --epsilon $FGM_GRID --epsilon-unit relative --seeds $SEEDS
compare gp --methods gp --epsilon 0.1 --seeds $SEEDS
link gp fgm_abs none --methods none
link gp gp gp-eps1 --methods gp --epsilon 1
compare gp --methods none,gp --epsilon $GP_GRID --seeds $SEEDS
echo "== $(date -u +%FT%TZ) epsilon_grid done"
