"""CPU-hour estimate of the issue-14 sweeps, from the measured step times (PLAN.md's arithmetic).

    python experiments/budget.py

Reads experiments/tnews_e5/step_time.jsonl and experiments/sst2_minilm/step_time.jsonl (written
by experiments/tnews_e5/step_time.py) and prints, per sweep, the runs it trains (linked runs are
not counted twice), their training steps and the single-thread CPU seconds they should take:
steps x the method's mean CPU seconds per step, plus (epochs + 1) dev evaluations (one per
epoch, one more with the best model) at the measured CPU seconds per forward batch of 64.
Trainer overhead (data collation, checkpoints, logging) is not in the step times.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Each sweep: regime (as in its run.sh) and the runs it trains, as (method, runs).
SWEEPS = {
    "tnews_e5": {
        "times": "tnews_e5/step_time.jsonl",
        "layers": 6,
        "train": 12000,
        "dev": 5000,
        "epochs": 3,
        "runs": [("none", 5), ("fgm", 5), ("fgm", 5), ("gp", 5), ("pgd", 3), ("freelb", 3)],
    },
    "sst2_minilm": {
        "times": "sst2_minilm/step_time.jsonl",
        "layers": None,
        "train": 12000,
        "dev": 872,
        "epochs": 3,
        "runs": [("none", 3), ("fgm", 3), ("fgm", 3), ("gp", 3), ("pgd", 3), ("freelb", 3)],
    },
    "tnews_e5 full regime, for reference (12 layers, all train and dev)": {
        "times": "tnews_e5/step_time.jsonl",
        "layers": 12,
        "train": 53360,
        "dev": 10000,
        "epochs": 3,
        "runs": [("none", 5), ("fgm", 5), ("fgm", 5), ("gp", 5), ("pgd", 3), ("freelb", 3)],
        "reference": True,
    },
    "epsilon_grid": {  # the sst2_minilm regime; 4 new epsilons per method (one is linked)
        "times": "sst2_minilm/step_time.jsonl",
        "layers": None,
        "train": 12000,
        "dev": 872,
        "epochs": 3,
        "runs": [("fgm", 4 * 3), ("gp", 4 * 3)],
    },
}
BATCH, EVAL_BATCH = 32, 64


def say(line: str) -> None:
    """One line on stdout (the scripts' output is their result)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def load_times(path: Path) -> tuple[dict, dict]:
    """{(layers, method): cpu_s_mean} and {layers: eval CPU s per batch of 64}."""
    steps, evals = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "method" in row:
            steps[row["layers"], row["method"]] = row["cpu_s_mean"]
        elif "eval_cpu_s_per_64" in row:
            evals[row["layers"]] = row["eval_cpu_s_per_64"]
    return steps, evals


def estimate(sweep: dict) -> dict:
    steps, evals = load_times(HERE / sweep["times"])
    per_epoch = math.ceil(sweep["train"] / BATCH)
    run_steps = sweep["epochs"] * per_epoch
    layers = sweep["layers"]
    train_s = sum(n * run_steps * steps[layers, method] for method, n in sweep["runs"])
    runs = sum(n for _, n in sweep["runs"])
    eval_batches = (sweep["epochs"] + 1) * math.ceil(sweep["dev"] / EVAL_BATCH)
    eval_s = runs * eval_batches * evals[layers]
    return {
        "runs": runs,
        "steps_per_run": run_steps,
        "train_cpu_h": round(train_s / 3600, 2),
        "eval_cpu_h": round(eval_s / 3600, 2),
        "total_cpu_h": round((train_s + eval_s) / 3600, 2),
    }


def table(path: Path) -> str:
    """The step times of one file as a markdown table: CPU s per step (mean), x none's."""
    steps, evals = load_times(path)
    methods = ["none", "fgm", "gp", "pgd", "freelb"]
    lines = [
        "| layers | " + " | ".join(methods) + " | dev forward (batch 64) |",
        "|---|" + "---|" * (len(methods) + 1),
    ]
    for layers in dict.fromkeys(k for k, _ in steps):
        none = steps[layers, "none"]
        cells = [f"{steps[layers, m]:.2f} ({steps[layers, m] / none:.2f}x)" for m in methods]
        lines.append(f"| {layers or 'all'} | " + " | ".join(cells) + f" | {evals[layers]:.2f} |")
    return "\n".join(lines)


def main() -> None:
    for path in ("tnews_e5/step_time.jsonl", "sst2_minilm/step_time.jsonl"):
        say(f"{path}: single-thread CPU seconds per step (mean)\n{table(HERE / path)}\n")
    total = 0.0
    for name, sweep in SWEEPS.items():
        row = estimate(sweep)
        total += 0 if sweep.get("reference") else row["total_cpu_h"]
        say(json.dumps({"sweep": name, **row}))
    say(json.dumps({"all_sweeps_cpu_h": round(total, 2)}))


if __name__ == "__main__":
    main()
