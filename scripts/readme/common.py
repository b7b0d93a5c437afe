"""What the section modules share: the checkout's root (tests point it at a temporary folder)
and the markdown helpers."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's advnlp, installed or not


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _attack_delta(versus: dict | None) -> str:
    if versus is None or versus["accuracy_under_attack_diff_points_mean"] is None:
        return "—"
    std = versus["accuracy_under_attack_diff_points_std"]
    mean = f"{round(versus['accuracy_under_attack_diff_points_mean'], 2) + 0.0:+.2f}"
    return mean + " ± " + ("—" if std is None else f"{std:.2f}")
