#!/usr/bin/env bash
# Usage: bash experiments/tnews_e5/train_step_check.sh [WORKDIR]
# Per-step CPU cost of a real `advnlp train` run (Trainer overhead included): two runs that differ
# only in training steps (50 vs 150); (user+sys of B - of A) / 100 = CPU s per step.
set -u
. /work/main/.venv/bin/activate
export PYTHONPATH=/work/main/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "${1:-.}"
for n in 1600 4800; do
  rm -rf out$n
  /usr/bin/time -v advnlp train --train /work/shared/data/tnews/train.json --dev /work/shared/data/tnews/dev.json \
    --max-train-examples $n --max-dev-examples 640 --model e5-small --layers 6 --epochs 1 \
    --batch-size 32 --max-length 64 --lr 2e-5 --method none --seed 0 --output out$n > log$n.txt 2> time$n.txt
done
