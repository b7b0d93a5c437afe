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


# A group's fields that say how long its runs took and on what, not what they found: a none run
# trained again in its place (its machine lost it) has the same numbers and another step time
COST = ("median_step_time_s", "hardware")


def check_baselines(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """The none runs linked into several compare folders must be the same runs: per seed the
    same run folder, and where two folders have the same seeds, the same numbers (clean and
    under each attack; their cost aside). Fails loudly, naming the two folders, where they
    disagree."""
    runs: dict[int, tuple[str, dict]] = {}
    groups: dict[tuple, tuple[str, dict]] = {}
    for name, (summary, _) in found.items():
        for run in summary.get("runs", []):
            if run["method"] != BASELINE:
                continue
            record = {k: run.get(k) for k in ("path", "dev_majority_share")}
            seen = runs.setdefault(run["seed"], (name, record))
            if seen[1] != record:
                raise SystemExit(
                    f"{folder}: {BASELINE} seed {run['seed']} differs between {seen[0]} "
                    f"({seen[1]}) and {name} ({record}): not the same run"
                )
        robustness = (summary.get("robustness") or {}).get("results") or []
        labels = [(None, summary["groups"])] + [(result_label(r), r["groups"]) for r in robustness]
        for label, members in labels:
            for group in members:
                if group["method"] != BASELINE:
                    continue
                group = {k: v for k, v in group.items() if k not in COST}
                key = (label, tuple(group["seeds"]))
                seen = groups.setdefault(key, (name, group))
                if seen[1] != group:
                    where = "clean" if label is None else f"under {label}"
                    raise SystemExit(
                        f"{folder}: {BASELINE} on seeds {list(key[1])} ({where}) differs "
                        f"between {seen[0]} and {name}: not the same runs"
                    )


def shown_groups(found: dict[str, tuple[dict, dict]]) -> list[tuple[str, dict, dict]]:
    """(compare folder, group, settings) of every group to show, in plan order; a none group
    once per set of seeds (``check_baselines`` made sure the copies agree)."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for group in summary["groups"]:
            if group["method"] == BASELINE:
                if tuple(group["seeds"]) in shown:
                    continue
                shown.add(tuple(group["seeds"]))
            rows.append((name, group, settings))
    return rows
