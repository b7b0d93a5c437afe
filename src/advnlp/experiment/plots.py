"""The plots of ``advnlp compare``: accuracy against epsilon, and training curves. matplotlib
is imported inside the functions (drawn by the Agg canvas, without pyplot's global state)."""

from __future__ import annotations

import io
import math
import os
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .io import write_bytes_atomic
from .results import COLLAPSE_SHARE, RunResult
from .stats import BASELINE, group_label, group_runs


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


def collapsed_points(groups: list[dict[str, Any]]) -> frozenset[tuple[str, float | None]]:
    """The (method, epsilon) of the summary's groups with at least one collapsed seed."""
    return frozenset((g["method"], g["epsilon"]) for g in groups if g.get("collapsed_seeds"))


COLLAPSED_LABEL = f"collapsed seeds (one class for ≥ {COLLAPSE_SHARE:.0%} of dev)"


def draw_against_epsilon(
    ax: Any,
    groups: list[dict[str, Any]],
    metric: str,
    collapsed: frozenset[tuple[str, float | None]] = frozenset(),
) -> None:
    """On ``ax``: ``metric``'s mean (%) against epsilon with std error bars, one line per method
    that takes an epsilon, and the baseline as a horizontal line with a shaded ±std band
    (``metric`` names the groups' ``<metric>_mean`` and ``<metric>_std``). The x axis is
    logarithmic when the epsilons are all positive and span more than 10x (a grid over decades
    would otherwise crowd all but its largest points at the left edge). Points in ``collapsed``
    (``collapsed_points``) are crossed out in red: a model that predicts one class scores that
    class's share under any attack, which would otherwise read as robustness."""
    for method in dict.fromkeys(g["method"] for g in groups if g["epsilon"] is not None):
        rows = [g for g in groups if g["method"] == method and g["epsilon"] is not None]
        ax.errorbar(
            [g["epsilon"] for g in rows],
            [100 * g[f"{metric}_mean"] for g in rows],
            yerr=[100 * (g[f"{metric}_std"] or 0.0) for g in rows],
            marker="o",
            capsize=3,
            label=method,
        )
    crossed = [
        g for g in groups if (g["method"], g["epsilon"]) in collapsed and g["epsilon"] is not None
    ]
    if crossed:
        ax.scatter(
            [g["epsilon"] for g in crossed],
            [100 * g[f"{metric}_mean"] for g in crossed],
            marker="x",
            s=120,
            color="red",
            zorder=3,
            label=COLLAPSED_LABEL,
        )
    for g in groups:
        if g["method"] == BASELINE and g["epsilon"] is None:
            mean, std = 100 * g[f"{metric}_mean"], 100 * (g[f"{metric}_std"] or 0.0)
            ax.axhline(mean, color="black", linestyle="--", label=f"{BASELINE} (± std band)")
            if std:
                ax.axhspan(mean - std, mean + std, color="gray", alpha=0.2)
    epsilons = [g["epsilon"] for g in groups if g["epsilon"] is not None]
    if epsilons and min(epsilons) > 0 and max(epsilons) > 10 * min(epsilons):
        ax.set_xscale("log")


def plot_accuracy_vs_epsilon(summary: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """PNG of dev accuracy (%) against epsilon (``draw_against_epsilon``)."""
    figure, (ax,) = _figure(7, 4.5)
    groups = summary["groups"]
    draw_against_epsilon(ax, groups, "dev_accuracy", collapsed_points(groups))
    ax.set_title("Dev accuracy vs epsilon (mean ± std over seeds)")
    ax.set_xlabel("epsilon")
    ax.set_ylabel("dev accuracy (%)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    ax.grid(alpha=0.3)
    _save_png(figure, path)


def _per_epoch(members: list[RunResult], field: str) -> dict[int, list[float]]:
    """Values of ``field`` by epoch over the seeds that have a finite one."""
    values: dict[int, list[float]] = {}
    for run in members:
        for row in run.epochs:
            value = getattr(row, field)
            if value is not None and math.isfinite(value):
                values.setdefault(row.epoch, []).append(value)
    return dict(sorted(values.items()))


def plot_training_curves(
    runs: Iterable[RunResult | Mapping[str, Any]], path: str | os.PathLike[str]
) -> None:
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
            (line,) = ax.plot(epochs, mean, marker="o", label=group_label(method, epsilon))
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
