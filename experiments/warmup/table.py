"""The warm-up table: every run of the three comparisons (ws0, ws63, ws125), one row per
(epsilon, --start-step), read from each run's results.json; writes summary.md, summary.json
and warmup.png into the folder given (default: experiments/warmup).

    python experiments/warmup/table.py [OUT_DIR] [WORK_DIR]
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from advnlp.experiment.results import RunResult

STEPS_PER_EPOCH = 125  # 4,000 reviews / batch 32


def runs(work: Path) -> list[dict]:
    found = []
    for folder in sorted(work.glob("ws*/runs/*/results.json")):
        result = RunResult.load(folder)
        config = result.config
        if config.method == "none" and not folder.parts[-4].endswith("ws0"):
            continue  # the copies of ws0's none runs
        found.append(
            {
                "method": config.method,
                "epsilon": config.method_kwargs.get("epsilon"),
                "start_step": config.start_step if config.method != "none" else None,
                "seed": config.seed,
                "dev_accuracy": result.dev.accuracy,
                "collapsed": result.collapsed,
                "dev_majority_share": result.dev_majority_share,
                "path": str(folder.parent),
            }
        )
    return found


def mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def groups(rows: list[dict]) -> list[dict]:
    none = {r["seed"]: r["dev_accuracy"] for r in rows if r["method"] == "none"}
    keys = sorted(
        {(r["method"], r["epsilon"], r["start_step"]) for r in rows},
        key=lambda k: (k[0] != "none", -(k[1] or 0), k[2] or 0),
    )
    out = []
    for method, epsilon, start in keys:
        mine = [
            r
            for r in rows
            if (r["method"], r["epsilon"], r["start_step"]) == (method, epsilon, start)
        ]
        mine.sort(key=lambda r: r["seed"])
        accuracy = [100 * r["dev_accuracy"] for r in mine]
        paired = [100 * (r["dev_accuracy"] - none[r["seed"]]) for r in mine if r["seed"] in none]
        group = {
            "method": method,
            "epsilon": epsilon,
            "start_step": start,
            "seeds": [r["seed"] for r in mine],
            "dev_accuracy_per_seed": accuracy,
            "dev_accuracy_mean": mean_std(accuracy)[0],
            "dev_accuracy_std": mean_std(accuracy)[1],
            "collapsed": sum(r["collapsed"] for r in mine),
            "vs_none_points_mean": mean_std(paired)[0] if paired and method != "none" else None,
            "vs_none_points_std": mean_std(paired)[1] if paired and method != "none" else None,
        }
        out.append(group)
    return out


def fmt(mean: float | None, std: float | None, sign: bool = False) -> str:
    if mean is None:
        return "—"
    text = f"{mean:+.2f}" if sign else f"{mean:.2f}"
    return text if std is None else f"{text} ± {std:.2f}"


def markdown(table: list[dict]) -> str:
    lines = [
        "Dev accuracy in %, mean ± sample std over seeds; Δ: the run minus `none` on the same "
        "seed, in points (mean ± std of the paired differences); collapsed: runs whose best "
        "model predicts one class for >= 90% of dev. Warm-up in optimizer steps "
        f"({STEPS_PER_EPOCH} = one epoch).",
        "",
        "| method | ε | warm-up (steps) | seeds | dev acc % | per seed | Δ vs none (pts) | "
        "collapsed |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for g in table:
        epsilon = "—" if g["epsilon"] is None else f"{g['epsilon']:g}"
        start = "—" if g["start_step"] is None else str(g["start_step"])
        per_seed = ", ".join(f"{a:.1f}" for a in g["dev_accuracy_per_seed"])
        lines.append(
            f"| {g['method']} | {epsilon} | {start} | {', '.join(map(str, g['seeds']))} | "
            f"{fmt(g['dev_accuracy_mean'], g['dev_accuracy_std'])} | {per_seed} | "
            f"{fmt(g['vs_none_points_mean'], g['vs_none_points_std'], sign=True)} | "
            f"{g['collapsed']}/{len(g['seeds'])} |"
        )
    return "\n".join(lines) + "\n"


def plot(table: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    none = next((g for g in table if g["method"] == "none"), None)
    if none is not None:
        ax.axhline(none["dev_accuracy_mean"], color="gray", linestyle="--", label="none")
    for epsilon in sorted({g["epsilon"] for g in table if g["method"] == "fgm"}):
        mine = sorted(
            (g for g in table if g["method"] == "fgm" and g["epsilon"] == epsilon),
            key=lambda g: g["start_step"],
        )
        x = [g["start_step"] for g in mine]
        ax.errorbar(
            x,
            [g["dev_accuracy_mean"] for g in mine],
            yerr=[g["dev_accuracy_std"] or 0 for g in mine],
            marker="o",
            capsize=3,
            label=f"fgm ε={epsilon:g}",
        )
        for g in mine:
            ax.scatter(
                [g["start_step"]] * len(g["dev_accuracy_per_seed"]),
                g["dev_accuracy_per_seed"],
                s=10,
                color="black",
                alpha=0.4,
            )
    ax.set_xlabel("warm-up (optimizer steps; 125 = one epoch)")
    ax.set_ylabel("dev accuracy %")
    ax.set_title("scratch-tiny, demo data: FGM with a warm-up (3 seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "experiments/warmup")
    work = Path(sys.argv[2] if len(sys.argv) > 2 else "/work/runs_warmup")
    rows = runs(work)
    table = groups(rows)
    (out / "summary.md").write_text(markdown(table), encoding="utf-8")
    summary = {"groups": table, "runs": rows}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    plot(table, out / "warmup.png")


if __name__ == "__main__":
    main()
