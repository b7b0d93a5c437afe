"""What fgm_free keeps of FGM's gain, from this folder's summary.json (``advnlp compare``).

    python experiments/fgm_free/kept.py      # writes experiments/fgm_free/kept.md

For dev accuracy and for accuracy under each attack: each method's mean ± std over seeds, its
paired Δ against ``none`` (same seeds) with the paired t-test and McNemar's test, and the share
of FGM's Δ that fgm_free keeps (Δ fgm_free / Δ fgm), given only where FGM gained by more than
the std of its paired differences; and the runs that collapsed to one class.
"""

from __future__ import annotations

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _p(p: float | None) -> str:
    return "—" if p is None else f"{p:.2g}" if p < 0.001 else f"{p:.3f}"


def block(
    title: str, groups: list[dict], mean: str, std: str, diff: str, collapse: list[dict]
) -> list[str]:
    lines = [
        f"### {title}",
        "",
        "| method | ε | % (mean ± std) | Δ vs none (points) | paired t p | McNemar b/c, p |",
        "|---|---|---|---|---|---|",
    ]
    deltas, noise = {}, {}
    for g in groups:
        versus = g["vs_baseline"] or {}
        test = versus.get("mcnemar") or {}
        delta = versus.get(f"{diff}_mean")
        deltas[g["method"]] = delta
        noise[g["method"]] = versus.get(f"{diff}_std")
        cells = [
            g["method"],
            "—" if g["epsilon"] is None else f"{g['epsilon']:g}",
            f"{100 * g[mean]:.2f} ± {100 * g[std]:.2f}",
            "—" if delta is None else f"{delta:+.2f} ± {versus[f'{diff}_std']:.2f}",
            _p(versus.get("paired_t_p")),
            "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    fgm, free = deltas.get("fgm"), deltas.get("fgm_free")
    lines.append("")
    if fgm is None or free is None:
        lines.append("fgm or fgm_free is missing from the summary.")
    elif fgm <= noise["fgm"]:  # a mean gain smaller than its own spread over seeds is no gain
        lines.append(
            f"FGM did not gain here beyond the spread between seeds (Δ {fgm:+.2f} ± "
            f"{noise['fgm']:.2f} points): there is no gain for fgm_free to keep (fgm_free: Δ "
            f"{free:+.2f} ± {noise['fgm_free']:.2f} points)."
        )
    else:
        lines.append(
            f"fgm_free keeps {free / fgm:.0%} of FGM's gain (Δ {free:+.2f} ± "
            f"{noise['fgm_free']:.2f} against {fgm:+.2f} ± {noise['fgm']:.2f} points; the ratio "
            "of two noisy means)."
        )
    collapsed = [
        f"{g['method']} (seed {', '.join(map(str, g['collapsed_seeds']))})"
        for g in collapse
        if g.get("collapsed_seeds")
    ]
    if collapsed:
        lines.append(
            "Collapsed runs (the best model predicts one class for >= 90% of the dev examples): "
            f"{', '.join(collapsed)}."
        )
    return lines + [""]


def main() -> None:
    summary = json.loads((HERE / "summary.json").read_text(encoding="utf-8"))
    lines = block(
        "Dev accuracy",
        summary["groups"],
        "dev_accuracy_mean",
        "dev_accuracy_std",
        "dev_accuracy_diff_points",
        summary["groups"],
    )
    for result in (summary.get("robustness") or {}).get("results", []):
        setting = (
            f"r = {result['radius']:g}"
            if result["radius"] is not None
            else f"budget {result['budget']:g}"
        )
        lines += block(
            f"Accuracy under attack: {result['attack']}, {setting}",
            result["groups"],
            "accuracy_under_attack_mean",
            "accuracy_under_attack_std",
            "accuracy_under_attack_diff_points",
            summary["groups"],
        )
    (HERE / "kept.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
