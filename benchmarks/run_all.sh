#!/usr/bin/env bash
# Run every benchmark, one after another, writing benchmarks/results/<name>.json, then render
# the README's tables from them. Run from the repository root; NOTE (optional) says what the
# JSON should record about the machine, e.g. NOTE="shared with other jobs". Needs
# ../shared/data (TNEWS, SST-2; or ADVNLP_SHARED_DATA=DIR) for cli_overhead and attack_speed.
#   bash benchmarks/run_all.sh                    # everything
#   bash benchmarks/run_all.sh step_cost          # some of them
set -euo pipefail
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
note=(${NOTE:+--note "$NOTE"})
out=benchmarks/results
declare -A args=(
  [step_cost]="--rounds 12"
  [cli_overhead]="--rounds 2"
  [ddp_cost]="--steps 6"
  [determinism_cost]="--rounds 8"
  [attack_speed]="--threads 1"
)
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(step_cost cli_overhead ddp_cost determinism_cost attack_speed)
for name in "${names[@]}"; do
  # shellcheck disable=SC2086
  nice -n 5 python "benchmarks/$name.py" ${args[$name]} --output "$out/$name.json" "${note[@]}"
done
python scripts/update_readme.py
