"""The report of ``advnlp compare``: a paired summary over seeds, a markdown table, two plots.

Everything here is a pure function of the runs' ``results.json`` dicts. Runs are grouped by
(method, epsilon); each group is compared with the ``none`` baseline on the seeds both have
(the runs of one seed share initial weights and data order, so the comparison is paired).

Conventions:

- accuracies are fractions in the summary (as in ``results.json``) and percent in the table
  and plots; differences with the baseline are in percentage points;
- a standard deviation is the sample one (ddof=1) and is ``None`` for a single value, never 0
  (one seed says nothing about the spread); a test that cannot be computed gives ``None``, so
  the summary never holds NaN and is valid JSON;
- scipy and matplotlib are imported inside the functions that use them, so importing this
  module loads neither.
"""

from __future__ import annotations

import io
import math
import os
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .io import write_bytes_atomic, write_json_atomic, write_text_atomic

BASELINE = "none"
Key = tuple[str, float | None]  # (method, epsilon)

HEADER = (
    "Dev accuracy and macro-F1 in %: mean ± sample std (ddof=1) over seeds. "
    f"Δ: method − {BASELINE} on the same seeds, in points (± std of the paired differences); "
    "paired t: scipy.stats.ttest_rel over those seeds; McNemar: exact two-sided binomial test "
    f"on the dev predictions pooled over those seeds, b = {BASELINE} right and method wrong, "
    f"c = the reverse. Step time: median step time / {BASELINE}'s."
)
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


def run_key(run: dict[str, Any]) -> Key:
    """(method, epsilon) of one run; epsilon is ``None`` when the method takes none."""
    config = run["config"]
    epsilon = (config.get("method_kwargs") or {}).get("epsilon")
    return config["method"], None if epsilon is None else float(epsilon)


def _sort_key(key: Key) -> tuple[bool, str, bool, float]:
    method, epsilon = key
    return method != BASELINE, method, epsilon is not None, epsilon or 0.0


