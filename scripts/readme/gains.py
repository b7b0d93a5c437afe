"""The Results section's figure of a task (``gains.png`` in its experiment folder): each method's
Δ against none, clean and under each attack, as bars with the std of the paired differences.

The numbers drawn are stored in the PNG itself (its "Description" text chunk, as JSON), so a
test can check that a committed figure shows what the committed summaries say without
comparing pixels, which differ between matplotlib versions. The data comes from results.py's
``gain_data``; this module only draws and reads it back.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

FIGURE = "gains.png"
KEY = "Description"  # the PNG text chunk that holds the data


def draw(data: dict, title: str, path: Path) -> None:
    """One row of bars per method (data["groups"], top to bottom), one bar per setting (clean,
    then each attack): the mean Δ in points with the std over seeds as an error bar. A bar whose
    setting the method beat none in (the Results section's rule) is solid, the others pale."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    groups = data["groups"]
    settings = list(dict.fromkeys(where for g in groups for where in g["gains"]))
    height = 1.8 + 0.28 * len(settings) * max(len(groups), 1)
    figure = Figure(figsize=(8, height), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    palette = [f"C{i}" for i in range(len(settings))]
    bar = 0.8 / max(len(settings), 1)
    for s, (where, color) in enumerate(zip(settings, palette, strict=True)):
        for row, group in enumerate(groups):
            if where not in group["gains"]:
                continue
            mean, std, beat = group["gains"][where]
            y = row + (s - (len(settings) - 1) / 2) * bar
            ax.barh(y, mean, height=bar, color=color, alpha=1.0 if beat else 0.35)
            if std is not None:
                ax.errorbar(mean, y, xerr=std, color="black", capsize=2, linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(groups)), [g["label"] for g in groups])
    ax.invert_yaxis()
    ax.set_xlabel("Δ accuracy vs none (points): mean ± std of the paired differences over seeds")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=c, label=w) for w, c in zip(settings, palette, strict=True)]
    handles.append(Patch(color="gray", alpha=0.35, label="pale: did not beat none"))
    figure.legend(handles=handles, fontsize="small", loc="outside lower center", ncols=3)
    buffer = io.BytesIO()
    metadata = {KEY: json.dumps(data, sort_keys=True), "Software": None}
    figure.savefig(buffer, format="png", dpi=110, metadata=metadata)
    path.write_bytes(buffer.getvalue())


def read(path: Path) -> dict | None:
    """The data a figure was drawn from (None for a missing file or one without it)."""
    if not path.exists():
        return None
    from PIL import Image

    with Image.open(path) as image:
        text = image.text.get(KEY)
    return None if text is None else json.loads(text)
