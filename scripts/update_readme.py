"""Rewrite the README's generated sections from the committed experiment summaries.

A generated section sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
and is made from ``experiments/<folder>/summary.json`` (``advnlp compare``'s summary) and
``compare.json`` (its settings), never typed by hand. A new experiment plugs in with one entry
in SECTIONS and its two markers in the README. A benchmark's section (``generated:step_cost``,
...) is made from ``benchmarks/results/<name>.json``, which the benchmark writes with
``--output``, by its function in BENCHMARKS. The Results section (``generated:results``) is made
from the summaries of issue 14's sweeps, task by task (RESULTS), and lists what their PLAN.md
plans and is not committed yet. tests/test_readme_generated.py checks that the README is what
this script writes.

    python scripts/update_readme.py           # rewrite README.md
    python scripts/update_readme.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's advnlp, installed or not

from advnlp.experiment.report import BASELINE, _delta, _p, _percent  # noqa: E402

# section name in the README -> folder of the experiment it shows
SECTIONS = {
    "demo": "experiments/demo",
    "robustness_demo": "experiments/robustness_demo",
    "robustness_tnews": "experiments/robustness_tnews",
}


def setting_line(settings: dict) -> str:
    """One sentence with the comparison's settings, from its compare.json."""
    shared = settings["shared"]
    examples = shared["max_train_examples"]
    seeds = ", ".join(str(s) for s in settings["seeds"])
    model = f"`{shared['model']}`"
    if shared.get("layers") is not None:
        model += f" (first {shared['layers']} layers)"
    lr = "" if shared.get("lr") is None else f", lr {shared['lr']:g}"
    return (
        f"{model}, {'all' if examples is None else f'{examples:,}'} training "
        f"examples, {shared['epochs']} epochs, batch {shared['batch_size']}, max length "
        f"{shared['max_length']}{lr}, {shared['precision']}, seeds {seeds}; dev accuracy in % "
        "(mean ± sample std over seeds), Δ in points against the same seeds' "
        f"`{BASELINE}` runs, McNemar's b/c on the pooled dev predictions "
        f"(b: `{BASELINE}` right, method wrong)."
    )


