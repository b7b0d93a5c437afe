#!/usr/bin/env bash
# What the ~1x-cost FGM (fgm_free) keeps of FGM's gain: none / fgm / fgm_free at the demo's
# FGM epsilon (0.5, absolute: e5's embedding rows have RMS norm ~1.6, the source's regime),
# 3 seeds, in the demo's regime (e5-small, first 2 layers, 800 training reviews, 1,000 dev,
# 2 epochs, max length 48, lr 5e-4: `advnlp demo --help`), and every run's best model attacked
# with embedding PGD at relative radius 0.1 on the same 200 dev reviews (where FGM separated
# from `none` in experiments/robustness_demo/). Settings fixed before any result was seen.
# Run from the repository root; WORK (default runs/fgm_free) holds the runs, outside git.
# Resumable: finished runs and saved attacks are skipped. At the end experiments/fgm_free/kept.py
# writes kept.md (what fgm_free keeps of FGM's gain) from the copied summary.json.
set -euo pipefail
export OMP_NUM_THREADS=1
work=${WORK:-runs/fgm_free}
python -c "from pathlib import Path; from advnlp.data.demo import write_demo_split; \
write_demo_split(Path('$work-data'), dev_size=1000)"
nice -n 10 advnlp compare \
  --train "$work"-data/train.jsonl --dev "$work"-data/dev.jsonl \
  --max-train-examples 800 --model e5-small --layers 2 --epochs 2 --max-length 48 --lr 5e-4 \
  --methods none,fgm,fgm_free --epsilon 0.5 --seeds 0,1,2 \
  --attack embedding --attack-examples 200 --attack-radius 0.1 \
  --output "$work"
cp "$work"/compare.json "$work"/summary.json "$work"/summary.md "$work"/*.png \
  experiments/fgm_free/
python experiments/fgm_free/kept.py
