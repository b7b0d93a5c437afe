"""What the Results section concludes: the verdict rule ("beat none" or not, clean and under each
attack), a method's gains against none, and the sentences and headline parts built on them."""

from __future__ import annotations

from typing import NamedTuple

from advnlp.experiment.report import BASELINE, COLLAPSE_SHARE, _delta, _p
from advnlp.robustness.compare import result_label

from .common import _attack_delta
from .labels import chosen_hyperparameters, epsilon_text, method_label, seed_text

P_LIMIT = 0.05  # the paired t-test's level in the verdict rule (``verdict``)
BEAT = f"beat {BASELINE}"  # ``verdict``'s outcome for a method that gained
# A model that predicts one class keeps that class's share of the sample under any attack (the
# epsilon grid's GP 1000 "beat none" under typos by 9.8 points so): no verdict under attack.
NOT_JUDGED = "not judged, collapsed"
COLLAPSED_UNDER_ATTACK = (
    "which keeps that class's share under any attack, so its Δs under attack are not judged"
)


def verdict(delta: float | None, spread: float | None, p: float | None) -> str:
    """The rule behind the Results section's sentences: a method "beat none" when its mean Δ
    (points) is above none's std over the same seeds (points, the seed spread) and the paired
    t-test over those seeds gives p < P_LIMIT; it was worse when both hold the other way; any
    other case "did not help". Without a spread or a p (one seed) nothing can be said."""
    if delta is None or spread is None or p is None:
        return "cannot be judged (fewer than two paired seeds)"
    if p < P_LIMIT and abs(delta) > spread:
        return BEAT if delta > 0 else "did not help: worse than none"
    return "did not help"


def _baseline(groups: list[dict]) -> dict | None:
    return next((g for g in groups if g["method"] == BASELINE and g["epsilon"] is None), None)


def _spread(group: dict | None, key: str) -> float | None:
    """none's std over its seeds, in points (None without none or with one seed)."""
    return None if group is None or group[key] is None else 100 * group[key]


def _judged(outcome: str, shown: str, spread: float | None, p: float | None) -> str:
    spread_text = "—" if spread is None else f"{spread:.2f}"
    return f"{outcome} (Δ {shown} points, {BASELINE}'s std {spread_text}, paired t p {_p(p)})"


class Comparison(NamedTuple):
    """A group against none in one setting: clean or under one attack."""

    where: str  # "clean" or "under <attack label>"
    delta: float | None  # mean Δ over the paired seeds, points
    std: float | None  # std of the paired differences, points
    spread: float | None  # none's std over its seeds in this setting, points
    p: float | None  # paired t-test
    shown: str  # the Δ as the tables show it


def comparisons(summary: dict, group: dict) -> list[Comparison]:
    """The group against none, clean and under each attack setting it was measured in."""
    versus = group["vs_baseline"]
    found = [
        Comparison(
            "clean",
            versus["dev_accuracy_diff_points_mean"],
            versus["dev_accuracy_diff_points_std"],
            _spread(_baseline(summary["groups"]), "dev_accuracy_std"),
            versus["paired_t_p"],
            _delta(versus),
        )
    ]
    for result in (summary.get("robustness") or {}).get("results") or []:
        attacked = _under(result, group)
        if attacked is None or attacked["vs_baseline"] is None:
            continue
        at = attacked["vs_baseline"]
        found.append(
            Comparison(
                f"under {result_label(result)}",
                at["accuracy_under_attack_diff_points_mean"],
                at["accuracy_under_attack_diff_points_std"],
                _spread(_baseline(result["groups"]), "accuracy_under_attack_std"),
                at["paired_t_p"],
                _attack_delta(at),
            )
        )
    return found


def method_gains(summary: dict, group: dict) -> dict[str, tuple[float, float | None, str]]:
    """A group's mean Δ against none (points), the std of its paired differences and
    ``verdict``'s outcome, clean ("clean") and under each attack (by its label)."""
    return {
        c.where: (c.delta, c.std, verdict(c.delta, c.spread, c.p))
        for c in comparisons(summary, group)
    }


def results_findings(task: str, found: dict[str, tuple[dict, dict]]) -> list[str]:
    """One sentence per method of the task: ``verdict`` on clean accuracy and under each attack."""
    sentences = []
    for name, (summary, settings) in found.items():
        attacks = (summary.get("robustness") or {}).get("results") or []
        for group in summary["groups"]:
            versus = group["vs_baseline"]
            if versus is None:
                continue
            collapsed = bool(group.get("collapsed_seeds"))
            judged = len(versus["paired_seeds"] or []) >= 2
            if not judged:  # say once that nothing can be judged
                parts = [_unjudged(summary, group)]
            else:
                parts = [
                    f"{'clean accuracy' if c.where == 'clean' else c.where}: "
                    + _judged(_outcome(c, collapsed), c.shown, c.spread, c.p)
                    for c in comparisons(summary, group)
                ]
            if not attacks:
                parts.append("under attack: not measured yet")
            if collapsed:  # say it in words, not only in the table's column
                share = summary.get("collapse_share", COLLAPSE_SHARE)
                parts.insert(
                    0,
                    f"collapsed on {len(group['collapsed_seeds'])} of {len(group['seeds'])} "
                    f"seeds ({seed_text(group['collapsed_seeds'])}): the best model predicts one "
                    f"class for >= {100 * share:.0f}% of dev"
                    + (f", {COLLAPSED_UNDER_ATTACK}" if attacks and judged else ""),
                )
            label = method_label(group, settings)
            sentences.append(
                f"- {task}, {label} (`{name}`, seeds {seed_text(group['seeds'])}): "
                + "; ".join(parts)
                + "."
            )
    return sentences