def table(summary: dict) -> str:
    """The summary's groups as a markdown table: accuracy and the paired tests, no timings
    (they vary from machine to machine; summary.md has them)."""
    lines = [
        f"| method | ε | dev accuracy % | Δ vs {BASELINE} (points) | paired t p | McNemar b/c, p |",
        "|---|---|---|---|---|---|",
    ]
    for group in summary["groups"]:
        versus = group["vs_baseline"] or {}
        test = versus.get("mcnemar") or {}
        mcnemar = "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"
        cells = [
            group["method"],
            "—" if group["epsilon"] is None else f"{group['epsilon']:g}",
            _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
            _delta(group["vs_baseline"]),
            _p(versus.get("paired_t_p")),
            mcnemar,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def demo_table(summary: dict) -> str:
    """The demo's table: ``table``'s columns, then, when the demo attacked its runs, clean
    accuracy on the attacked sample and accuracy under each attack with its Δ to ``none``
    (McNemar's p on the examples pooled over seeds)."""
    robustness = (summary.get("robustness") or {}).get("results") or []
    if not robustness:
        return table(summary)
    from advnlp.robustness.compare import result_label

    lines = table(summary).split("\n")
    lines[0] += " clean on attacked % |" + "".join(
        f" under {result_label(r)} % | Δ (points), p |" for r in robustness
    )
    lines[1] += "---|" * (1 + 2 * len(robustness))
    by_key = [{(g["method"], g["epsilon"]): g for g in result["groups"]} for result in robustness]
    for row, group in enumerate(summary["groups"], start=2):
        key = (group["method"], group["epsilon"])
        found = [groups.get(key) for groups in by_key]
        first = next((g for g in found if g is not None), None)
        cells = [
            "—"
            if first is None
            else _percent(first["clean_accuracy_mean"], first["clean_accuracy_std"])
        ]
        for attacked in found:
            if attacked is None:
                cells += ["—", "—"]
                continue
            versus = attacked["vs_baseline"]
            p = None if versus is None else versus["mcnemar"]["p"]
            delta = _attack_delta(versus)
            cells += [
                _percent(
                    attacked["accuracy_under_attack_mean"], attacked["accuracy_under_attack_std"]
                ),
                delta if delta == "—" else f"{delta}, {_p(p)}",
            ]
        lines[row] += " " + " | ".join(cells) + " |"
    return "\n".join(lines)


def demo_section(stamp: str, path: Path, settings: dict, summary: dict) -> str:
    """The demo's section: its settings, the table with accuracy under attack beside clean
    accuracy, what the numbers say, and what the run cost (its timing.json)."""
    parts = [f"{stamp}{setting_line(settings)}"]
    robustness = summary.get("robustness")
    if robustness:
        n = sorted({g["n_examples"] for r in robustness["results"] for g in r["groups"]})
        parts.append(
            f"Every run's best model attacked on the same {', '.join(str(x) for x in n)} dev "
            "reviews: clean on attacked, the share of them it gets right; under, the share still "
            "right after the attack (mean ± sample std over seeds); Δ, points against the same "
            f"seeds' `{BASELINE}` runs, with McNemar's p on the examples pooled over seeds."
        )
    parts.append(demo_table(summary))
    if robustness:
        parts.append(attack_findings(summary))
    if (path / "timing.json").exists():
        timing = json.loads((path / "timing.json").read_text(encoding="utf-8"))
        load = timing["load_average_at_start"]
        parts.append(
            f"The run (`{path.relative_to(ROOT)}/timing.json`) took {timing['wall_s'] / 60:.1f} "
            f"minutes of wall time and {timing['cpu_s']:,.0f} s of CPU time (user + system, "
            f"{timing['torch_threads']} torch thread(s), on {timing['cpus']} cores"
            + ("" if load is None else f" with a load average of {load:g} at the start")
            + f"), of which {timing['attack_cpu_s']:,.0f} s attacking."
        )
    return "\n\n".join(parts) + "\n"


def attack_setting_line(settings: dict, summary: dict) -> str:
    """One sentence with the settings of a ``compare --attack`` run and what it measures."""
    robustness = summary["robustness"]
    n = sorted({g["n_examples"] for r in robustness["results"] for g in r["groups"]})
    dev = settings["shared"]["max_dev_examples"]
    return (
        f"{setting_line(settings).split('; dev accuracy')[0]}; dev set: "
        f"{'all of it' if dev is None else f'a fixed sample of {dev:,}'}; every run's best model "
        f"attacked on the same {', '.join(str(x) for x in n)} dev examples. Accuracy under "
        "attack: share of those examples the model still gets right after the attack (mean ± "
        "sample std over "
        "seeds; clean: before it); success: attacks that changed a right prediction / right "
        f"predictions; Δ: points against the same seeds' `{BASELINE}` runs, with the paired "
        f"t-test over seeds and McNemar's b/c on the pooled examples (b: `{BASELINE}` right "
        "under attack, method wrong)."
    )


def attack_table(summary: dict) -> str:
    """Accuracy under attack per attack setting and group, with the paired tests."""
    from advnlp.robustness.compare import result_label

    lines = [
        "| attack | method | ε | clean % | under attack % | success % | "
        f"Δ vs {BASELINE} (points) | paired t p | McNemar b/c, p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in summary["robustness"]["results"]:
        for group in result["groups"]:
            versus = group["vs_baseline"] or {}
            test = versus.get("mcnemar") or {}
            mcnemar = "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"
            cells = [
                result_label(result),
                group["method"],
                "—" if group["epsilon"] is None else f"{group['epsilon']:g}",
                _percent(group["clean_accuracy_mean"], group["clean_accuracy_std"]),
                _percent(group["accuracy_under_attack_mean"], group["accuracy_under_attack_std"]),
                _percent(group["success_rate_mean"], group["success_rate_std"]),
                _attack_delta(group["vs_baseline"]),
                _p(versus.get("paired_t_p")),
                mcnemar,
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def attack_findings(summary: dict) -> str:
    """What the numbers say, from the numbers: where a method changed accuracy under attack
    significantly (McNemar p < 0.05) up or down, where not, and its clean accuracy beside."""
    from advnlp.robustness.compare import result_label

    found: dict[str, list[str]] = {"raised": [], "lowered": [], "same": []}
    for result in summary["robustness"]["results"]:
        for group in result["groups"]:
            versus = group["vs_baseline"]
            if versus is None or versus["accuracy_under_attack_diff_points_mean"] is None:
                continue
            delta = versus["accuracy_under_attack_diff_points_mean"]
            p = versus["mcnemar"]["p"]
            text = (
                f"{_name(group)} under {result_label(result)} ({delta:+.2f} points, McNemar p "
                f"{_p(p)}, paired t p {_p(versus['paired_t_p'])})"
            )
            significant = p is not None and p < 0.05
            found["same" if not significant else "raised" if delta > 0 else "lowered"].append(text)
    clean = [
        f"{_name(g)} {_delta(g['vs_baseline'])} points (McNemar p "
        f"{_p((g['vs_baseline'].get('mcnemar') or {}).get('p'))})"
        for g in summary["groups"]
        if g["vs_baseline"]
    ]

    def listed(texts: list[str]) -> str:
        return "; ".join(texts) if texts else "no setting"

    return "\n\n".join(
        [
            "Adversarial training raised accuracy under attack significantly against "
            f"`{BASELINE}` (McNemar p < 0.05) for: {listed(found['raised'])}.",
            f"It lowered it significantly for: {listed(found['lowered'])}.",
            f"No significant difference (it did not help) for: {listed(found['same'])}.",
            f"Clean dev accuracy against `{BASELINE}` on the same seeds: {listed(clean)}.",
            "McNemar's test pools the examples of all seeds and so ignores the spread between "
            "seeds; the paired t-test over seeds is the stricter of the two.",
        ]
    )


def _name(group: dict) -> str:
    return group["method"] + ("" if group["epsilon"] is None else f" ε={group['epsilon']:g}")


def _attack_delta(versus: dict | None) -> str:
    if versus is None or versus["accuracy_under_attack_diff_points_mean"] is None:
        return "—"
    std = versus["accuracy_under_attack_diff_points_std"]
    mean = f"{round(versus['accuracy_under_attack_diff_points_mean'], 2) + 0.0:+.2f}"
    return mean + " ± " + ("—" if std is None else f"{std:.2f}")


def section(folder: str) -> str:
    """The generated text of one section, from ``folder``'s summary.json and compare.json (a
    note saying how to make them while they are not committed yet)."""
    path = ROOT / folder
    stamp = f"<!-- written by scripts/update_readme.py from {folder}; do not edit by hand -->\n"
    if not (path / "summary.json").exists():
        return (
            f"{stamp}No summary is committed in `{folder}/` yet: copy `summary.json`, "
            "`summary.md` and `compare.json` of a finished `advnlp compare` (or `advnlp demo`) "
            "there and run `python scripts/update_readme.py`.\n"
        )
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    settings = json.loads((path / "compare.json").read_text(encoding="utf-8"))
    if folder == SECTIONS["demo"]:  # advnlp demo: no run.sh, its own table and its timing
        return demo_section(stamp, path, settings, summary)
    if summary.get("robustness"):  # compare --attack: the attack table, with its command
        script = (path / "run.sh").read_text(encoding="utf-8")  # between `set` and the copy
        command = script.split("set -euo pipefail\n", 1)[1].split("\ncp ")[0]
        return (
            f"{stamp}{attack_setting_line(settings, summary)}\n\n{attack_table(summary)}\n\n"
            f"{attack_findings(summary)}\n\nCommand (`{folder}/run.sh`, from the repository "
            f"root):\n\n```bash\n{command.strip()}\n```\n"
        )
    return f"{stamp}{setting_line(settings)}\n\n{table(summary)}\n"


# Issue 14's sweeps, shown in the README's "Results" section (generated:results): experiment
# folder -> its task. The compare folders each one plans come from its PLAN.md (the table whose
# first column is "compare folder"), so a planned folder with no committed summary is listed as
# pending; `bash experiments/collect.sh NAME` copies a finished folder's summary in.
RESULTS = {
    "experiments/tnews_e5": "TNEWS",
    "experiments/sst2_minilm": "SST-2",
    "experiments/epsilon_grid": "SST-2, epsilon grid",
}
DEVELOPMENT_TASKS = "TNEWS, SST-2 and the demo's reviews"  # issue 14: say which, for the reader
P_LIMIT = 0.05  # the paired t-test's level in the verdict rule (``verdict``)
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


def verdict(delta: float | None, spread: float | None, p: float | None) -> str:
    """The rule behind the Results section's sentences: a method "beat none" when its mean Δ
    (points) is above none's std over the same seeds (points, the seed spread) and the paired
    t-test over those seeds gives p < P_LIMIT; it was worse when both hold the other way; any
    other case "did not help". Without a spread or a p (one seed) nothing can be said."""
    if delta is None or spread is None or p is None:
        return "cannot be judged (fewer than two paired seeds)"
    if p < P_LIMIT and abs(delta) > spread:
        return "beat none" if delta > 0 else "did not help: worse than none"
    return "did not help"


def planned_folders(plan: Path) -> dict[str, list[int] | None]:
    """The compare folders of PLAN.md's "compare folder" table, in its order, with their planned
    seeds where the table has a seeds column ("0-4"), else None."""
    lines = plan.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| compare folder |")), None)
    if start is None:
        raise SystemExit(f"{plan.relative_to(ROOT)}: no table with a 'compare folder' column")
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


def _committed(folder: str) -> tuple[dict[str, list[int] | None], dict[str, tuple[dict, dict]]]:
    """The task's planned compare folders, and those with a committed summary: name -> (summary,
    compare.json's settings). The regime must be the same in every one of them."""
    path = ROOT / folder
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


def _check_baselines(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """The none runs linked into several compare folders must be the same runs: per seed the
    same run folder, and where two folders have the same seeds, the same numbers (clean and
    under each attack). Fails loudly, naming the two folders, where they disagree."""
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
        labels = [(None, summary["groups"])] + [(_label(r), r["groups"]) for r in robustness]
        for label, members in labels:
            for group in members:
                if group["method"] != BASELINE:
                    continue
                key = (label, tuple(group["seeds"]))
                seen = groups.setdefault(key, (name, group))
                if seen[1] != group:
                    where = "clean" if label is None else f"under {label}"
                    raise SystemExit(
                        f"{folder}: {BASELINE} on seeds {list(key[1])} ({where}) differs "
                        f"between {seen[0]} and {name}: not the same runs"
                    )


def _label(result: dict) -> str:
    from advnlp.robustness.compare import result_label

    return result_label(result)


def _epsilon(group: dict, settings: dict) -> str:
    """ε with its unit for the methods that take ``epsilon_unit`` (from compare.json)."""
    from advnlp.registry import hyperparameters

    if group["epsilon"] is None:
        return "—"
    defaults = hyperparameters(group["method"])
    if "epsilon_unit" not in defaults:
        return f"{group['epsilon']:g}"
    chosen = settings["shared"].get("hyperparameters") or {}
    return f"{group['epsilon']:g} {chosen.get('epsilon_unit', defaults['epsilon_unit'])}"


def _mcnemar(versus: dict) -> str:
    """ "b/c, p" of a vs_baseline's McNemar test, "—" without one."""
    test = versus.get("mcnemar") or {}
    return "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


def _rows(found: dict[str, tuple[dict, dict]]) -> list[tuple[str, dict, dict]]:
    """(compare folder, group, settings) of every group to show, in plan order; a none group
    once per set of seeds (``_check_baselines`` made sure the copies agree)."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for group in summary["groups"]:
            if group["method"] == BASELINE:
                if tuple(group["seeds"]) in shown:
                    continue
                shown.add(tuple(group["seeds"]))
            rows.append((name, group, settings))
    return rows


def results_table(found: dict[str, tuple[dict, dict]]) -> str:
    """Clean dev accuracy per method, with its paired comparison to none."""
    rows = []
    for name, group, settings in _rows(found):
        versus = group["vs_baseline"] or {}
        rows.append(
            [
                group["method"],
                _epsilon(group, settings),
                _seeds(group["seeds"]),
                _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
                _delta(group["vs_baseline"]),
                _p(versus.get("paired_t_p")),
                _mcnemar(versus),
                _seeds(group.get("collapsed_seeds") or []) or "—",
                f"`{name}`",
            ]
        )
    headers = ["method", "ε", "seeds", "dev accuracy %", f"Δ vs {BASELINE} (points)"]
    headers += ["paired t p", "McNemar b/c, p", "collapsed seeds", "folder"]
    return markdown(headers, rows)


def results_attack_table(found: dict[str, tuple[dict, dict]]) -> str | None:
    """Accuracy under each attack setting per method, with its paired comparison to none; None
    when no summary of the task was attacked."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for result in (summary.get("robustness") or {}).get("results") or []:
            for group in result["groups"]:
                if group["method"] == BASELINE:
                    key = (_label(result), tuple(group["seeds"]))
                    if key in shown:
                        continue
                    shown.add(key)
                versus = group["vs_baseline"] or {}
                rows.append(
                    [
                        _label(result),
                        group["method"],
                        _epsilon(group, settings),
                        _seeds(group["seeds"]),
                        str(group["n_examples"]),
                        _percent(group["clean_accuracy_mean"], group["clean_accuracy_std"]),
                        _percent(
                            group["accuracy_under_attack_mean"], group["accuracy_under_attack_std"]
                        ),
                        _attack_delta(group["vs_baseline"]),
                        _p(versus.get("paired_t_p")),
                        _mcnemar(versus),
                        f"`{name}`",
                    ]
                )
    if not rows:
        return None
    headers = ["attack", "method", "ε", "seeds", "examples", "clean %", "under attack %"]
    headers += [f"Δ vs {BASELINE} (points)", "paired t p", "McNemar b/c, p", "folder"]
    return markdown(headers, rows)


def _baseline(groups: list[dict]) -> dict | None:
    return next((g for g in groups if g["method"] == BASELINE and g["epsilon"] is None), None)


def _spread(group: dict | None, key: str) -> float | None:
    """none's std over its seeds, in points (None without none or with one seed)."""
    return None if group is None or group[key] is None else 100 * group[key]


def _judged(outcome: str, shown: str, spread: float | None, p: float | None) -> str:
    spread_text = "—" if spread is None else f"{spread:.2f}"
    return f"{outcome} (Δ {shown} points, {BASELINE}'s std {spread_text}, paired t p {_p(p)})"


def results_findings(task: str, found: dict[str, tuple[dict, dict]]) -> list[str]:
    """One sentence per method of the task: ``verdict`` on clean accuracy and under each attack."""
    sentences = []
    for name, (summary, settings) in found.items():
        spread = _spread(_baseline(summary["groups"]), "dev_accuracy_std")
        attacks = (summary.get("robustness") or {}).get("results") or []
        for group in summary["groups"]:
            versus = group["vs_baseline"]
            if versus is None:
                continue
            delta, p = versus["dev_accuracy_diff_points_mean"], versus["paired_t_p"]
            parts = [
                f"clean accuracy: {_judged(verdict(delta, spread, p), _delta(versus), spread, p)}"
            ]
            for result in attacks:
                attacked = next(
                    (
                        g
                        for g in result["groups"]
                        if (g["method"], g["epsilon"]) == (group["method"], group["epsilon"])
                    ),
                    None,
                )
                if attacked is None or attacked["vs_baseline"] is None:
                    continue
                at = attacked["vs_baseline"]
                delta = at["accuracy_under_attack_diff_points_mean"]
                at_spread = _spread(_baseline(result["groups"]), "accuracy_under_attack_std")
                outcome = verdict(delta, at_spread, at["paired_t_p"])
                judged = _judged(outcome, _attack_delta(at), at_spread, at["paired_t_p"])
                parts.append(f"under {_label(result)}: {judged}")
            if not attacks:
                parts.append("under attack: not measured yet")
            epsilon = _epsilon(group, settings)
            label = group["method"] + ("" if epsilon == "—" else f" ε {epsilon}")
            sentences.append(
                f"- {task}, {label} (`{name}`, seeds {_seeds(group['seeds'])}): "
                + "; ".join(parts)
                + "."
            )
    return sentences


def regime_line(settings: dict) -> str:
    """The task's regime, from compare.json (the same in all its folders: ``_committed``)."""
    shared = settings["shared"]
    model = f"`{shared['model']}`"
    if shared.get("layers") is not None:
        model += f" (its first {shared['layers']} layers)"
    train, dev = shared["max_train_examples"], shared["max_dev_examples"]
    return (
        f"Regime (`compare.json`): {model}; "
        + ("all the training examples" if train is None else f"{train:,} training examples")
        + "; "
        + ("all of dev" if dev is None else f"{dev:,} dev examples")
        + " (a subset is a fixed random sample, the same for every run; dev serves both to "
        f"choose the best epoch and for the accuracy reported); {shared['epochs']} "
        f"epochs, batch {shared['batch_size']}, max length {shared['max_length']}, lr "
        f"{shared['lr']:g}, warm-up ratio {shared['warmup_ratio']:g}, weight decay "
        f"{shared['weight_decay']:g}, {shared['precision']}."
    )


def compute_line(folder: str, found: dict[str, tuple[dict, dict]], counted: set[str]) -> str:
    """Training compute from the summaries: each run not counted before (a linked run counts
    once, where it was trained) adds its measured ``train_s`` (the time of its optimizer
    steps) or, for runs written before advnlp recorded it, an estimate (the steps of a run x
    its group's median step time). ``counted`` carries the runs counted by earlier tasks."""
    shared = next(iter(found.values()))[1]["shared"]
    plan = f"[`{folder}/PLAN.md`]({folder}/PLAN.md)"
    batch = shared["batch_size"] * (shared.get("gradient_accumulation") or 1)
    steps = None
    if shared["max_train_examples"] is not None:
        steps = shared["epochs"] * math.ceil(shared["max_train_examples"] / batch)
    measured, estimated, untimed = [], [], 0
    machines = set()
    for name, (summary, _) in found.items():
        groups = {(g["method"], g["epsilon"]): g for g in summary["groups"]}
        for run in summary.get("runs", []):
            path = run.get("path") or f"{folder}/{name}/{run['id']}"
            if path in counted:
                continue
            counted.add(path)
            if run.get("environment"):
                env = run["environment"]
                machines.add(
                    f"{env.get('device')} ({env.get('cpu')}, {env.get('torch_threads')} threads)"
                )
            step = groups[(run["method"], run["epsilon"])]["median_step_time_s"]
            if run.get("train_s") is not None:
                measured.append(run["train_s"])
            elif steps is not None and step is not None:
                estimated.append(steps * step)
            else:
                untimed += 1
    parts = []
    if measured:
        parts.append(
            f"{len(measured)} runs measured: {sum(measured) / 3600:.1f} hours in their "
            "optimizer steps (wall time, on a machine shared with other work)"
        )
    if estimated:
        parts.append(
            f"{len(estimated)} runs from before advnlp recorded it, estimated as {steps:,} steps "
            f"x their group's median step time: {sum(estimated) / 3600:.1f} hours (low: the "
            "median discounts the stretches slowed by other jobs)"
        )
    if untimed:
        parts.append(f"{untimed} runs without a time")
    hardware = ", ".join(sorted(machines)) if machines else "not recorded in these summaries"
    return (
        f"Compute for this table (a run linked into several folders counted once; without the "
        f"dev evaluations and the attacks): {'; '.join(parts)}. Hardware: {hardware}; the "
        f"machine and its load are described in {plan}."
    )


def _command(folder: str) -> str:
    """The lines of PLAN.md's "Running" block that run the sweep and collect it."""
    text = (ROOT / folder / "PLAN.md").read_text(encoding="utf-8")
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    commands = [line for line in lines if line.startswith("bash experiments/")]
    if not commands:
        raise SystemExit(f"{folder}/PLAN.md: no `bash experiments/...` command")
    return "\n".join(commands)


def _plots(folder: str, found: dict[str, tuple[dict, dict]]) -> str:
    links = [
        f"[{name}/{png.stem}]({folder}/{name}/{png.name})"
        for name in found
        for png in sorted((ROOT / folder / name).glob("*.png"))
    ]
    return "Plots: " + (", ".join(links) if links else "none committed") + "."


def _pending(planned: dict[str, list[int] | None], found: dict[str, tuple[dict, dict]]) -> str:
    """The planned folders with no summary, and the planned seeds a committed summary lacks."""
    absent = [f"`{name}`" for name in planned if name not in found]
    lacking = []
    for name, seeds in planned.items():
        if name in found:
            have = set(found[name][1]["seeds"])
            missing = [seed for seed in seeds or [] if seed not in have]
            if missing:
                lacking.append(f"seeds {_seeds(missing)} of `{name}`")
    waiting = []
    if absent:
        waiting.append(f"{', '.join(absent)} (no summary committed yet)")
    waiting += lacking
    return "Pending (planned in PLAN.md): " + ("; ".join(waiting) if waiting else "nothing") + "."


def task_results(folder: str, task: str, counted: set[str]) -> str:
    """One task's part of the Results section."""
    planned, found = _committed(folder)
    head = f"### {task} (`{folder}`)"
    command = f"Command (from the repository root):\n\n```bash\n{_command(folder)}\n```"
    if not found:
        return "\n\n".join([head, _pending(planned, found), command])
    _check_baselines(folder, found)
    settings = next(iter(found.values()))[1]
    parts = [head, regime_line(settings), results_table(found)]
    attacked = results_attack_table(found)
    if attacked is not None:
        parts.append(attacked)
    parts += [
        "\n".join(results_findings(task, found)),
        compute_line(folder, found, counted),
        command,
        _plots(folder, found),
        _pending(planned, found),
    ]
    return "\n\n".join(parts)


def results_section() -> str:
    """The README's Results section: issue 14's sweeps, task by task, from the committed
    summaries under RESULTS' folders."""
    folders = ", ".join(RESULTS)
    stamp = f"<!-- written by scripts/update_readme.py from {folders}; do not edit by hand -->\n"
    intro = (
        "Issue 14's sweeps, each through `advnlp compare` (paired seeds and data order, the "
        "best-dev checkpoint), in a reduced regime fixed before any result (each folder's "
        "PLAN.md says why). Dev accuracy in %: mean ± sample std over seeds; Δ: points against "
        f"the same seeds' `{BASELINE}` runs (± std of the paired differences), with the paired "
        "t-test over seeds and McNemar's b/c and p on the dev predictions pooled over seeds "
        f"(b: `{BASELINE}` right, method wrong). `{BASELINE}` is trained once per task and "
        "linked into the other folders; it is shown once per set of seeds. ε: with its unit "
        "for the methods that take `epsilon_unit`. Under attack: each run's best model attacked "
        "on a fixed dev sample, accuracy = share still right after the attack."
    )
    rule = (
        f'The sentences are decided by a rule in code: a method "beat none" when its mean Δ is '
        f"above `{BASELINE}`'s std over the same seeds (the seed spread) and the paired t-test "
        f'gives p < {P_LIMIT:g}; it "did not help" otherwise (and "did not help: worse than '
        f'none" when both hold the other way). The same rule under each attack, with '
        f"`{BASELINE}`'s accuracy under that attack."
    )
    development = (
        f"Tasks used while developing advnlp: {DEVELOPMENT_TASKS}; these results come from "
        "development tasks, so weigh them accordingly."
    )
    counted: set[str] = set()
    tasks = [task_results(folder, task, counted) for folder, task in RESULTS.items()]
    return stamp + "\n\n".join([intro, rule, development, *tasks]) + "\n"


# Benchmarks: section name in the README -> the JSON its benchmark wrote (``--output``) and the
# function that renders it. The JSON holds the numbers and the run's context (benchmarks/record.py).
BENCHMARK_RESULTS = "benchmarks/results"


def benchmark_section(name: str) -> str:
    """The generated text of one benchmark's section, from its committed JSON."""
    path = f"{BENCHMARK_RESULTS}/{name}.json"
    stamp = f"<!-- written by scripts/update_readme.py from {path}; do not edit by hand -->\n"
    if not (ROOT / path).exists():
        return f"{stamp}No result is committed in `{path}` yet: run its benchmark with --output.\n"
    data = json.loads((ROOT / path).read_text(encoding="utf-8"))
    return f"{stamp}{benchmark_context(data)}\n\n{BENCHMARKS[name](data)}\n"


def benchmark_context(data: dict) -> str:
    """Where and how the numbers were measured, from the JSON's context."""
    c = data["context"]
    words = shlex.split(c["command"])  # the note is said below, not repeated in the command
    if "--note" in words:
        at = words.index("--note")
        words = words[:at] + words[at + 2 :]
    if c.get("nice"):
        words = ["nice", "-n", str(c["nice"]), *words]
    if c.get("omp_num_threads"):
        words = [f"OMP_NUM_THREADS={c['omp_num_threads']}", *words]
    note = c.get("note") or ""
    note = f" {note[:1].upper()}{note[1:].rstrip('.')}." if note else ""
    load = f"load average {c['load_average_start'][0]:.1f} at the start"
    if c.get("load_average_end"):
        load += f", {c['load_average_end'][0]:.1f} at the end"
    threads = f"{c['torch_threads']} torch thread{'s' if c['torch_threads'] != 1 else ''}"
    return (
        f"`{shlex.join(words)}` ({c['date']}; {c['cpu_count']} CPUs, {threads}, torch "
        f"{c['torch_version']}, {load}).{note}"
    )


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def step_cost(data: dict) -> str:
    from advnlp import method_names

    s = data["settings"]
    rows = {r["method"]: r for r in data["rows"]}

    table = markdown(
        ["method", "median step (s)", "x none", "peak (MiB)", "extra over none (MiB)"],
        [
            [
                r["method"] + _steps(r["hyperparameters"]),
                f"{r['median_step_s']:.3f}",
                f"{r['time_ratio']:.2f}",
                f"{r['peak_mib']:.1f}",
                f"{r['extra_mib']:.1f}",
            ]
            for r in data["rows"]
        ],
    )
    text = [
        "One training step (`adv.backward` + AdamW step) of a random BERT "
        f"({s['layers']} layers, hidden {s['hidden']}, vocabulary {s['vocab']}, batch "
        f"{s['batch']} x {s['length']}, Zipf-distributed token ids: {s['distinct_tokens']} "
        f"distinct tokens), {s['rounds']} rounds, each registered method at its defaults; memory "
        "counts each storage once, from allocation to free:",
        table,
    ]
    names = {"2 plain passes", "fgm", "fgm (matrix backup)", "fgm (token, adversarial_only)"}
    if names <= set(rows):
        two = rows["2 plain passes"]["peak_mib"]
        matrix = s["vocab"] * s["hidden"] * 4 / 2**20
        text.append(
            "Clean + adversarial accumulation keeps one set of parameter gradients through the "
            f'second pass (the "2 plain passes" row, {rows["2 plain passes"]["extra_mib"]:.1f} '
            "MiB over `none`); over that, token-scope FGM's perturbation costs "
            f"{rows['fgm']['peak_mib'] - two:.1f} MiB and the whole-matrix backup "
            f"{rows['fgm (matrix backup)']['peak_mib'] - two:.1f} MiB (one {s['vocab']} x "
            f"{s['hidden']} float32 matrix is {matrix:.1f} MiB). With `adversarial_only=True` FGM "
            f"peaks {rows['fgm (token, adversarial_only)']['extra_mib']:.1f} MiB above plain "
            "training."
        )
    missing = [name for name in method_names() if name not in rows]
    if missing:
        text.append(
            f"Registered since this run, not measured yet: {', '.join(missing)} (rerun the "
            "command above)."
        )
    return "\n\n".join(text)


def _steps(hyperparameters: dict | None) -> str:
    """The label suffix " (K steps)" for a method that takes ascent steps."""
    steps = (hyperparameters or {}).get("steps")
    return "" if steps is None else f" ({steps} step{'s' if steps != 1 else ''})"


def cli_overhead(data: dict) -> str:
    s = data["settings"]
    steps = sorted(set(s["steps_per_row"].values()))
    table = markdown(
        ["setting", "median step (s)", "steps/s", "vs plain Trainer"],
        [
            [
                r["setting"],
                f"{r['median_step_s']:.3f}",
                f"{1 / r['median_step_s']:.2f}",
                f"{r['vs_plain']:.3f}x",
            ]
            for r in data["rows"]
        ],
    )
    rounds = (
        "1 round: each row is one training run, one after another, so a change in the machine's "
        "load between them shows up as a difference"
        if s["rounds"] == 1
        else f"{s['rounds']} rounds, the rows alternating round after round"
    )
    return (
        f"{s['examples']:,} {s['data']} sentences, {s['model']}, batch {s['batch_size']}, max "
        f"length {s['max_length']}, {'/'.join(map(str, steps))} steps per row ({rounds}); median "
        f"time per optimizer step:\n\n{table}\n\n`advnlp train`'s overhead over a plain Trainer "
        f"script with the same batching: {100 * data['overhead']:+.1f}%; length bucketing with "
        f"dynamic padding is {data['bucketing_speedup']:.2f}x as fast as padding every batch to "
        "the max length."
    )


def ddp_cost(data: dict) -> str:
    s = data["settings"]
    one, two = data["processes"]["1"], data["processes"]["2"]
    threads = data["context"].get("processes_threads", {})
    rows = []
    for name in one:
        a, b = one[name], two[name]
        rows.append(
            [
                name,
                f"{a['median_step_s']:.3f}",
                f"{a['median_step_s'] / one['none']['median_step_s']:.2f}",
                f"{b['median_step_s']:.3f}",
                f"{b['median_step_s'] / two['none']['median_step_s']:.2f}",
                str(b["all_reduce"]),
                f"{b['all_reduce_bytes'] / 2**20:.1f}",
                str(b["all_gather"]),
                f"{b['all_gather_bytes'] / 2**10:.0f}",
            ]
        )
    headers = [
        "method",
        "1 proc (s)",
        "x none",
        "2 procs (s)",
        "x none",
        "all-reduces / step",
        "all-reduced MiB",
        "advnlp all_gathers",
        "gathered KiB",
    ]
    per_process = ", ".join(
        f"{n} with {k} process{'' if k == '1' else 'es'}" for k, n in threads.items()
    )
    return (
        f"{s['model']}, {s['batch_per_process']} per process, {s['backend']} on CPU, "
        f"{s['steps']} timed steps (torch threads per process: {per_process}; the processes "
        "share the cores, so time ratios, not speed-ups, are the point); communication counted "
        f"per step on rank 0:\n\n{markdown(headers, rows)}"
    )


def determinism_cost(data: dict) -> str:
    s = data["settings"]
    ratios = [r["ratio"] for r in data["rows"]]
    table = markdown(
        ["method", "default (s)", "deterministic (s)", "ratio"],
        [
            [
                r["method"] + _steps(r["hyperparameters"]),
                f"{r['default_s']:.3f}",
                f"{r['deterministic_s']:.3f}",
                f"{r['ratio']:.2f}",
            ]
            for r in data["rows"]
        ],
    )
    return (
        f"One step of {s['model']} (batch {s['batch']} x {s['length']}), PyTorch's default "
        f"kernels against the deterministic ones, interleaved round by round ({s['rounds']} "
        f"rounds, medians):\n\n{table}\n\nRatios from {min(ratios):.2f} to {max(ratios):.2f}: "
        "on a shared CPU a cost of a few percent cannot be told from noise."
    )


def attack_speed(data: dict) -> str:
    s = data["settings"]
    rows = []
    for r in data["rows"]:
        setting = f"r = {r['radius']:g}" if r["radius"] is not None else f"budget {r['budget']:g}"
        rows.append(
            [
                r["victim"],
                f"{r['attack']}, {setting}",
                str(r["n"]),
                f"{r['seconds']:.1f}",
                f"{r['examples_per_s']:.2f}",
                f"{r['queries_per_s']:.0f}",
                f"{100 * r['model_seconds'] / r['seconds']:.0f}",
                "—" if r["mean_queries"] is None else f"{r['mean_queries']:.1f}",
                f"{100 * r['clean_accuracy']:.1f} → {100 * r['accuracy_under_attack']:.1f}",
            ]
        )
    headers = [
        "victim",
        "attack",
        "examples",
        "wall (s)",
        "examples/s",
        "queries/s",
        "model %",
        "mean queries",
        "accuracy % (clean → attacked)",
    ]
    text = [markdown(headers, rows)]
    h = next((r for r in data["rows"] if r["attack"] == "homophone"), None)
    if h is not None and h["mean_queries"] is not None:
        attacked = h["n"] - h["skipped"]
        every = 1000 * h["mean_queries"] / h["queries_per_s"]  # were every text attacked
        trained = s.get("victim_train_examples")
        victim = (
            f"trained by the benchmark on {trained:,} TNEWS lines for {s['victim_epochs']} epochs"
            if trained
            else f"the run {s['victim_run']}"
        )
        text.append(
            f"The goal of issue 13, 1,000 short texts with `homophone` in 5 minutes on 2 cores "
            f"with scratch-small: {h['n']:,} TNEWS dev texts took {h['seconds']:.0f} s "
            f"({h['seconds'] / 60:.1f} min) on one torch thread. The victim ({victim}; dev "
            f"accuracy {100 * s['victim_dev_accuracy']:.1f}%) got {attacked} of them right; "
            f"the attack flipped {h['successful']} ({100 * h['success_rate']:.0f}% success) with "
            f"{h['mean_queries']:.1f} queries per attacked text, and the {h['skipped']} it got "
            f"wrong cost one query each. Were every text attacked, 1,000 would take about "
            f"{every:.0f} s ({every / 60:.1f} min) at the measured {h['queries_per_s']:.0f} "
            f"queries/s. The model's forward passes took "
            f"{100 * h['model_seconds'] / h['seconds']:.0f}% of the time."
        )
    return "\n\n".join(text)


def fsdp_cost(data: dict) -> str:
    s, sizes = data["settings"], data["sizes_mib"]
    rows = {row["method"]: row for row in data["rows"]}
    table = [
        [
            name,
            f"{row['median_step_s']:.1f}",
            f"{row['time_ratio']:.2f}",
            f"{max(row['peak_mib_per_rank']):.0f}",
            f"{max(row['extra_mib_per_rank']):.0f}",
            str(row["reduce_scatters"]),
            str(row["fsdp_all_gathers"]),
            f"{row['other_collectives']} ({row['largest_other_collective_kib']:.0f})",
        ]
        for name, row in rows.items()
    ]
    table += [[name, f"refused: {why}", *[""] * 6] for name, why in data["refused"].items()]
    headers = ["method", "step (s)", "x none", "peak MiB / rank", "extra MiB / rank"]
    headers += ["reduce-scatters", "FSDP all-gathers", "advnlp collectives (largest KiB)"]
    text = (
        f"FSDP2 (`fully_shard` on each layer and the root), 2 processes, gloo on CPU, a BERT "
        f"whose embedding dominates (vocab {s['vocab']:,}, hidden {s['hidden']}, {s['layers']} "
        f"layers: a {sizes['embedding_matrix']:.0f} MiB embedding matrix, "
        f"{max(sizes['sharded_gradient_set_per_rank']):.0f} MiB of sharded gradients per rank), "
        f"{s['batch_per_rank']} x {s['length']} tokens per rank "
        f"({max(sizes['batch_rows_per_rank']):.2f} MiB of the batch's rows at most), "
        f"{s['rounds']} timed steps. Peak: live tensor bytes during one step's `backward`, "
        "the larger of the two ranks; extra: over plain FSDP (`none`):\n\n"
        + markdown(headers, table)
    )
    fgm, plain = rows.get("fgm (token)"), rows.get("2 plain passes")
    if fgm and plain:
        text += (
            f"\n\nFGM (token) costs {max(fgm['extra_mib_per_rank']):.0f} MiB per rank over "
            f"plain FSDP, {max(fgm['extra_mib_per_rank']) - max(plain['extra_mib_per_rank']):.0f}"
            " MiB more than two plain passes (one sharded gradient set): never the gathered "
            f"matrix; its largest own collective moves {fgm['largest_other_collective_kib']:.0f} "
            "KiB."
        )
    deep = ROOT / BENCHMARK_RESULTS / "fsdp_cost_deep.json"
    if deep.exists():  # the same benchmark on a deep model with a small vocabulary
        d = json.loads(deep.read_text(encoding="utf-8"))
        extra = {row["method"]: max(row["extra_mib_per_rank"]) for row in d["rows"]}
        ds = d["settings"]
        text += (
            f" On a deeper model ({ds['layers']} layers, hidden {ds['hidden']}, vocab "
            f"{ds['vocab']:,}; `{BENCHMARK_RESULTS}/fsdp_cost_deep.json`) FGM (token) costs "
            f"{extra.get('fgm (token)', float('nan')):.0f} MiB extra per rank and with the "
            f"reduction deferred {extra.get('fgm (token), reduction deferred', float('nan')):.0f}"
            " MiB."
        )
    return text


BENCHMARKS = {
    "step_cost": step_cost,
    "cli_overhead": cli_overhead,
    "ddp_cost": ddp_cost,
    "determinism_cost": determinism_cost,
    "attack_speed": attack_speed,
    "fsdp_cost": fsdp_cost,
}


def render(readme: str) -> str:
    """``readme`` with every generated section rewritten; each section's markers must be there."""
    texts = {name: lambda folder=folder: section(folder) for name, folder in SECTIONS.items()}
    texts.update({name: lambda name=name: benchmark_section(name) for name in BENCHMARKS})
    texts["results"] = results_section
    for name, text in texts.items():
        begin, end = f"<!-- generated:{name} -->\n", f"<!-- /generated:{name} -->"
        head, found_begin, rest = readme.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found_begin and found_end):
            raise SystemExit(f"README.md: no {begin.strip()} ... {end} markers")
        readme = head + begin + text() + end + tail
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    updated = render(readme)
    if args.check:
        if updated != readme:
            sys.exit("README.md is out of date: run python scripts/update_readme.py")
        return 0
    readme_path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
