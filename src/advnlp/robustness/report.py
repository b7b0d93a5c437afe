"""Files of an attack report: attack.json, attack.md, examples.jsonl and attack.png.

Accuracies are fractions in the JSON files and percent in the table and the plot.
matplotlib is imported inside :func:`plot`, so importing this module loads nothing heavy.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from ..experiment.io import write_bytes_atomic, write_json_atomic, write_text_atomic
from ..experiment.report import markdown
from .attack import Report

HEADER = (
    "TextAttack's metrics: clean accuracy; accuracy under attack (examples still right after "
    "the attack / all); success rate (successful / originally right); perturbed % (mean share "
    "of units edited, successful attacks); queries (mean model queries per attacked example; "
    "embedding: forward passes). Budget: share of units (characters, words or tokens) the "
    "attack may edit; radius: L2 norm of the embedding perturbation / the input's own."
)
COLUMNS = (
    "attack",
    "budget / radius",
    "n",
    "clean acc %",
    "acc under attack %",
    "success rate %",
    "perturbed %",
    "queries",
    "examples/s",
)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def markdown_table(report: Report) -> str:
    rows = []
    for result in report.results:
        m = result.metrics
        setting = f"r={result.radius:g}" if result.radius is not None else f"{result.budget:g}"
        rows.append(
            [
                result.attack,
                setting,
                str(m.n),
                _percent(m.clean_accuracy),
                _percent(m.accuracy_under_attack),
                _percent(m.success_rate),
                _percent(m.mean_perturbed_fraction),
                "—" if m.mean_queries is None else f"{m.mean_queries:.1f}",
                f"{result.examples_per_second:.2f}",
            ]
        )
    return markdown(COLUMNS, rows)


def plot(report: Report, path: Path) -> None:
    """Accuracy under attack against the budget (discrete attacks) and the radius (embedding)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    discrete = [r for r in report.results if r.radius is None]
    embedding = [r for r in report.results if r.radius is not None]
    panels = [p for p in (("budget", discrete), ("radius", embedding)) if p[1]]
    figure = Figure(figsize=(5.5 * len(panels), 4))
    FigureCanvasAgg(figure)
    for number, (axis_name, results) in enumerate(panels, 1):
        axes = figure.add_subplot(1, len(panels), number)
        for name in dict.fromkeys(r.attack for r in results):
            points = sorted(
                (r.budget if axis_name == "budget" else r.radius, r.metrics.accuracy_under_attack)
                for r in results
                if r.attack == name and r.metrics.accuracy_under_attack is not None
            )
            axes.plot(
                [x if axis_name == "radius" else 100 * x for x, _ in points],
                [100 * y for _, y in points],
                marker="o",
                label=name,
            )
        clean = results[0].metrics.clean_accuracy
        if clean is not None:
            axes.axhline(100 * clean, color="grey", linestyle="--", label="clean")
        axes.set_xlabel("edit budget (% of units)" if axis_name == "budget" else "radius r")
        axes.set_ylabel("accuracy under attack (%)")
        axes.set_ylim(0, 100)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    write_bytes_atomic(path, buffer.getvalue())


def write_report(report: Report, folder: str | Path) -> dict[str, Path]:
    """Write the four files into ``folder`` (created if needed); returns their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "json": out / "attack.json",
        "table": out / "attack.md",
        "examples": out / "examples.jsonl",
        "plot": out / "attack.png",
    }
    lines = []
    for result in report.results:
        for example in result.examples:
            record = {"attack": result.attack, "budget": result.budget, "radius": result.radius}
            lines.append(json.dumps({**record, **example.to_json()}, ensure_ascii=False))
    write_text_atomic(paths["examples"], "".join(line + "\n" for line in lines))
    write_text_atomic(paths["table"], HEADER + "\n\n" + markdown_table(report) + "\n")
    plot(report, paths["plot"])
    write_json_atomic(paths["json"], report.to_json())  # last: the report is complete
    return paths