def _outcome(comparison: Comparison, collapsed: bool) -> str:
    """``verdict``'s outcome, except under attack for a group with collapsed seeds."""
    if collapsed and comparison.where != "clean":
        return NOT_JUDGED
    return verdict(comparison.delta, comparison.spread, comparison.p)


def _unjudged(summary: dict, group: dict) -> str:
    """The sentence part of a group paired with none on fewer than two seeds: its Δ, clean and
    under each attack, without a verdict (no spread, no test)."""
    compared = comparisons(summary, group)
    shown = [f"{c.where} {c.delta:+.2f}" for c in compared if c.delta is not None]
    if not shown:
        return f"no seed paired with {BASELINE}, not judged"
    return "one paired seed, not judged (no seed spread, no test): Δ " + ", ".join(shown)


def _under(result: dict, group: dict) -> dict | None:
    """The group of the same method and epsilon in one attack setting's result, if any."""
    key = (group["method"], group["epsilon"])
    return next((g for g in result["groups"] if (g["method"], g["epsilon"]) == key), None)


def kept_sentence(task: str, found: dict[str, tuple[dict, dict]]) -> str | None:
    """Issue 14, item 3: what the ~1x-cost FreeFGM keeps of FGM's gain at the same epsilon (FGM
    in its absolute unit and token scope, FreeFGM's only semantics): both mean Δ, clean and
    under each attack, and their ratio where FGM's own gain beat none (elsewhere a ratio of two
    noisy numbers would say nothing) and both ran on the same seeds. None without both in the
    task's summaries."""
    paired = [
        (name, summary, settings, group)
        for name, (summary, settings) in found.items()
        for group in summary["groups"]
        if group["vs_baseline"] is not None and group["vs_baseline"]["paired_seeds"] is not None
    ]
    cheap_found = next((p for p in paired if p[3]["method"] == "fgm_free"), None)
    if cheap_found is None:
        return None
    cheap_name, cheap_summary, _, cheap = cheap_found
    fgm_found = next(
        (
            p
            for p in paired
            if p[3]["method"] == "fgm"
            and p[3]["epsilon"] == cheap["epsilon"]
            and chosen_hyperparameters(p[3], p[2]).get("scope") == "token"
            and chosen_hyperparameters(p[3], p[2]).get("epsilon_unit") == "absolute"
        ),
        None,
    )
    if fgm_found is None:
        return None
    fgm_name, fgm_summary, _, fgm = fgm_found
    kept, full = method_gains(cheap_summary, cheap), method_gains(fgm_summary, fgm)
    same_seeds = cheap["seeds"] == fgm["seeds"]  # else two means over other seeds: no ratio
    parts = []
    for where, (delta, _, _) in kept.items():
        if where not in full:
            continue
        fgm_delta, _, fgm_outcome = full[where]
        if not same_seeds:
            share = " (no ratio: other seeds)"
        elif fgm_outcome == BEAT:
            share = f" ({100 * delta / fgm_delta:.0f}%)"
        else:
            share = " (FGM did not beat none)"
        parts.append(f"{where} {delta:+.2f} of {fgm_delta:+.2f}{share}")
    return (
        f"- {task}, what the ~1x-cost fgm_free ε {cheap['epsilon']:g} (`{cheap_name}`, seeds "
        f"{seed_text(cheap['seeds'])}) keeps of fgm ε {fgm['epsilon']:g}'s gain (`{fgm_name}`, "
        f"seeds {seed_text(fgm['seeds'])}), mean Δ against none in points: "
        + "; ".join(parts)
        + "."
    )


def headline_part(summary: dict, settings: dict, group: dict, seeds: list[int]) -> str:
    """One method's part of a task's headline: clean Δ and verdict, then the range of its Δ
    under attack and in how many attack settings it beat none (its seeds named where they are
    not the task's ``seeds``)."""
    label = method_label(group, settings)
    if group["seeds"] != seeds:
        label += f" (seeds {seed_text(group['seeds'])})"
    if group.get("collapsed_seeds"):
        collapsed = group["collapsed_seeds"]
        return f"{label}: collapsed on {len(collapsed)} of {len(group['seeds'])} seeds"
    if len(group["vs_baseline"]["paired_seeds"] or []) < 2:
        return f"{label}: one seed, not judged"
    gains = method_gains(summary, group)
    clean, _, outcome = gains.pop("clean")
    text = f"{label}: {clean:+.2f} clean ({outcome})"
    attacked = [(mean, judged) for mean, _, judged in gains.values() if mean is not None]
    if attacked:
        low, high = min(m for m, _ in attacked), max(m for m, _ in attacked)
        beat = sum(judged == BEAT for _, judged in attacked)
        text += (
            f", {low:+.2f} to {high:+.2f} under attack ({BEAT} in {beat} of {len(attacked)} "
            "settings)"
        )
    return text


