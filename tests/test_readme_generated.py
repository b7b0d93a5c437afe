"""The README's result tables are what scripts/update_readme.py writes from the committed
summaries under experiments/ (so no number in them is typed by hand), and each committed
summary.md is what ``advnlp compare`` writes for its summary.json."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from . import scripts

# the modules of scripts/readme/ that write each kind of generated section
experiments, results, benchmarks = (
    scripts.readme(name) for name in ("experiments", "results", "benchmarks")
)

ROOT = Path(__file__).resolve().parents[1]


def test_readme_is_what_the_script_writes():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert scripts.readme("update").render(readme) == readme, (
        "README.md differs from its committed summaries: run python scripts/update_readme.py"
    )


def _summary_folders() -> list[str]:
    """The folders of SECTIONS and the compare folders the Results section reads (RESULTS)."""
    planned = [
        f"{folder}/{name}"
        for folder in results.RESULTS
        for name in scripts.readme("committed").planned_folders(ROOT / folder / "PLAN.md")
    ]
    return sorted(experiments.SECTIONS.values()) + planned


@pytest.mark.parametrize("folder", _summary_folders())
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

    runs = [_run("none", None, s, c) for s, c in ((0, 14), (1, 15), (2, 17))]
    runs += [_run("fgm", 0.1, s, c) for s, c in ((0, 16), (1, 15), (2, 18))]
    summary = summarize(runs)
    table = experiments.table(summary)
    assert "| none | — | 76.67 ± 7.64 | — | — | — |" in table
    assert "| fgm | 0.1 | 81.67 ± 7.64 | +5.00 ± 5.00 | 0.225 | 0/3, 0.250 |" in table
    changed = copy.deepcopy(summary)
    changed["groups"][1]["vs_baseline"]["mcnemar"]["b"] = 1
    assert experiments.table(changed) != table


# Benchmarks: each table is rendered from the JSON its benchmark wrote (benchmarks/results/).


@pytest.mark.parametrize("name", sorted(benchmarks.BENCHMARKS))
def test_committed_benchmark_json_has_its_context(name):
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    assert path.exists(), f"run benchmarks/{name}.py --output {path.relative_to(ROOT)}"
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["benchmark"] == name
    context = data["context"]
    for key in ("command", "date", "cpu_count", "torch_threads", "torch_version"):
        assert context[key] not in (None, ""), key
    assert len(context["load_average_start"]) == 3
    assert context["command"].startswith(f"python benchmarks/{name}.py")


# the measured numbers each benchmark's table shows, per row
RENDERED = {
    "step_cost": ["median_step_s", "time_ratio", "peak_mib", "extra_mib"],
    "cli_overhead": ["median_step_s", "vs_plain"],
    "ddp_cost": [
        "median_step_s",
        "all_reduce",
        "all_reduce_bytes",
        "all_gather",
        "all_gather_bytes",
    ],
    "determinism_cost": ["default_s", "deterministic_s", "ratio"],
    "attack_speed": ["seconds", "examples_per_s", "queries_per_s", "model_seconds", "mean_queries"],
    "fsdp_cost": [
        "median_step_s",
        "time_ratio",
        "reduce_scatters",
        "fsdp_all_gathers",
        "other_collectives",
        "largest_other_collective_kib",
    ],
}


def _rows(name: str, data: dict) -> list[tuple[dict, list[str]]]:
    """Each row of measured numbers in ``data``, with the keys of it the table shows."""
    if name != "ddp_cost":
        return [(row, RENDERED[name]) for row in data["rows"]]
    one, two = data["processes"]["1"], data["processes"]["2"]  # counts: 2 processes only
    return [(row, ["median_step_s"]) for row in one.values()] + [
        (row, RENDERED[name]) for row in two.values()
    ]


@pytest.mark.parametrize("name", sorted(benchmarks.BENCHMARKS))
def test_every_benchmark_table_comes_from_its_json(name):
    """The section changes when any measured number it shows changes in the JSON, in any row,
    and when the context does."""
    assert set(RENDERED) == set(benchmarks.BENCHMARKS)
    path = ROOT / "benchmarks" / "results" / f"{name}.json"
    assert path.exists(), f"run benchmarks/{name}.py --output {path.relative_to(ROOT)}"
    data = json.loads(path.read_text(encoding="utf-8"))
    rendered = benchmarks.BENCHMARKS[name](data)
    checked = 0
    for index, (row, keys) in enumerate(_rows(name, data)):
        for key in keys:
            if row.get(key) is None:
                continue
            changed = copy.deepcopy(data)
            _rows(name, changed)[index][0][key] = (row[key] + 1) * 1024  # visible in any unit
            assert benchmarks.BENCHMARKS[name](changed) != rendered, (index, key)
            checked += 1
    assert checked >= len(_rows(name, data))
    context = copy.deepcopy(data)
    context["context"]["load_average_start"][0] += 7
    assert benchmarks.benchmark_context(context) != benchmarks.benchmark_context(data)


def _step_cost_module():
    return scripts.benchmark("step_cost")


def test_step_cost_measures_every_registered_method():
    """step_cost reads its rows from the registry, so a method registered later is measured."""
    import advnlp

    rows = _step_cost_module().rows_available()
    assert set(advnlp.method_names()) <= set(rows)


def test_step_cost_section_names_the_methods_its_json_lacks():
    """A method registered after the committed run is named in the README, not silently left out."""
    path = ROOT / "benchmarks" / "results" / "step_cost.json"
    assert path.exists(), "run benchmarks/step_cost.py --output benchmarks/results/step_cost.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    measured = {r["method"] for r in data["rows"]}
    text = benchmarks.step_cost(data)
    import advnlp

    if set(advnlp.method_names()) <= measured:
        assert "not measured yet" not in text
    dropped = copy.deepcopy(data)
    dropped["rows"] = [r for r in data["rows"] if r["method"] != "fgm_free"]
    assert "Registered since this run, not measured yet: fgm_free" in benchmarks.step_cost(dropped)


def test_committed_figures_show_the_committed_summaries():
    pytest.importorskip("scipy")
    pytest.importorskip("matplotlib")
    assert results.stale_figures() == [], "run python scripts/update_readme.py"
