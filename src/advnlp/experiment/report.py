"""The report of ``advnlp compare``: a paired summary over seeds, a markdown table, two plots.

Everything here is a pure function of the runs' results (``RunResult``, or ``results.json``
dicts). Runs are grouped by (method, epsilon); each group is compared with the ``none``
baseline on the seeds both have (the runs of one seed share initial weights and data order, so
the comparison is paired). The statistics are in stats.py, the plots in plots.py.

Conventions:

- accuracies are fractions in the summary (as in ``results.json``) and percent in the table
  and plots; differences with the baseline are in percentage points;
- a standard deviation is the sample one (ddof=1) and is ``None`` for a single value, never 0
  (one seed says nothing about the spread); a test that cannot be computed gives ``None``, so
  the summary never holds NaN and is valid JSON;
- a run whose best model predicts one class for >= 90% of dev (``COLLAPSE_SHARE``) has
  collapsed; the summary lists such seeds per group and the table marks the group;
- scipy and matplotlib are imported inside the functions that use them, so importing this
  module loads neither.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .environment import hardware_label
from .io import write_json_atomic, write_text_atomic
from .plots import collapsed_points, plot_accuracy_vs_epsilon, plot_training_curves
from .results import COLLAPSE_SHARE, RunResult
from .stats import (
    BASELINE,
    Key,
    as_result,
    group_label,
    group_runs,
    mcnemar,
    mean_std,
    median,
    paired_t_p,
    run_key,
)

__all__ = [
    "BASELINE",
    "group_runs",
    "markdown",
    "markdown_table",
    "mcnemar",
    "plot_accuracy_vs_epsilon",
    "plot_training_curves",
    "run_key",
    "summarize",
    "write_report",
]

HEADER = (
    "Dev accuracy and macro-F1 in %: mean ± sample std (ddof=1) over seeds. "
    f"Δ: method − {BASELINE} on the same seeds, in points (± std of the paired differences); "
    "paired t: scipy.stats.ttest_rel over those seeds; McNemar: exact two-sided binomial test "
    f"on the dev predictions pooled over those seeds, b = {BASELINE} right and method wrong, "
    f"c = the reverse. Step time: median step time / {BASELINE}'s."
)
COLLAPSED = "⚠"  # marks a group with collapsed runs; a note under the table says which
COLUMNS = (
    "method",
    "ε",
    "seeds",
    "dev acc %",
    "dev macro-F1 %",
    f"Δ acc vs {BASELINE} (pts)",
    "paired t p",
    "McNemar b/c",
    "McNemar p",
)  # then test acc % (if any), step time


# ---------------------------------------------------------------------------------------------
# summary


def _versus(members: list[RunResult], baseline: list[RunResult]) -> dict[str, Any]:
    """The comparison of a group with the baseline on the seeds both have."""
    base_by_seed = {run.config.seed: run for run in baseline}
    pairs = [(base_by_seed[r.config.seed], r) for r in members if r.config.seed in base_by_seed]
    method_acc = [r.dev.accuracy for _, r in pairs]
    base_acc = [b.dev.accuracy for b, _ in pairs]
    mean, std = mean_std([100 * (m - b) for m, b in zip(method_acc, base_acc, strict=True)])
    return {
        "paired_seeds": [b.config.seed for b, _ in pairs],
        "dev_accuracy_diff_points_mean": mean,
        "dev_accuracy_diff_points_std": std,
        "paired_t_p": paired_t_p(method_acc, base_acc),
        "mcnemar": mcnemar(pairs) if pairs else {"b": None, "c": None, "p": None},
    }


def _summarize_group(
    key: Key, members: list[RunResult], baseline: list[RunResult] | None
) -> dict[str, Any]:
    method, epsilon = key
    dev_acc = mean_std([r.dev.accuracy for r in members])
    dev_f1 = mean_std([r.dev.macro_f1 for r in members])
    test_acc = mean_std([r.test.accuracy if r.test else None for r in members])
    is_baseline = method == BASELINE
    return {
        "method": method,
        "epsilon": epsilon,
        "n": len(members),
        "seeds": [r.config.seed for r in members],
        "dev_accuracy_mean": dev_acc[0],
        "dev_accuracy_std": dev_acc[1],
        "dev_macro_f1_mean": dev_f1[0],
        "dev_macro_f1_std": dev_f1[1],
        "test_accuracy_mean": test_acc[0],
        "test_accuracy_std": test_acc[1],
        "test_n": sum(1 for r in members if r.test is not None),
        "median_step_time_s": median(r.median_step_time_s for r in members),
        "hardware": sorted({hardware_label(r.environment) for r in members} - {None}),
        "collapsed_seeds": [r.config.seed for r in members if r.collapsed],
        "vs_baseline": None if baseline is None or is_baseline else _versus(members, baseline),
    }


def summarize(runs: Iterable[RunResult | Mapping[str, Any]]) -> dict[str, Any]:
    """Summarise runs by (method, epsilon), paired with the ``none`` baseline by seed.

    Returns ``{"groups": [...], "baseline": "none" | None, "collapse_share": 0.9}``,
    JSON-serialisable and free of NaN. Each group holds method, epsilon, n, seeds, dev accuracy
    / macro-F1 / test accuracy mean and std (fractions; std None for one value; test None when
    no run has it), the median of the runs' median step times, ``collapsed_seeds`` (the seeds
    whose best model predicts one class for >= collapse_share of dev), ``hardware`` (the
    distinct devices and thread counts its runs ran with), and ``vs_baseline``
    (None for the baseline itself or when there is none): paired_seeds, the mean and std of the
    dev accuracy differences in points, the paired t-test p and ``mcnemar`` {b, c, p}.
    """
    groups = group_runs(runs)
    baseline = groups.get((BASELINE, None))
    return {
        "groups": [_summarize_group(key, members, baseline) for key, members in groups.items()],
        "baseline": BASELINE if baseline else None,
        "collapse_share": COLLAPSE_SHARE,
    }


# ---------------------------------------------------------------------------------------------
# markdown


def _percent(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{100 * mean:.2f} ± " + ("—" if std is None else f"{100 * std:.2f}")


def _p(p: float | None) -> str:
    if p is None:
        return "—"
    return f"{p:.3f}" if p >= 0.001 else f"{p:.1e}"


def _delta(versus: dict[str, Any] | None) -> str:
    if versus is None or versus["dev_accuracy_diff_points_mean"] is None:
        return "—"
    std = versus["dev_accuracy_diff_points_std"]
    mean = f"{round(versus['dev_accuracy_diff_points_mean'], 2) + 0.0:+.2f}"  # no "-0.00"
    return mean + " ± " + ("—" if std is None else f"{std:.2f}")


def _ratio(time: float | None, baseline_time: float | None) -> str:
    if time is None or not baseline_time:
        return "—"
    return f"{time / baseline_time:.2f}×"


def _same_hardware(group: dict[str, Any], base: dict[str, Any] | None) -> bool:
    """Whether the group's step times can be set against the baseline's: all their runs ran on
    one device with one thread count (or did not record it: summaries from before)."""
    if base is None:
        return True
    return len({*group.get("hardware", []), *base.get("hardware", [])}) <= 1


def _row(group: dict[str, Any], baseline_time: float | None, with_test: bool) -> list[str]:
    versus = group["vs_baseline"] or {}
    test = versus.get("mcnemar") or {}
    bc = "—" if test.get("b") is None else f"{test['b']}/{test['c']}"
    cells = [
        group["method"] + (f" {COLLAPSED}" if group.get("collapsed_seeds") else ""),
        "—" if group["epsilon"] is None else f"{group['epsilon']:g}",
        ", ".join(str(s) for s in group["seeds"]),
        _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
        _percent(group["dev_macro_f1_mean"], group["dev_macro_f1_std"]),
        _delta(group["vs_baseline"]),
        _p(versus.get("paired_t_p")),
        bc,
        _p(test.get("p")),
    ]
    if with_test:
        cells.append(_percent(group["test_accuracy_mean"], group["test_accuracy_std"]))
    return [*cells, _ratio(group["median_step_time_s"], baseline_time)]


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    """A markdown table with aligned columns (for terminals as well as files)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join(lines)


