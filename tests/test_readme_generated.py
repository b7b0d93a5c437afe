"""The README's result tables are what scripts/update_readme.py writes from the committed
summaries under experiments/ (so no number in them is typed by hand), and each committed
summary.md is what ``advnlp compare`` writes for its summary.json."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script():
    path = ROOT / "scripts" / "update_readme.py"
    spec = importlib.util.spec_from_file_location("update_readme", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_what_the_script_writes():
    update_readme = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert update_readme.render(readme) == readme, (
        "README.md differs from its committed summaries: run python scripts/update_readme.py"
    )


@pytest.mark.parametrize("folder", sorted(_script().SECTIONS.values()))
def test_committed_summary_md_matches_summary_json(folder):
    pytest.importorskip("scipy")
    from advnlp.experiment.report import markdown_table

    if not (ROOT / folder / "summary.json").exists():
        pytest.skip(f"no summary committed in {folder} yet")
    summary = json.loads((ROOT / folder / "summary.json").read_text(encoding="utf-8"))
    assert (ROOT / folder / "summary.md").read_text(encoding="utf-8") == markdown_table(summary)


def _run(method: str, epsilon: float | None, seed: int, correct: int) -> dict:
    labels = [i % 2 for i in range(20)]
    predictions = [y if i < correct else 1 - y for i, y in enumerate(labels)]
    kwargs = {} if epsilon is None else {"epsilon": epsilon}
    return {
        "config": {"method": method, "method_kwargs": kwargs, "seed": seed},
        "dev": {"accuracy": correct / 20, "macro_f1": correct / 20 - 0.05},
        "dev_labels": labels,
        "dev_predictions": predictions,
    }


def test_every_number_of_the_table_comes_from_the_summary():
    """The table shows the summary's numbers, and changes when one of them does."""
    pytest.importorskip("scipy")
    from advnlp.experiment.report import summarize

    update_readme = _script()
    runs = [_run("none", None, s, c) for s, c in ((0, 14), (1, 15), (2, 17))]
    runs += [_run("fgm", 0.1, s, c) for s, c in ((0, 16), (1, 15), (2, 18))]
    summary = summarize(runs)
    table = update_readme.table(summary)
    assert "| none | — | 76.67 ± 7.64 | — | — | — |" in table
    assert "| fgm | 0.1 | 81.67 ± 7.64 | +5.00 ± 5.00 | 0.225 | 0/3, 0.250 |" in table
    changed = copy.deepcopy(summary)
    changed["groups"][1]["vs_baseline"]["mcnemar"]["b"] = 1
    assert update_readme.table(changed) != table
