"""Sections made from one experiment's committed summary: ``experiments/<folder>/summary.json``
(``advnlp compare``'s or ``advnlp demo``'s) and ``compare.json`` (its settings). A new
experiment plugs in with one entry in SECTIONS and its two markers in the README."""

from __future__ import annotations

import json
from pathlib import Path

from advnlp.experiment.report import BASELINE, _delta, _p, _percent

from . import common
from .common import _attack_delta

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
            f"The run (`{path.relative_to(common.ROOT)}/timing.json`) took "
            f"{timing['wall_s'] / 60:.1f} minutes of wall time and {timing['cpu_s']:,.0f} s of "
            "CPU time (user + system, "
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


def section(folder: str) -> str:
    """The generated text of one section, from ``folder``'s summary.json and compare.json (a
    note saying how to make them while they are not committed yet)."""
    path = common.ROOT / folder
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
