"""The statistics of ``advnlp compare``'s report: runs grouped by (method, epsilon) and paired
by seed, means and sample standard deviations over seeds, the paired t-test and McNemar's exact
test. A value that cannot be computed is ``None`` (never NaN, so the summary stays valid JSON);
scipy is imported only where a test needs it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .results import RunResult

BASELINE = "none"
Key = tuple[str, float | None]  # (method, epsilon)


def as_result(run: RunResult | Mapping[str, Any]) -> RunResult:
    """``run``, or the RunResult of a results.json dict (as ``json.load`` gives it)."""
    return run if isinstance(run, RunResult) else RunResult.from_json(run, "a run's results")


def run_key(run: RunResult) -> Key:
    """(method, epsilon) of one run; epsilon is ``None`` when the method takes none."""
    epsilon = run.config.method_kwargs.get("epsilon")
    return run.config.method, None if epsilon is None else float(epsilon)


def _sort_key(key: Key) -> tuple[bool, str, bool, float]:
    method, epsilon = key
    return method != BASELINE, method, epsilon is not None, epsilon or 0.0


def group_runs(runs: Iterable[RunResult | Mapping[str, Any]]) -> dict[Key, list[RunResult]]:
    """Runs by (method, epsilon), baseline first, then by method and epsilon; within a group,
    by seed. Raises ValueError when a (method, epsilon, seed) appears twice."""
    groups: dict[Key, list[RunResult]] = {}
    for run in map(as_result, runs):
        groups.setdefault(run_key(run), []).append(run)
    for (method, epsilon), members in groups.items():
        seeds = [run.config.seed for run in members]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{method} epsilon={epsilon}: seeds {seeds} repeat a seed")
        members.sort(key=lambda run: run.config.seed)
    return {key: groups[key] for key in sorted(groups, key=_sort_key)}


def group_label(method: str, epsilon: float | None) -> str:
    return method if epsilon is None else f"{method} ε={epsilon:g}"


def finite(value: float | None) -> float | None:
    """``value`` as a plain float, or None when missing or not finite (no NaN in JSON)."""
    return None if value is None or not math.isfinite(value) else float(value)


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1) of the present values; std is None below two values (one
    seed says nothing about the spread)."""
    present = [v for v in values if v is not None]
    if not present:
        return None, None
    std = statistics.stdev(present) if len(present) > 1 else None
    return finite(statistics.fmean(present)), finite(std)


def median(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return finite(statistics.median(present)) if present else None


def paired_t_p(method: Sequence[float], baseline: Sequence[float]) -> float | None:
    """Two-sided paired t-test p-value; None below two pairs or when the differences are
    constant up to rounding (1e-12: accuracies are fractions), where t is undefined."""
    differences = [m - b for m, b in zip(method, baseline, strict=True)]
    if len(differences) < 2 or max(differences) - min(differences) <= 1e-12:
        return None
    from scipy.stats import ttest_rel

    return finite(ttest_rel(method, baseline).pvalue)


def mcnemar(pairs: Iterable[tuple[RunResult, RunResult]]) -> dict[str, Any]:
    """McNemar's exact test on dev predictions pooled over (baseline run, method run) pairs.

    b counts the examples the baseline got right and the method wrong, c the reverse; p is the
    two-sided exact binomial test of min(b, c) successes in b + c trials (None when b + c = 0,
    or b, c and p all None when a run lacks its dev predictions).
    """
    b = c = 0
    for base, other in pairs:
        labels = base.dev_labels
        base_pred, other_pred = base.dev_predictions, other.dev_predictions
        if labels is None or base_pred is None or other_pred is None:
            return {"b": None, "c": None, "p": None}
        if other.dev_labels != labels or {len(base_pred), len(other_pred)} != {len(labels)}:
            seed = base.config.seed
            raise ValueError(f"seed {seed}: the runs' dev labels or predictions do not match")
        for truth, x, y in zip(labels, base_pred, other_pred, strict=True):
            b += x == truth and y != truth
            c += x != truth and y == truth
    if b + c == 0:
        return {"b": b, "c": c, "p": None}
    from scipy.stats import binomtest

    return {"b": b, "c": c, "p": finite(binomtest(min(b, c), b + c, 0.5).pvalue)}