class GridLine(NamedTuple):
    """One method run at several epsilons in one compare folder (issue 14's epsilon grid)."""

    name: str  # the compare folder
    label: str  # the method, with its epsilon unit and scope when it has them
    epsilons: list[float]
    collapsed: list[float]  # epsilons with collapsed seeds, left out of the peaks
    # clean ("clean") and under each attack: (peak epsilon, its mean Δ, its verdict, the
    # epsilons that beat none, those that did worse)
    peaks: dict[str, tuple[float, float, str, list[float], list[float]]]


def grid_lines(found: dict[str, tuple[dict, dict]]) -> list[GridLine]:
    """Each method with two or more epsilons against none: where its mean Δ peaks, clean and
    under each attack, where it beat none and where it did worse (``verdict``), and the
    epsilons at which it collapsed."""
    lines = []
    for name, (summary, settings) in found.items():
        by_method: dict[str, list[dict]] = {}
        for group in summary["groups"]:
            if group["epsilon"] is not None and group["vs_baseline"] is not None:
                by_method.setdefault(group["method"], []).append(group)
        for method, groups in by_method.items():
            if len(groups) < 2:
                continue
            _, _, unit = epsilon_text(groups[0], settings).partition(" ")  # "relative, token scope"
            gains = {
                g["epsilon"]: method_gains(summary, g)
                for g in groups
                if not g.get("collapsed_seeds")
            }
            peaks = {}
            for where in dict.fromkeys(w for gain in gains.values() for w in gain):
                points = {
                    e: gain[where]
                    for e, gain in gains.items()
                    if where in gain and gain[where][0] is not None
                }
                if not points:
                    continue
                peak = max(points, key=lambda e: points[e][0])
                beat = [e for e, (_, _, outcome) in points.items() if outcome == BEAT]
                worse = [e for e, (_, _, outcome) in points.items() if "worse" in outcome]
                peaks[where] = (peak, points[peak][0], points[peak][2], beat, worse)
            lines.append(
                GridLine(
                    name,
                    method + (f" ({unit})" if unit else ""),
                    [g["epsilon"] for g in groups],
                    [g["epsilon"] for g in groups if g.get("collapsed_seeds")],
                    peaks,
                )
            )
    return lines


def grid_sentences(task: str, found: dict[str, tuple[dict, dict]]) -> list[str]:
    """``grid_lines`` in words, one sentence per method, for the Results section."""
    sentences = []
    for line in grid_lines(found):
        parts = [f"collapsed at ε {_epsilons(line.collapsed)}"] if line.collapsed else []
        for where, (peak, delta, outcome, beat, worse) in line.peaks.items():
            text = f"{where}: peak at ε {peak:g} ({delta:+.2f}, {outcome})"
            text += f", {BEAT} at ε {_epsilons(beat)}" if beat else f", never {BEAT}"
            if worse:
                text += f", worse than {BASELINE} at ε {_epsilons(worse)}"
            parts.append(text)
        sentences.append(
            f"- {task}, {line.label} over ε {_epsilons(line.epsilons)} (`{line.name}`, "
            f"mean Δ in points): " + "; ".join(parts) + "."
        )
    return sentences


def grid_headline(line: GridLine) -> str:
    """A method's grid in one line for the README's headline: the clean peak, the peaks under
    attack, and where it did worse than none or collapsed."""
    low, high = min(line.epsilons), max(line.epsilons)
    text = f"{line.label}, ε {low:g} to {high:g}:"
    peaks = dict(line.peaks)
    if "clean" in peaks:
        peak, delta, outcome, _, _ = peaks.pop("clean")
        text += f" clean peak {delta:+.2f} at ε {peak:g} ({outcome})"
    if peaks:
        at = [peak for peak, *_ in peaks.values()]
        where = f"{at[0]:g}" if len(set(at)) == 1 else ", ".join(f"{e:g}" for e in at)
        deltas = ", ".join(f"{delta:+.2f}" for _, delta, *_ in peaks.values())
        beat = sum(outcome == BEAT for _, _, outcome, _, _ in peaks.values())
        text += (
            f"; under attack ({len(peaks)} setting{'s' * (len(peaks) > 1)}) peaks at ε {where} "
            f"({deltas}; {BEAT} at {beat} of {len(peaks)})"
        )
    worse = [f"{w} at ε {_epsilons(bad)}" for w, (*_, bad) in line.peaks.items() if bad]
    if worse:
        text += f"; worse than {BASELINE}: {', '.join(worse)}"
    if line.collapsed:
        text += f"; collapsed at ε {_epsilons(line.collapsed)}"
    return text


def _epsilons(values: list[float]) -> str:
    return ", ".join(f"{value:g}" for value in sorted(values))
