"""``advnlp compare --attack``: every run's best model attacked on the same dev sample, and
accuracy under attack in the comparison's summary, paired over seeds like clean accuracy.

Each run folder gets ``attack/``, the files of ``advnlp attack`` (attack.json, attack.md,
examples.jsonl, attack.png). A rerun reuses them when they hold every requested setting on the
same sample, so runs trained earlier without ``--attack`` are attacked when ``compare`` runs
again with it, and attacked ones are not attacked twice. Every run sees the same examples (one
sample, drawn with one seed, whatever the run's seed): the runs of a seed are paired example by
example, and McNemar's test applies to "right under attack" as it does to "right".

Summary conventions are those of :mod:`advnlp.experiment.report` (fractions in JSON, percent in
tables, sample std, ``None`` for what cannot be computed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..experiment.plots import COLLAPSED_LABEL, _figure, _save_png, draw_against_epsilon
from ..experiment.report import _p, _percent, markdown
from ..experiment.results import RunResult
from ..experiment.stats import BASELINE, as_result, group_runs, mcnemar
from ..experiment.stats import mean_std as _mean_std
from ..experiment.stats import paired_t_p as _paired_t_p
from .attack import (
    BUDGET,
    MAX_CANDIDATES,
    MAX_QUERIES,
    STEPS,
    attack_run,
    check_language,
    check_settings,
)
from .transformations import make
from .victim import Example

FOLDER = "attack"  # inside each run folder
RADII = (0.05, 0.1, 0.2)  # compare's default radii: the informative part of the curve
Setting = tuple[str, float]  # (attack, budget) or ("embedding", radius)

HEADER = (
    "Accuracy under attack (TextAttack's definition: examples still right after the attack / "
    "all examples) of each run's best model on the same dev examples, in %: mean ± sample std "
    "over seeds; success rate: successful attacks / examples right before the attack. Budget: "
    "share of characters (or words, tokens) the attack may edit; r: L2 radius of the embedding "
    f"perturbation relative to the input's own. Δ: method − {BASELINE} on the same seeds, in "
    "points; paired t over seeds; McNemar on the examples pooled over those seeds, "
    f"b = {BASELINE} right under attack and method wrong, c = the reverse."
)
COLUMNS = (
    "attack",
    "method",
    "ε",
    "seeds",
    "clean acc %",
    "acc under attack %",
    "success rate %",
    f"Δ under attack vs {BASELINE} (pts)",
    "paired t p",
    "McNemar b/c",
    "McNemar p",
)


@dataclass
class AttackSweep:
    """What ``compare --attack`` runs on every run: ``attacks`` at every budget (discrete
    attacks) or radius (embedding) on ``examples`` dev examples (all when None)."""

    attacks: list[str]
    examples: int | None = None
    budgets: list[float] = field(default_factory=lambda: [BUDGET])
    radii: list[float] = field(default_factory=lambda: list(RADII))
    max_queries: int = MAX_QUERIES
    max_candidates: int = MAX_CANDIDATES
    steps: int = STEPS
    seed: int = 0  # draws the sample (and typos): one for every run, so runs stay paired

    def settings(self) -> list[Setting]:
        """Every (attack, budget or radius) in the order of the tables."""
        return [
            (name, value)
            for name in self.attacks
            for value in (self.radii if name == "embedding" else self.budgets)
        ]

    def check(self, base: Any) -> None:
        """Check the flags, then the language of the dev sample against each text attack;
        before any training, writing nothing. ``base`` is the comparison's RunConfig."""
        check_settings(
            self.attacks,
            self.budgets,
            self.radii,
            self.max_queries,
            self.max_candidates,
            self.steps,
            prefix="--attack-",
        )
        if self.examples is not None and self.examples < 1:
            raise UsageError(f"--attack-examples {self.examples}: must be >= 1")
        texts = [Example(text, 0) for text in self._sample_texts(base)]
        for name in self.attacks:
            if name not in ("embedding", "neighbour"):  # these two fit every language
                check_language(make(name, None, self.max_candidates), None, texts)

    def _sample_texts(self, base: Any) -> list[str]:
        import random

        from ..data import load_split

        split = load_split(
            base.dev,
            flag="--dev",
            text_columns=base.text_columns,
            label_column=base.label_column,
            limit=base.max_dev_examples,
        )
        texts = split.dataset["text"]
        rows = range(len(texts))
        if self.examples is not None and self.examples < len(rows):
            rows = sorted(random.Random(self.seed).sample(list(rows), self.examples))
        return [texts[i] for i in rows]

    def saved(self, folder: Path) -> bool:
        """Whether ``folder/attack`` holds every requested setting, made the same way."""
        path = folder / FOLDER / "attack.json"
        if not path.exists():
            return False
        report = json.loads(path.read_text(encoding="utf-8"))
        if {k: report["settings"].get(k) for k in self._same()} != self._same():
            return False
        found = {_setting(r) for r in report["results"]}
        return set(self.settings()) <= found

    def _same(self) -> dict[str, Any]:
        """Settings that must match for saved results to be reused."""
        return {
            "sample": self.examples,
            "seed": self.seed,
            "max_queries": self.max_queries,
            "max_candidates": self.max_candidates,
            "steps": self.steps,
        }

    def run(self, folder: str | os.PathLike[str], *, progress: bool = False) -> str:
        """Attack the finished run in ``folder`` unless its results are saved; one line on it."""
        from .report import write_report

        folder = Path(folder)
        if self.saved(folder):
            return f"{folder.name}: attack results saved earlier, reused"
        report = attack_run(
            folder,
            self.attacks,
            max_examples=self.examples,
            budgets=self.budgets,
            radii=self.radii,
            max_queries=self.max_queries,
            max_candidates=self.max_candidates,
            steps=self.steps,
            seed=self.seed,
            progress=progress,
        )
        report.settings["sample"] = self.examples
        write_report(report, folder / FOLDER)
        parts = [
            f"{_label(_setting(r.to_json()))} {100 * (r.metrics.accuracy_under_attack or 0):.1f}%"
            for r in report.results
        ]
        return f"{folder.name}: accuracy under attack " + ", ".join(parts)

    # -----------------------------------------------------------------------------------------
    # summary

    def summarize(self, runs: Iterable[RunResult | Mapping[str, Any]]) -> dict[str, Any]:
        """Accuracy under attack per (attack setting, group), paired with ``none`` by seed.

        Returns {"settings": what was run, "results": [{attack, budget, radius, groups: [{method,
        epsilon, seeds, n_examples, clean_accuracy / accuracy_under_attack / success_rate
        mean and std, vs_baseline: {paired_seeds, diff mean and std in points, paired_t_p,
        mcnemar {b, c, p}} or None}]}]}. A run without saved results for a setting is left
        out of that setting's groups.
        """
        runs = [as_result(run) for run in runs]
        outcomes = {id(run): _read(Path(run.config.output) / FOLDER) for run in runs}
        groups = group_runs(runs)
        results = []
        for setting in self.settings():
            rows = []
            by_key = {
                key: [(r, outcomes[id(r)][setting]) for r in members if setting in outcomes[id(r)]]
                for key, members in groups.items()
            }
            baseline = by_key.get((BASELINE, None))
            for (method, epsilon), members in by_key.items():
                if not members:
                    continue
                rows.append(
                    {
                        "method": method,
                        "epsilon": epsilon,
                        "seeds": [r.config.seed for r, _ in members],
                        "n_examples": members[0][1]["n"],
                        **_stats(members, "clean_accuracy"),
                        **_stats(members, "accuracy_under_attack"),
                        **_stats(members, "success_rate"),
                        "vs_baseline": None
                        if method == BASELINE or not baseline
                        else _versus(members, baseline),
                    }
                )
            name, value = setting
            radius = value if name == "embedding" else None
            budget = None if name == "embedding" else value
            results.append({"attack": name, "budget": budget, "radius": radius, "groups": rows})
        return {"settings": {"attacks": self.attacks, **self._same()}, "results": results}