def markdown_table(summary: dict[str, Any]) -> str:
    """A markdown table of ``summarize``'s output, one row per group, under a one-line header
    that says what the ± and the tests are. Missing values are shown as "—"."""
    groups = summary["groups"]
    with_test = any(g["test_accuracy_mean"] is not None for g in groups)
    base = next((g for g in groups if g["method"] == BASELINE and g["epsilon"] is None), None)
    base_time = base["median_step_time_s"] if base else None
    columns = [*COLUMNS, *["test acc %"] * with_test, f"step time vs {BASELINE}"]
    lines = [HEADER, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join(_row(g, base_time if _same_hardware(g, base) else None, with_test)) + " |"
        for g in groups
    ]
    lines += _collapse_notes(summary)
    lines += _hardware_notes(groups, base)
    if summary.get("robustness"):  # compare --attack
        from ..robustness.compare import markdown_section

        lines += ["", markdown_section(summary["robustness"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


def _collapse_notes(summary: dict[str, Any]) -> list[str]:
    """A line under the table per group with collapsed runs (none for a summary without)."""
    share = summary.get("collapse_share", COLLAPSE_SHARE)
    notes = [
        f"{COLLAPSED} {group_label(g['method'], g['epsilon'])}: collapsed on "
        f"{len(g['collapsed_seeds'])} of {g['n']} seeds "
        f"({', '.join(str(s) for s in g['collapsed_seeds'])}): the best model predicts one "
        f"class for >= {100 * share:.0f}% of the dev examples"
        for g in summary["groups"]
        if g.get("collapsed_seeds")
    ]
    return ["", *notes] if notes else []


def _machines(group: dict[str, Any]) -> str:
    return ", ".join(group.get("hardware", [])) or "hardware not recorded"


def _hardware_notes(groups: list[dict[str, Any]], base: dict[str, Any] | None) -> list[str]:
    """A line under the table per group whose step time is not set against the baseline's,
    because they ran on different devices or thread counts (a run linked from another sweep)."""
    notes = [
        f"Step time vs {BASELINE} not shown for {group_label(g['method'], g['epsilon'])}: its runs "
        f"ran on {_machines(g)}, {BASELINE}'s on {_machines(base)}"
        for g in groups
        if g is not base and not _same_hardware(g, base)
    ]
    return ["", *notes] if notes else []


# ---------------------------------------------------------------------------------------------
# files


def _run_entry(run: RunResult) -> dict[str, Any]:
    method, epsilon = run_key(run)
    output, seed = run.config.output, run.config.seed
    default_id = f"{method}{'' if epsilon is None else f'-eps{epsilon:g}'}-seed{seed}"
    return {
        "id": Path(output).name if output else default_id,
        "method": method,
        "epsilon": epsilon,
        "seed": seed,
        "path": output,
        "dev_majority_share": run.dev_majority_share,
        "collapsed": run.collapsed,
        # the compute it took and where (None for runs written before train_s was recorded)
        "train_s": run.train_seconds,
        "environment": run.environment,
    }


def write_report(
    runs: Iterable[RunResult | Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    attack: Any = None,
) -> dict[str, Any]:
    """Write summary.json, summary.md, accuracy_vs_epsilon.png and training_curves.png into
    ``out_dir``, each atomically, and return the summary as written to summary.json: the
    output of ``summarize`` plus ``runs``, one {id, method, epsilon, seed, path,
    dev_majority_share, collapsed, train_s, environment} per run (id: the run folder's name,
    from its config's output). With ``attack`` (an ``advnlp.robustness.compare.AttackSweep``), also
    ``robustness`` and its two plots."""
    out = Path(out_dir)
    runs = [as_result(run) for run in runs]
    summary = {**summarize(runs), "runs": [_run_entry(run) for run in runs]}
    if attack is not None:
        summary["robustness"] = attack.summarize(runs)
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "summary.md", markdown_table(summary))
    plot_accuracy_vs_epsilon(summary, out / "accuracy_vs_epsilon.png")
    plot_training_curves(runs, out / "training_curves.png")
    if attack is not None:
        from ..robustness.compare import write_plots

        write_plots(summary["robustness"], out, collapsed_points(summary["groups"]))
    return summary
