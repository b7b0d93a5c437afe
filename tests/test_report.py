"""The report of ``advnlp compare``: paired statistics checked against numbers computed by hand
on synthetic runs, the markdown table, the PNGs, and atomic, NaN-free files."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("scipy")

from advnlp.experiment import report  # noqa: E402
from advnlp.experiment.results import Epoch, RunResult, Scores  # noqa: E402
from advnlp.experiment.run_config import RunConfig  # noqa: E402

N = 40
LABELS = [i % 2 for i in range(N)]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

# (method, epsilon) -> seed -> indices of the dev examples the run gets wrong.
WRONG = {
    ("none", None): {0: set(range(10)), 1: set(range(8)), 2: set(range(12))},  # .75 .80 .70
    # the baseline minus two errors on every seed: +5 points each, b = 0, c = 2 per seed
    ("fgm", 0.1): {0: set(range(2, 10)), 1: set(range(2, 8)), 2: set(range(2, 12))},
    # no seed 2: paired on seeds 0 and 1 only; b = 1 + 3, c = 4 + 0
    ("fgm", 0.5): {0: set(range(4, 10)) | {20}, 1: set(range(8)) | {20, 21, 22}},
    # b = 4 + 3 + 3 = 10, c = 2 + 0 + 0 = 2
    ("gp", 1.0): {
        0: set(range(2, 10)) | {20, 21, 22, 23},
        1: set(range(8)) | {20, 21, 22},
        2: set(range(12)) | {20, 21, 22},
    },
}
STEP_TIME = {"none": [0.10, 0.30, 0.20], "fgm": [0.40, 0.40, 0.40], "gp": [0.50, 0.55, 0.45]}


def make_run(method: str, epsilon: float | None, seed: int, wrong: set[int]) -> RunResult:
    """A run as ``advnlp train`` records it: built with the writer's types, then read back from
    its JSON text, so that the report reads exactly what the writer writes."""
    accuracy = 1 - len(wrong) / N
    config = RunConfig(
        train="train.jsonl",
        dev="dev.jsonl",
        output=f"out/runs/{method}-seed{seed}" if epsilon is None else None,
        model="scratch-small",
        method=method,
        method_kwargs={} if epsilon is None else {"epsilon": epsilon},
        seed=seed,
    )
    step_time = STEP_TIME[method][seed]
    written = RunResult(
        config=config,
        epochs=[
            Epoch(1, 0.7 + seed / 10, accuracy - 0.05, accuracy - 0.06, step_time),
            Epoch(2, 0.5 + seed / 10, accuracy, accuracy - 0.01, step_time),
        ],
        best_epoch=2,
        dev=Scores(accuracy, accuracy - 0.01, N),
        dev_predictions=[1 - y if i in wrong else y for i, y in enumerate(LABELS)],
        dev_labels=list(LABELS),
        test=None if method == "fgm" else Scores(accuracy - 0.05, n=20),
        median_step_time_s=step_time,
    )
    return RunResult.from_json(json.loads(json.dumps(written.to_json())))


def all_runs(seeds: tuple[int, ...] = (0, 1, 2)) -> list[dict]:
    runs = [
        make_run(method, epsilon, seed, wrong)
        for (method, epsilon), by_seed in WRONG.items()
        for seed, wrong in by_seed.items()
        if seed in seeds
    ]
    return runs[::-1]  # the order of the runs must not matter


def groups_by_key(summary: dict) -> dict:
    return {(g["method"], g["epsilon"]): g for g in summary["groups"]}


def binomial_two_sided(k: int, n: int) -> float:
    """The exact two-sided p of k <= n/2 successes out of n at 1/2, by hand."""
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def test_groups_are_sorted_baseline_first_then_method_then_epsilon():
    summary = report.summarize(all_runs())
    keys = [(g["method"], g["epsilon"]) for g in summary["groups"]]
    assert keys == [("none", None), ("fgm", 0.1), ("fgm", 0.5), ("gp", 1.0)]
    assert summary["baseline"] == "none"


def test_means_and_sample_stds_over_seeds():
    groups = groups_by_key(report.summarize(all_runs()))
    none, fgm, gp = groups["none", None], groups["fgm", 0.1], groups["gp", 1.0]
    assert none["n"] == 3 and none["seeds"] == [0, 1, 2]
    assert none["dev_accuracy_mean"] == pytest.approx(0.75)
    assert none["dev_accuracy_std"] == pytest.approx(0.05)  # ddof=1 of .75 .80 .70
    assert none["dev_macro_f1_mean"] == pytest.approx(0.74)
    assert none["dev_macro_f1_std"] == pytest.approx(0.05)
    assert none["test_accuracy_mean"] == pytest.approx(0.70)
    assert none["median_step_time_s"] == pytest.approx(0.20)
    assert fgm["dev_accuracy_mean"] == pytest.approx(0.80)
    assert fgm["test_accuracy_mean"] is None and fgm["test_n"] == 0
    # gp: .700 .725 .625; deviations +1/60, +1/24, -7/120
    assert gp["dev_accuracy_mean"] == pytest.approx(0.68333333)
    expected_std = math.sqrt(((1 / 60) ** 2 + (1 / 24) ** 2 + (7 / 120) ** 2) / 2)
    assert gp["dev_accuracy_std"] == pytest.approx(expected_std)
    assert gp["median_step_time_s"] == pytest.approx(0.50)


def test_comparison_with_baseline_is_paired_by_seed():
    groups = groups_by_key(report.summarize(all_runs()))
    assert groups["none", None]["vs_baseline"] is None
    fgm = groups["fgm", 0.1]["vs_baseline"]
    assert fgm["paired_seeds"] == [0, 1, 2]
    assert fgm["dev_accuracy_diff_points_mean"] == pytest.approx(5.0)
    assert fgm["dev_accuracy_diff_points_std"] == pytest.approx(0.0)
    assert fgm["paired_t_p"] is None  # constant differences: the t statistic is undefined
    # fgm 0.5 has no seed 2: +7.5 and -7.5 points on seeds 0 and 1 only
    missing = groups["fgm", 0.5]["vs_baseline"]
    assert missing["paired_seeds"] == [0, 1]
    assert missing["dev_accuracy_diff_points_mean"] == pytest.approx(0.0)
    assert missing["dev_accuracy_diff_points_std"] == pytest.approx(7.5 * math.sqrt(2))
    assert missing["paired_t_p"] == pytest.approx(1.0)
    # gp: differences -5, -7.5, -7.5 -> t = mean / (sd / sqrt 3) = -8 exactly, 2 degrees of
    # freedom, where the two-sided p is 1 - |t| / sqrt(t^2 + 2)
    gp = groups["gp", 1.0]["vs_baseline"]
    assert gp["dev_accuracy_diff_points_mean"] == pytest.approx(-20 / 3)
    assert gp["paired_t_p"] == pytest.approx(1 - 8 / math.sqrt(66))


def test_mcnemar_pools_the_paired_seeds():
    groups = groups_by_key(report.summarize(all_runs()))
    from scipy.stats import binomtest

    gp = groups["gp", 1.0]["vs_baseline"]["mcnemar"]
    assert (gp["b"], gp["c"]) == (10, 2)
    assert gp["p"] == pytest.approx(binomtest(2, 12).pvalue)
    assert gp["p"] == pytest.approx(158 / 4096)
    fgm = groups["fgm", 0.1]["vs_baseline"]["mcnemar"]
    assert (fgm["b"], fgm["c"]) == (0, 6)
    assert fgm["p"] == pytest.approx(binomial_two_sided(0, 6))
    assert groups["fgm", 0.5]["vs_baseline"]["mcnemar"] == {"b": 4, "c": 4, "p": 1.0}


def test_mcnemar_without_disagreement_has_no_p():
    base = make_run("none", None, 0, {1, 2})
    same = make_run("fgm", 0.1, 0, {1, 2})
    assert report.mcnemar([(base, same)]) == {"b": 0, "c": 0, "p": None}


def test_one_seed_has_no_std_and_no_t_test():
    groups = groups_by_key(report.summarize(all_runs(seeds=(0,))))
    assert groups["none", None]["dev_accuracy_std"] is None
    gp = groups["gp", 1.0]["vs_baseline"]
    assert gp["paired_seeds"] == [0]
    assert gp["dev_accuracy_diff_points_mean"] == pytest.approx(-5.0)
    assert gp["dev_accuracy_diff_points_std"] is None
    assert gp["paired_t_p"] is None
    assert gp["mcnemar"]["b"] == 4 and gp["mcnemar"]["c"] == 2
    assert gp["mcnemar"]["p"] == pytest.approx(binomial_two_sided(2, 6))


def test_without_baseline_there_is_no_comparison():
    runs = [r for r in all_runs() if r.config.method != "none"]
    summary = report.summarize(runs)
    assert summary["baseline"] is None
    assert all(g["vs_baseline"] is None for g in summary["groups"])
    table = report.markdown_table(summary)
    assert "| fgm | 0.1 | 0, 1, 2 | 80.00 ± 5.00 | 79.00 ± 5.00 | — | — | — | — |" in table


def test_a_repeated_seed_or_another_dev_set_is_an_error():
    runs = all_runs() + [make_run("gp", 1.0, 0, set())]
    with pytest.raises(ValueError, match="repeat"):
        report.summarize(runs)
    runs = all_runs()
    runs[0].dev_labels = runs[0].dev_labels[:-1]
    with pytest.raises(ValueError, match="dev labels"):
        report.summarize(runs)


def test_markdown_table_rows():
    table = report.markdown_table(report.summarize(all_runs()))
    lines = table.splitlines()
    assert "±" in lines[0] and "McNemar" in lines[0] and "ttest_rel" in lines[0]
    assert lines[2].startswith("| method | ε | seeds | dev acc % |")
    assert "test acc %" in lines[2] and "step time vs none" in lines[2]
    rows = lines[4:]
    assert rows == [
        "| none | — | 0, 1, 2 | 75.00 ± 5.00 | 74.00 ± 5.00 | — | — | — | — | 70.00 ± 5.00 "
        "| 1.00× |",
        "| fgm | 0.1 | 0, 1, 2 | 80.00 ± 5.00 | 79.00 ± 5.00 | +5.00 ± 0.00 | — | 0/6 | 0.031 "
        "| — | 2.00× |",
        "| fgm | 0.5 | 0, 1 | 77.50 ± 7.07 | 76.50 ± 7.07 | +0.00 ± 10.61 | 1.000 | 4/4 | 1.000 "
        "| — | 2.00× |",
        "| gp | 1 | 0, 1, 2 | 68.33 ± 5.20 | 67.33 ± 5.20 | -6.67 ± 1.44 | 0.015 | 10/2 | 0.039 "
        "| 63.33 ± 5.20 | 2.50× |",
    ]


def test_step_time_is_compared_only_on_the_same_device_and_thread_count():
    """A run linked from a sweep that ran with 2 threads is not set against runs made with 1."""
    runs = [run for run in all_runs() if run.config.method in ("none", "gp")]
    for run in runs:
        threads = 2 if run.config.method == "none" else 1
        run.environment = {"device": "cpu", "cpu": "AMD EPYC", "torch_threads": threads}
    summary = report.summarize(runs)
    groups = groups_by_key(summary)
    assert groups["none", None]["hardware"] == ["cpu (AMD EPYC, 2 threads)"]
    assert groups["gp", 1.0]["hardware"] == ["cpu (AMD EPYC, 1 thread)"]
    table = report.markdown_table(summary)
    gp_row = next(line for line in table.splitlines() if line.startswith("| gp |"))
    assert gp_row.split("|")[-2].strip() == "—"  # the step-time cell
    assert (
        "Step time vs none not shown for gp ε=1: its runs ran on cpu (AMD EPYC, 1 thread), "
        "none's on cpu (AMD EPYC, 2 threads)" in table
    )
    for run in runs:  # the same machine and threads again: the ratio is back
        run.environment["torch_threads"] = 2
    table = report.markdown_table(report.summarize(runs))
    assert "2.50×" in table and "not shown" not in table


def test_markdown_table_without_test_accuracy_drops_the_column():
    runs = all_runs(seeds=(0,))
    for run in runs:
        run.test = None
    table = report.markdown_table(report.summarize(runs))
    assert "test acc" not in table
    assert "| none | — | 0 | 75.00 ± — | 74.00 ± — | — | — | — | — | 1.00× |" in table


def is_png(path: Path) -> bool:
    data = path.read_bytes()
    return data.startswith(PNG_MAGIC) and len(data) > 5000


def test_write_report_writes_four_valid_files_and_nothing_else(tmp_path):
    runs = all_runs()
    returned = report.write_report(runs, tmp_path / "cmp")
    out = tmp_path / "cmp"
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        ["summary.json", "summary.md", "accuracy_vs_epsilon.png", "training_curves.png"]
    )  # no temp file left behind

    def no_nan(constant: str) -> None:
        raise ValueError(f"{constant} in summary.json")

    loaded = json.loads((out / "summary.json").read_text(encoding="utf-8"), parse_constant=no_nan)
    assert loaded == returned
    assert loaded["groups"] == report.summarize(runs)["groups"]
    ids = {(r["method"], r["epsilon"], r["seed"]): r["id"] for r in loaded["runs"]}
    assert ids["none", None, 1] == "none-seed1"  # the folder name from config["output"]
    assert ids["fgm", 0.5, 0] == "fgm-eps0.5-seed0"  # made up when there is no output
    assert (out / "summary.md").read_text(encoding="utf-8") == report.markdown_table(returned)
    assert is_png(out / "accuracy_vs_epsilon.png")
    assert is_png(out / "training_curves.png")


def test_an_interrupted_write_leaves_the_old_files_and_no_temp_file(tmp_path, monkeypatch):
    report.write_report(all_runs(), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(report.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        report.write_report(all_runs(seeds=(0,)), tmp_path)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.mark.parametrize("epsilons", [[0.0, 1.0], [0.01, 5.0], [2.0]])
def test_plots_handle_zero_wide_and_single_epsilons(tmp_path, epsilons):
    runs = [make_run("none", None, 0, {1})] + [make_run("fgm", eps, 0, {1, 2}) for eps in epsilons]
    report.plot_accuracy_vs_epsilon(report.summarize(runs), tmp_path / "a.png")
    report.plot_training_curves(runs, tmp_path / "b.png")
    assert is_png(tmp_path / "a.png") and is_png(tmp_path / "b.png")


@pytest.mark.parametrize(
    ("epsilons", "scale"),
    [
        ([0.03, 0.1, 0.3, 1.0, 3.0], "log"),
        ([0.1, 1000.0], "log"),
        ([0.5, 1.0], "linear"),
        ([0.0, 1.0], "linear"),
    ],
)
@pytest.mark.parametrize("metric", ["dev_accuracy", "accuracy_under_attack"])
def test_an_epsilon_axis_over_decades_is_logarithmic(epsilons, scale, metric):
    """Both the dev-accuracy plot and compare --attack's panels draw through this; the attack
    panels were linear, which crowded a grid's 0.1 to 100 at the left of 1000."""
    from advnlp.experiment.plots import _figure, draw_against_epsilon

    groups = [{"method": "none", "epsilon": None, f"{metric}_mean": 0.8, f"{metric}_std": 0.01}]
    groups += [
        {"method": "gp", "epsilon": e, f"{metric}_mean": 0.8, f"{metric}_std": None}
        for e in epsilons
    ]
    _, (ax,) = _figure(4, 3)
    draw_against_epsilon(ax, groups, metric)
    assert ax.get_xscale() == scale