def _setting(result: dict[str, Any]) -> Setting:
    if result["attack"] == "embedding":
        return "embedding", float(result["radius"])
    return result["attack"], float(result["budget"])


def _label(setting: Setting) -> str:
    name, value = setting
    return f"{name} r={value:g}" if name == "embedding" else f"{name} budget={value:g}"


def _read(folder: Path) -> dict[Setting, dict[str, Any]]:
    """A run's saved attack: per setting, its metrics and, per example, gold label and
    prediction under attack (right under attack <=> they agree)."""
    if not (folder / "attack.json").exists():
        return {}
    report = json.loads((folder / "attack.json").read_text(encoding="utf-8"))
    found = {_setting(r): {**r, "gold": [], "predicted": []} for r in report["results"]}
    with (folder / "examples.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            example = json.loads(line)
            entry = found[_setting(example)]
            entry["gold"].append(example["gold"])
            entry["predicted"].append(example["adversarial_prediction"])
    return found


def _stats(members: list[tuple[RunResult, dict]], metric: str) -> dict[str, float | None]:
    mean, std = _mean_std([outcome[metric] for _, outcome in members])
    return {f"{metric}_mean": mean, f"{metric}_std": std}


def _as_run(run: RunResult, outcome: dict[str, Any]) -> RunResult:
    """The run with its predictions under attack as its dev predictions, for stats.mcnemar."""
    return replace(run, dev_labels=outcome["gold"], dev_predictions=outcome["predicted"])


def _versus(
    members: list[tuple[RunResult, dict]], baseline: list[tuple[RunResult, dict]]
) -> dict[str, Any]:
    base_by_seed = {run.config.seed: (run, outcome) for run, outcome in baseline}
    pairs = [
        (base_by_seed[run.config.seed], (run, outcome))
        for run, outcome in members
        if run.config.seed in base_by_seed
    ]
    method = [o["accuracy_under_attack"] for _, (_, o) in pairs]
    base = [o["accuracy_under_attack"] for (_, o), _ in pairs]
    mean, std = _mean_std([100 * (m - b) for m, b in zip(method, base, strict=True)])
    tests = [(_as_run(*b), _as_run(*m)) for b, m in pairs]
    return {
        "paired_seeds": [run.config.seed for (run, _), _ in pairs],
        "accuracy_under_attack_diff_points_mean": mean,
        "accuracy_under_attack_diff_points_std": std,
        "paired_t_p": _paired_t_p(method, base),
        "mcnemar": mcnemar(tests) if tests else {"b": None, "c": None, "p": None},
    }


# ---------------------------------------------------------------------------------------------
# markdown and plots


def _delta(versus: dict[str, Any] | None) -> str:
    if versus is None or versus["accuracy_under_attack_diff_points_mean"] is None:
        return "—"
    std = versus["accuracy_under_attack_diff_points_std"]
    mean = f"{round(versus['accuracy_under_attack_diff_points_mean'], 2) + 0.0:+.2f}"
    return mean + " ± " + ("—" if std is None else f"{std:.2f}")


def result_label(result: dict[str, Any]) -> str:
    """ "homophone, budget 0.1" or "embedding, r=0.1"."""
    if result["radius"] is not None:
        return f"{result['attack']}, r={result['radius']:g}"
    return f"{result['attack']}, budget {result['budget']:g}"


def markdown_section(robustness: dict[str, Any]) -> str:
    """The robustness part of summary.md: a header line and one row per setting and group."""
    rows = []
    for result in robustness["results"]:
        for group in result["groups"]:
            versus = group["vs_baseline"] or {}
            test = versus.get("mcnemar") or {}
            rows.append(
                [
                    result_label(result),
                    group["method"],
                    "—" if group["epsilon"] is None else f"{group['epsilon']:g}",
                    ", ".join(str(s) for s in group["seeds"]),
                    _percent(group["clean_accuracy_mean"], group["clean_accuracy_std"]),
                    _percent(
                        group["accuracy_under_attack_mean"], group["accuracy_under_attack_std"]
                    ),
                    _percent(group["success_rate_mean"], group["success_rate_std"]),
                    _delta(group["vs_baseline"]),
                    _p(versus.get("paired_t_p")),
                    "—" if test.get("b") is None else f"{test['b']}/{test['c']}",
                    _p(test.get("p")),
                ]
            )
    n = sorted({g["n_examples"] for r in robustness["results"] for g in r["groups"]})
    if not rows:
        return f"{HEADER}\n\nNo run has saved attack results.\n"
    examples = ", ".join(str(x) for x in n)
    return f"{HEADER} {examples} dev examples per run.\n\n{markdown(COLUMNS, rows)}\n"


PLOTS = ("attack_vs_epsilon.png", "attack_vs_radius.png")


def write_plots(
    robustness: dict[str, Any],
    out: str | os.PathLike[str],
    collapsed: frozenset[tuple[str, float | None]] = frozenset(),
) -> None:
    """attack_vs_epsilon.png: accuracy under attack against epsilon, one panel per setting
    (the embedding attack at its middle radius), ``none`` as a line with its ±std band;
    attack_vs_radius.png (embedding attack only): accuracy against the radius, per group.
    ``collapsed`` (method, epsilon) groups are crossed out, or named so in the legend."""
    out = Path(out)
    results = robustness["results"]
    embedding = [r for r in results if r["radius"] is not None]
    panels = [r for r in results if r["radius"] is None]
    if embedding:
        panels.append(sorted(embedding, key=lambda r: r["radius"])[len(embedding) // 2])
    if panels:
        figure, axes = _figure(4.5 * len(panels), 4, panels=len(panels))
        for ax, result in zip(axes, panels, strict=True):
            _epsilon_panel(ax, result, collapsed)
        _save_png(figure, out / PLOTS[0])
    if len(embedding) > 1:
        figure, (ax,) = _figure(6.5, 4.5)
        keys = dict.fromkeys((g["method"], g["epsilon"]) for r in embedding for g in r["groups"])
        for method, epsilon in keys:
            points = [
                (r["radius"], g)
                for r in embedding
                for g in r["groups"]
                if (g["method"], g["epsilon"]) == (method, epsilon)
            ]
            ax.errorbar(
                [x for x, _ in points],
                [100 * g["accuracy_under_attack_mean"] for _, g in points],
                yerr=[100 * (g["accuracy_under_attack_std"] or 0.0) for _, g in points],
                marker="o",
                capsize=3,
                label=(method if epsilon is None else f"{method} ε={epsilon:g}")
                + (f": {COLLAPSED_LABEL}" if (method, epsilon) in collapsed else ""),
            )
        ax.set_title("Accuracy under the embedding attack (mean ± std over seeds)")
        ax.set_xlabel("radius r (relative L2)")
        ax.set_ylabel("accuracy under attack (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        _save_png(figure, out / PLOTS[1])


def _epsilon_panel(
    ax: Any, result: dict[str, Any], collapsed: frozenset[tuple[str, float | None]]
) -> None:
    draw_against_epsilon(ax, result["groups"], "accuracy_under_attack", collapsed)
    ax.set_title(result_label(result))
    ax.set_xlabel("epsilon (training)")
    ax.set_ylabel("accuracy under attack (%)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")
