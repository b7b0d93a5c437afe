#!/usr/bin/env bash
# The relative-epsilon ablation on scratch-tiny (the model on which an absolute epsilon
# collapses): token-scope FGM with a relative epsilon (a fraction of the RMS norm of the
# batch's embedding rows) at 0.3 and 0.6, the relative equivalents of the e5 demo's absolute
# 0.5 and 1 (e5-small's rows have RMS norm 1.595: 0.5 / 1.595 = 0.31, 1 / 1.595 = 0.63).
# Same data, sizes and seeds as the scratch-tiny demo, whose absolute runs (epsilon 0.1, 0.3)
# are scratch-tiny-absolute/ (the demo committed at ea1a37e, made with
# `OMP_NUM_THREADS=1 advnlp demo` when the demo trained scratch-tiny).
# Run from the repository root: bash experiments/relative_epsilon/run.sh [WORK_DIR]
set -euo pipefail
export OMP_NUM_THREADS=1
work=${1:-/tmp/relative_epsilon}
here=experiments/relative_epsilon
nice -n 10 advnlp demo --model scratch-tiny --methods none,fgm --epsilon 0.3,0.6 \
  --epsilon-unit relative --output "$work/scratch-tiny-relative"
# The same relative epsilons on the demo's e5-small (FGM only: its none runs are the demo's,
# advnlp-demo/runs/none-seed*, same seeds, data and model; paired by seed in README.md)
nice -n 10 advnlp demo --methods fgm --epsilon 0.3,0.6 --epsilon-unit relative \
  --output "$work/e5-small-relative"
for name in scratch-tiny-relative e5-small-relative; do
  mkdir -p "$here/$name"
  cp "$work/$name"/{summary.json,summary.md,compare.json} "$here/$name/"
done
