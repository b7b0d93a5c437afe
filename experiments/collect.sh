#!/usr/bin/env bash
# Copy a sweep's reports (never its runs, models or checkpoints) into experiments/NAME/:
#
#   bash experiments/collect.sh NAME [OUT]      # NAME: tnews_e5, sst2_minilm or epsilon_grid
#
# OUT defaults to /work/sweeps/NAME. For every compare folder OUT/<sub>/ that has a summary
# (written when all of its planned runs are finished), copies summary.json, summary.md,
# compare.json and the PNG plots to experiments/NAME/<sub>/. Commit them afterwards.
# A folder whose compare.json is newer than its summary.json is skipped: a compare call on it
# has started (it writes compare.json first) and not finished, so the two would not match. So is
# a folder whose summary lacks runs that the committed summary has.
set -euo pipefail

NAME=${1:?usage: collect.sh NAME [OUT]}
OUT=${2:-/work/sweeps/$NAME}
HERE=$(cd "$(dirname "$0")" && pwd)/$NAME
test -d "$HERE" || { echo "collect.sh: no folder experiments/$NAME" >&2; exit 2; }

found=0
for summary in "$OUT"/*/summary.json; do
  [ -f "$summary" ] || continue
  folder=$(dirname "$summary")
  if [ "$folder/compare.json" -nt "$summary" ]; then
    echo "skipped $folder: a compare call on it is running or was stopped (compare.json is newer than summary.json)"
    continue
  fi
  target="$HERE/$(basename "$folder")"
  # a baseline made again on a new machine (run.sh's link_baseline) leaves a summary of those
  # runs alone: it must not replace the committed summary of the whole folder
  lost=$(python3 -c 'import json, sys
ids = lambda path: {r["id"] for r in json.load(open(path))["runs"]}
print(" ".join(sorted(ids(sys.argv[2]) - ids(sys.argv[1]))))' "$summary" "$target/summary.json" 2>/dev/null || true)
  if [ -n "$lost" ]; then
    echo "skipped $folder: its summary lacks runs of the committed one ($lost)"
    continue
  fi
  mkdir -p "$target"
  cp "$folder"/summary.json "$folder"/summary.md "$folder"/compare.json "$target"/
  cp "$folder"/*.png "$target"/ 2>/dev/null || true
  echo "copied $folder -> $target"
  found=$((found + 1))
done
echo "$found summaries copied from $OUT"
