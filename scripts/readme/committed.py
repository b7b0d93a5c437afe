"""A task's committed sweeps: the compare folders its PLAN.md plans, the summaries committed for
them, and the checks that they form one experiment (one regime, one set of none runs)."""

from __future__ import annotations

import json
from pathlib import Path

from advnlp.experiment.report import BASELINE
from advnlp.robustness.compare import result_label

from . import common

# compare.json's shared settings that make a regime: the folders of one task must agree on them
# (their none runs are linked from one folder, so a pair is only a pair if they do)
REGIME = (
    "train",
    "dev",
    "model",
    "layers",
    "max_train_examples",
    "max_dev_examples",
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "max_length",
    "lr",
    "warmup_ratio",
    "weight_decay",
    "precision",
)


def planned_folders(plan: Path) -> dict[str, list[int] | None]:
    """The compare folders of PLAN.md's "compare folder" table, in its order, with their planned
    seeds where the table has a seeds column ("0-4"), else None."""
    lines = plan.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| compare folder |")), None)
    if start is None:
        raise SystemExit(
            f"{plan.relative_to(common.ROOT)}: no table with a 'compare folder' column"
        )
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    planned: dict[str, list[int] | None] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        seeds = cells[header.index("seeds")] if "seeds" in header else None
        planned[cells[0].strip("`")] = None if seeds is None else _seed_list(seeds)
    return planned


def _seed_list(text: str) -> list[int]:
    """ "0-4" -> [0, 1, 2, 3, 4]; "0, 1, 2" -> [0, 1, 2]."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def task_summaries(folder: str) -> tuple[dict[str, list[int] | None], dict[str, tuple[dict, dict]]]:
    """The task's planned compare folders, and those with a committed summary: name -> (summary,
    compare.json's settings). The regime must be the same in every one of them."""
    path = common.ROOT / folder
    planned = planned_folders(path / "PLAN.md")
    unplanned = [p.parent.name for p in path.glob("*/summary.json") if p.parent.name not in planned]
    if unplanned:
        raise SystemExit(
            f"{folder}: {', '.join(sorted(unplanned))} has a summary that PLAN.md's table does "
            "not plan: add it there (the Results section shows the planned folders)"
        )
    found = {}
    for name in planned:
        if (path / name / "summary.json").exists():
            summary = json.loads((path / name / "summary.json").read_text(encoding="utf-8"))
            settings = json.loads((path / name / "compare.json").read_text(encoding="utf-8"))
            found[name] = (summary, settings)
    _check_regime(folder, found)
    return planned, found


def _check_regime(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """Every compare folder of a task has the first one's REGIME settings (its compare.json)."""
    if not found:
        return
    first, (_, reference) = next(iter(found.items()))
    for name, (_, settings) in found.items():
        for key in REGIME:
            if settings["shared"].get(key) != reference["shared"].get(key):
                raise SystemExit(
                    f"{folder}: {name}/compare.json has {key}={settings['shared'].get(key)!r}, "
                    f"{first}/compare.json {reference['shared'].get(key)!r}: not one regime"
                )


def baseline_runs(summary: dict, seeds: list[int]) -> tuple[str, ...]:
    """Which runs a summary's none group of ``seeds`` is: their paths (a linked run keeps the
    path of the folder that trained it)."""
    runs = summary.get("runs", [])
    return tuple(sorted(r["path"] for r in runs if r["method"] == BASELINE and r["seed"] in seeds))


def check_baselines(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """Every none run a summary shows was trained in one of the task's compare folders (linked
    from another one, or its own), and summaries that show the same none runs show the same
    numbers for them (clean and under each attack). Fails loudly, naming the folders."""
    groups: dict[tuple, tuple[str, dict]] = {}
    for name, (summary, _) in found.items():
        for run in summary.get("runs", []):
            if run["method"] == BASELINE and Path(run["path"]).parent.parent.name not in found:
                raise SystemExit(
                    f"{folder}: {name}'s {BASELINE} seed {run['seed']} is {run['path']}, a run of "
                    "none of the task's compare folders"
                )
        robustness = (summary.get("robustness") or {}).get("results") or []
        labels = [(None, summary["groups"])] + [(result_label(r), r["groups"]) for r in robustness]
        for label, members in labels:
            for group in members:
                if group["method"] != BASELINE:
                    continue
                key = (label, baseline_runs(summary, group["seeds"]))
                seen = groups.setdefault(key, (name, group))
                if seen[1] != group:
                    where = "clean" if label is None else f"under {label}"
                    raise SystemExit(
                        f"{folder}: {BASELINE} on seeds {group['seeds']} ({where}) differs "
                        f"between {seen[0]} and {name}: the same runs, other numbers"
                    )


def shown_groups(found: dict[str, tuple[dict, dict]]) -> list[tuple[str, dict, dict]]:
    """(compare folder, group, settings) of every group to show, in plan order; a none group
    once per set of none runs (``check_baselines`` made sure the copies agree): a folder that
    trained its own none runs shows them as its own row."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for group in summary["groups"]:
            if group["method"] == BASELINE:
                runs = baseline_runs(summary, group["seeds"])
                if runs in shown:
                    continue
                shown.add(runs)
            rows.append((name, group, settings))
    return rows