def test_importing_the_report_loads_neither_matplotlib_nor_scipy():
    code = (
        "import sys, advnlp.experiment.report\n"
        "loaded = [m for m in ('matplotlib', 'scipy') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("metric", ["dev_accuracy", "accuracy_under_attack"])
def test_a_collapsed_point_is_crossed_out_and_named_in_the_legend(metric):
    """A model that predicts one class scores that class's share under every attack: drawn as
    a plain point, the epsilon grid's collapsed GP 1000 read as the most robust of all."""
    from advnlp.experiment.plots import _figure, collapsed_points, draw_against_epsilon

    ones = {i for i, y in enumerate(LABELS) if y == 1}  # wrong on every 1: predicts 0 only
    runs = [make_run("none", None, 0, {1}), make_run("gp", 1.0, 0, {1, 2})]
    runs.append(make_run("gp", 1000.0, 0, ones))
    summary = report.summarize(runs)
    collapsed = collapsed_points(summary["groups"])
    assert collapsed == {("gp", 1000.0)}
    groups = [
        {**g, f"{metric}_mean": g["dev_accuracy_mean"], f"{metric}_std": None}
        for g in summary["groups"]
    ]
    _, (ax,) = _figure(4, 3)
    draw_against_epsilon(ax, groups, metric, collapsed)
    handles, labels = ax.get_legend_handles_labels()
    crossed = handles[labels.index("collapsed seeds (one class for ≥ 90% of dev)")]
    assert crossed.get_offsets().tolist() == [[1000.0, 50.0]]

    _, (plain,) = _figure(4, 3)
    draw_against_epsilon(plain, groups, metric)
    assert not any("collapsed" in label for label in plain.get_legend_handles_labels()[1])
