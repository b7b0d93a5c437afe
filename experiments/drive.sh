#!/usr/bin/env bash
# The driver of the background sweeps (/work/sweeps/drive.sh is a copy of this file; it runs
# from there). Runs the given sweeps of issue 14 (default: all three) one after the other with
# main's code; rerun to continue (compare skips finished runs). Start it detached, e.g. as two
# single-thread streams side by side on a 2-core machine (two 1-thread runs get more done than
# one 2-thread run):
#   setsid nohup nice -n 19 env OMP_NUM_THREADS=1 bash /work/sweeps/drive.sh tnews_e5 >> /work/sweeps/drive-a.log 2>&1 &
#   setsid nohup nice -n 19 env OMP_NUM_THREADS=1 bash /work/sweeps/drive.sh sst2_minilm epsilon_grid >> /work/sweeps/drive-b.log 2>&1 &
# FOLDERS (see run.sh) limits a sweep to some of its compare folders, e.g. the epsilon grid as
# two streams, one per compare folder (gp links fgm's none runs once its own runs are done):
#   FOLDERS=fgm setsid nohup nice -n 19 env OMP_NUM_THREADS=1 bash /work/sweeps/drive.sh epsilon_grid >> /work/sweeps/drive-a.log 2>&1 &
#   FOLDERS=gp setsid nohup nice -n 19 env OMP_NUM_THREADS=1 bash /work/sweeps/drive.sh epsilon_grid >> /work/sweeps/drive-b.log 2>&1 &
# On a new machine (the sweep folders do not outlive one) the kept runs come back from git first
# (keep_runs.py restore, below), and compare skips them. As of 2026-12-02 13:38 UTC all three
# sweeps are finished and their summaries committed. Runs are kept only for the folders finished
# after keep_runs.py existed (epsilon_grid, and pgd_freelb of tnews_e5 and sst2_minilm); a rerun
# of the others trains them again, and collect.sh will not let a partial rerun's summary
# replace a committed one.
set -uo pipefail
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(tnews_e5 sst2_minilm epsilon_grid)
# One driver per sweep (and FOLDERS) at a time: a lock each. Two drivers of one sweep with other
# FOLDERS may run side by side (compare's own folder lock keeps them apart).
TAG=${FOLDERS:+.${FOLDERS// /.}}  # names this driver's lock and log
for name in "${NAMES[@]}"; do
  lock=/work/sweeps/$name$TAG.lock
  exec {fd}> "$lock"
  flock -n "$fd" || { echo "another drive.sh is running $name (it holds $lock)"; exit 1; }
done
# nice alone does not yield the CPU here: with the kernel's autogroups (sched_autogroup_enabled),
# setsid puts the sweep in a group of its own that gets a fair share against the interactive
# session whatever its nice; niceness of the group itself does (beside two sweeps a test run got
# a third of a core, and 1.2 cores once their group had niceness 19).
echo 19 2>/dev/null > /proc/self/autogroup || true
. /work/main/.venv/bin/activate
export PYTHONPATH=/work/main/src
# OpenMP threads that sleep instead of spinning while they wait: on this shared 2-core machine
# the default (spinning) made a 2-thread step cost 4.5 CPU s and 14 s wall instead of 0.7 and
# 1.7 (experiments/tnews_e5/PLAN.md, "Threads under load").
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
SCRIPTS=${SCRIPTS:-/work/main/experiments}
echo "== $(date -u +%FT%TZ) drive.sh pid $$, main at $(git -C /work/main rev-parse --short HEAD), OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}, OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
# Run copies, so that editing or checking out the scripts while a sweep runs cannot change it.
# Each copy is a new file (written, then renamed): bash reads a script as it runs, so a copy
# written over the one another driver of the sweep is running would change that driver's run.
COPY=/work/sweeps/scripts
for name in "${NAMES[@]}"; do
  mkdir -p "$COPY/$name" && cp "$SCRIPTS/$name/run.sh" "$COPY/$name/run.sh.$$" &&
    mv "$COPY/$name/run.sh.$$" "$COPY/$name/run.sh"
done
echo "== scripts copied from $SCRIPTS (git $(git -C "$SCRIPTS" rev-parse --short HEAD)) to $COPY"
# Runs kept in git by an earlier machine (experiments/keep_runs.py) go back first, so that compare
# skips them; finished runs are kept every 5 minutes, and at the end, for the next machine.
keep() { for name in "${NAMES[@]}"; do python "$SCRIPTS/keep_runs.py" "$1" "$name" "/work/sweeps/$name"; done; }
keep restore
( while sleep 300; do keep save > /dev/null; done ) &
KEEPER=$!
# the keeper's sleep holds the locks too (inherited): stop it with the keeper, or a failed driver
# leaves its lock held for up to 5 minutes
trap 'pkill -P $KEEPER 2>/dev/null; kill $KEEPER 2>/dev/null; keep save' EXIT
for name in "${NAMES[@]}"; do
  log=/work/sweeps/$name$TAG.log
  echo "== $(date -u +%FT%TZ) start $name (log $log)"
  bash "$COPY/$name/run.sh" "/work/sweeps/$name" >> "$log" 2>&1
  rc=$?
  if [ "$rc" = 0 ]; then
    echo "== $(date -u +%FT%TZ) $name finished"
  else
    echo "== $(date -u +%FT%TZ) $name FAILED (exit $rc); see $log"
    exit 1
  fi
done
echo "== $(date -u +%FT%TZ) finished: ${NAMES[*]}"