def group_runs(runs: Iterable[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    """Runs by (method, epsilon), baseline first, then by method and epsilon; within a group,
    by seed. Raises ValueError when a (method, epsilon, seed) appears twice."""
    groups: dict[Key, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run_key(run), []).append(run)
    for (method, epsilon), members in groups.items():
        seeds = [run["config"]["seed"] for run in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{method} epsilon={epsilon}: seeds {seeds} repeat a seed")
        members.sort(key=lambda run: run["config"]["seed"])
    return {key: groups[key] for key in sorted(groups, key=_sort_key)}


def _finite(value: float | None) -> float | None:
    """``value`` as a plain float, or None when missing or not finite (no NaN in JSON)."""
    return None if value is None or not math.isfinite(value) else float(value)


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std of the present values; std is None below two values."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    std = statistics.stdev(present) if len(present) > 1 else None
    return _finite(statistics.fmean(present)), _finite(std)


def _median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return _finite(statistics.median(present)) if present else None


def _paired_t_p(method: Sequence[float], baseline: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value; None below two pairs or when the differences are
    constant up to rounding (1e-12: accuracies are fractions), where t is undefined."""
    differences = [m - b for m, b in zip(method, baseline, strict=True)]
    if len(differences) < 2 or max(differences) - min(differences) <= 1e-12:
        return None
    from scipy.stats import ttest_rel

    return _finite(ttest_rel(method, baseline).pvalue)


def mcnemar(pairs: Iterable[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    """McNemar's exact test on dev predictions pooled over (baseline run, method run) pairs.

    b counts the examples the baseline got right and the method wrong, c the reverse; p is the
    two-sided exact binomial test of min(b, c) successes in b + c trials (None when b + c = 0,
    or b, c and p all None when a run lacks its dev predictions).
    """
    b = c = 0
    for base, other in pairs:
        labels = base.get("dev_labels")
        base_pred, other_pred = base.get("dev_predictions"), other.get("dev_predictions")
        if labels is None or base_pred is None or other_pred is None:
            return {"b": None, "c": None, "p": None}
        if other.get("dev_labels") != labels or {len(base_pred), len(other_pred)} != {len(labels)}:
            seed = base["config"]["seed"]
            raise ValueError(f"seed {seed}: the runs' dev labels or predictions do not match")
        for truth, x, y in zip(labels, base_pred, other_pred, strict=True):
            b += x == truth and y != truth
            c += x != truth and y == truth
    if b + c == 0:
        return {"b": b, "c": c, "p": None}
    from scipy.stats import binomtest

    return {"b": b, "c": c, "p": _finite(binomtest(min(b, c), b + c, 0.5).pvalue)}


def _versus(members: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    """The comparison of a group with the baseline on the seeds both have."""
    base_by_seed = {run["config"]["seed"]: run for run in baseline}
    seeds = [r["config"]["seed"] for r in members]
    pairs = [(base_by_seed[s], r) for s, r in zip(seeds, members, strict=True) if s in base_by_seed]
    method_acc = [r["dev"]["accuracy"] for _, r in pairs]
    base_acc = [b["dev"]["accuracy"] for b, _ in pairs]
    mean, std = _mean_std([100 * (m - b) for m, b in zip(method_acc, base_acc, strict=True)])
    return {
        "paired_seeds": [b["config"]["seed"] for b, _ in pairs],
        "dev_accuracy_diff_points_mean": mean,
        "dev_accuracy_diff_points_std": std,
        "paired_t_p": _paired_t_p(method_acc, base_acc),
        "mcnemar": mcnemar(pairs) if pairs else {"b": None, "c": None, "p": None},
    }


def _summarize_group(
    key: Key, members: list[dict[str, Any]], baseline: list[dict[str, Any]] | None
) -> dict[str, Any]:
    method, epsilon = key
    dev_acc = _mean_std([r["dev"]["accuracy"] for r in members])
    dev_f1 = _mean_std([r["dev"].get("macro_f1") for r in members])
    test_acc = _mean_std([(r.get("test") or {}).get("accuracy") for r in members])
    is_baseline = method == BASELINE
    return {
        "method": method,
        "epsilon": epsilon,
        "n": len(members),
        "seeds": [r["config"]["seed"] for r in members],
        "dev_accuracy_mean": dev_acc[0],
        "dev_accuracy_std": dev_acc[1],
        "dev_macro_f1_mean": dev_f1[0],
        "dev_macro_f1_std": dev_f1[1],
        "test_accuracy_mean": test_acc[0],
        "test_accuracy_std": test_acc[1],
        "test_n": sum(1 for r in members if (r.get("test") or {}).get("accuracy") is not None),
        "median_step_time_s": _median(r.get("median_step_time_s") for r in members),
        "vs_baseline": None if baseline is None or is_baseline else _versus(members, baseline),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Summarise runs by (method, epsilon), paired with the ``none`` baseline by seed.

    Returns ``{"groups": [...], "baseline": "none" | None}``, JSON-serialisable and free of
    NaN. Each group holds method, epsilon, n, seeds, dev accuracy / macro-F1 / test accuracy
    mean and std (fractions; std None for one value; test None when no run has it), the
    median of the runs' median step times, and ``vs_baseline`` (None for the baseline itself
    or when there is none): paired_seeds, the mean and std of the dev accuracy differences in
    points, the paired t-test p and ``mcnemar`` {b, c, p}.
    """
    groups = group_runs(runs)
    baseline = groups.get((BASELINE, None))
    return {
        "groups": [_summarize_group(key, members, baseline) for key, members in groups.items()],
        "baseline": BASELINE if baseline else None,
    }


# ---------------------------------------------------------------------------------------------
# markdown


def _label(method: str, epsilon: float | None) -> str:
    return method if epsilon is None else f"{method} ε={epsilon:g}"


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


def _row(group: dict[str, Any], baseline_time: float | None, with_test: bool) -> list[str]:
    versus = group["vs_baseline"] or {}
    test = versus.get("mcnemar") or {}
    bc = "—" if test.get("b") is None else f"{test['b']}/{test['c']}"
    cells = [
        group["method"],
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
    lines += ["| " + " | ".join(_row(g, base_time, with_test)) + " |" for g in groups]
    if summary.get("robustness"):  # compare --attack
        from ..robustness.compare import markdown_section

        lines += ["", markdown_section(summary["robustness"]).rstrip("\n")]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# plots


def _figure(width: float, height: float, panels: int = 1) -> tuple[Any, list[Any]]:
    """A matplotlib figure drawn by the Agg canvas, without pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, [figure.add_subplot(1, panels, i + 1) for i in range(panels)]


def _save_png(figure: Any, path: str | os.PathLike[str]) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    write_bytes_atomic(Path(path), buffer.getvalue())


def plot_accuracy_vs_epsilon(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """PNG of dev accuracy (%) against epsilon: one line with std error bars per method that
    takes an epsilon, the baseline as a horizontal line with a shaded ±std band. The x axis is
    logarithmic when the epsilons are all positive and span more than 10x."""
    figure, (ax,) = _figure(7, 4.5)
    groups = summary["groups"]
    epsilons = [g["epsilon"] for g in groups if g["epsilon"] is not None]
    for method in dict.fromkeys(g["method"] for g in groups if g["epsilon"] is not None):
        rows = [g for g in groups if g["method"] == method and g["epsilon"] is not None]
        ax.errorbar(
            [g["epsilon"] for g in rows],
            [100 * g["dev_accuracy_mean"] for g in rows],
            yerr=[100 * (g["dev_accuracy_std"] or 0.0) for g in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    for g in groups:
        if g["method"] == BASELINE and g["epsilon"] is None:
            mean, std = 100 * g["dev_accuracy_mean"], 100 * (g["dev_accuracy_std"] or 0.0)
            ax.axhline(mean, color="black", linestyle="--", label=f"{BASELINE} (± std band)")
            if std:
                ax.axhspan(mean - std, mean + std, color="gray", alpha=0.2)
    if epsilons and min(epsilons) > 0 and max(epsilons) > 10 * min(epsilons):
        ax.set_xscale("log")
    ax.set_title("Dev accuracy vs epsilon (mean ± std over seeds)")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("dev accuracy (%)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    _save_png(figure, path)


def _per_epoch(members: list[dict[str, Any]], field: str) -> dict[int, list[float]]:
    """Values of ``field`` by epoch over the seeds that have a finite one."""
    values: dict[int, list[float]] = {}
    for run in members:
        for row in run.get("epochs") or []:
            value = row.get(field)
            if value is not None and math.isfinite(value):
                values.setdefault(row["epoch"], []).append(value)
    return dict(sorted(values.items()))


def plot_training_curves(runs: list[dict[str, Any]], path: str | os.PathLike[str]) -> None:
    """PNG with two panels, dev accuracy (%) and train loss per epoch: one line per
    (method, epsilon), the mean over seeds, with the min–max over seeds shaded."""
    from matplotlib.ticker import MaxNLocator

    figure, axes = _figure(11, 4.5, panels=2)
    panels = [("dev_accuracy", 100.0, "dev accuracy (%)"), ("train_loss", 1.0, "train loss")]
    for (method, epsilon), members in group_runs(runs).items():
        for ax, (field, scale, _) in zip(axes, panels, strict=True):
            values = _per_epoch(members, field)
            if not values:
                continue
            epochs = list(values)
            mean = [scale * statistics.fmean(v) for v in values.values()]
            (line,) = ax.plot(epochs, mean, marker="o", label=_label(method, epsilon))
            low = [scale * min(v) for v in values.values()]
            high = [scale * max(v) for v in values.values()]
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.15)
    for ax, (_, _, name) in zip(axes, panels, strict=True):
        ax.set_title(f"{name} per epoch (mean, min–max over seeds)")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    _save_png(figure, path)


# ---------------------------------------------------------------------------------------------
# files


def _run_entry(run: dict[str, Any]) -> dict[str, Any]:
    method, epsilon = run_key(run)
    output = run["config"].get("output")
    seed = run["config"]["seed"]
    default_id = f"{method}{'' if epsilon is None else f'-eps{epsilon:g}'}-seed{seed}"
    return {
        "id": Path(output).name if output else default_id,
        "method": method,
        "epsilon": epsilon,
        "seed": seed,
        "path": output,
    }


def write_report(
    runs: list[dict[str, Any]], out_dir: str | os.PathLike[str], attack: Any = None
) -> dict[str, Any]:
    """Write summary.json, summary.md, accuracy_vs_epsilon.png and training_curves.png into
    ``out_dir``, each atomically, and return the summary as written to summary.json: the
    output of ``summarize`` plus ``runs``, one {id, method, epsilon, seed, path} per run
    (id: the run folder's name, from ``config["output"]``). With ``attack`` (an
    ``advnlp.robustness.compare.AttackSweep``), also ``robustness`` and its two plots."""
    out = Path(out_dir)
    summary = {**summarize(runs), "runs": [_run_entry(run) for run in runs]}
    if attack is not None:
        summary["robustness"] = attack.summarize(runs)
    write_json_atomic(out / "summary.json", summary)
    write_text_atomic(out / "summary.md", markdown_table(summary))
    plot_accuracy_vs_epsilon(summary, out / "accuracy_vs_epsilon.png")
    plot_training_curves(runs, out / "training_curves.png")
    if attack is not None:
        from ..robustness.compare import write_plots

        write_plots(summary["robustness"], out)
    return summary
