#!/usr/bin/env bash
# Does a warm-up help FGM where it hurts most? scratch-tiny on the demo data (the former demo's
# settings, as experiments/relative_epsilon/ and experiments/robustness_demo/: 4,000 training
# reviews, 1,000 dev, 3 epochs, max length 64, batch 32, so 125 optimizer steps an epoch),
# token-scope FGM at absolute epsilon 0.3 (collapses to one class without a warm-up) and 0.1,
# with no warm-up, half an epoch (--start-step 63) and one epoch (--start-step 125), seeds 0-2.
# One comparison folder per warm-up (--start-step is a run setting shared by the whole
# folder); they train side by side. `none` trains once (in ws0): its step does not depend on
# --start-step (the baseline takes none), and its finished runs are copied into the other two
# folders so that each summary pairs FGM with the same `none` runs.
# Run from the repository root: bash experiments/warmup/run.sh [WORK_DIR]. Resumable.
set -euo pipefail
export OMP_NUM_THREADS=1
work=${1:-/work/runs_warmup}
here=experiments/warmup
data=$work/data
python -c "from pathlib import Path; from advnlp.data.demo import write_demo_split; \
write_demo_split(Path('$data'), dev_size=1000)"
sizes=(--train "$data/train.jsonl" --dev "$data/dev.jsonl" --max-train-examples 4000
  --model scratch-tiny --epochs 3 --max-length 64 --seeds 0,1,2)
# ws0 trains epsilon 0.1 before 0.3 (the collapse at 0.3 is known: experiments/relative_epsilon)
nice -n 10 advnlp compare "${sizes[@]}" --epsilon 0.1,0.3 --methods none,fgm --start-step 0 \
  --output "$work/ws0" >> "$work/ws0.log" 2>&1 &
for steps in 125 63; do
  nice -n 10 advnlp compare "${sizes[@]}" --epsilon 0.3,0.1 --methods fgm --start-step "$steps" \
    --output "$work/ws$steps" >> "$work/ws$steps.log" 2>&1 &
done
wait
for steps in 125 63; do
  for seed in 0 1 2; do
    [ -d "$work/ws$steps/runs/none-seed$seed" ] ||
      cp -r "$work/ws0/runs/none-seed$seed" "$work/ws$steps/runs/"
  done
  # every run is finished: this only writes the summary (paired with the copied none runs)
  nice -n 10 advnlp compare "${sizes[@]}" --epsilon 0.3,0.1 --methods none,fgm \
    --start-step "$steps" --output "$work/ws$steps" >> "$work/ws$steps.log" 2>&1
done
for steps in 0 63 125; do
  mkdir -p "$here/ws$steps"
  cp "$work/ws$steps"/{compare.json,summary.json,summary.md,*.png} "$here/ws$steps/"
done
python "$here/table.py" "$here" "$work"  # summary.md, summary.json, warmup.png from all runs
