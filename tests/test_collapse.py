"""The collapse guard on real runs: FGM at an absolute epsilon of 1 on scratch-tiny (embedding
rows of norm ~0.2) learns nothing and predicts one class for the whole dev set, while the
baseline on the same seed learns the task; compare marks the first and not the second."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import pytest

pytest.importorskip("datasets")
pytest.importorskip("scipy")

from advnlp.cli import main  # noqa: E402
from advnlp.experiment.results import RunResult  # noqa: E402
from advnlp.experiment.run_folder import RunFolder  # noqa: E402

from .cli_data import SMALL_RUN, fails_in_one_line, write_splits  # noqa: E402


def compare_args(train, dev, out, seeds="0"):
    return [
        "compare", "--train", str(train), "--dev", str(dev), "--output", str(out),
        "--methods", "none,fgm", "--epsilon", "1", "--seeds", seeds, "--epochs", "3",
        "--lr", "1e-3", "--model", "scratch-tiny", *SMALL_RUN,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("collapse")
    train, dev = write_splits(root / "data", train=128, dev=24)
    assert main(compare_args(train, dev, root / "cmp")) == 0
    return root


def results(sweep, run: str) -> RunResult:
    return RunFolder(sweep / "cmp" / "runs" / run).read_result()


def test_the_run_that_predicts_one_class_is_recorded_as_collapsed(sweep):
    fgm, none = results(sweep, "fgm-eps1-seed0"), results(sweep, "none-seed0")
    assert fgm.dev_predictions is not None and len(set(fgm.dev_predictions)) == 1
    assert fgm.dev.accuracy == 0.5 and fgm.collapsed  # chance on a balanced dev set
    assert none.dev.accuracy >= 0.9 and not none.collapsed
    for run in ("fgm-eps1-seed0", "none-seed0"):  # the recorded share is the predictions'
        raw = json.loads(RunFolder(sweep / "cmp" / "runs" / run).results.read_text())
        counts = Counter(raw["dev_predictions"])
        assert raw["dev_majority_share"] == max(counts.values()) / len(raw["dev_predictions"])


def test_compare_marks_the_collapsed_run_and_its_group(sweep):
    summary = json.loads((sweep / "cmp" / "summary.json").read_text())
    groups = {(g["method"], g["epsilon"]): g for g in summary["groups"]}
    assert groups["fgm", 1.0]["collapsed_seeds"] == [0]
    assert groups["none", None]["collapsed_seeds"] == []
    runs = {r["id"]: r for r in summary["runs"]}
    assert runs["fgm-eps1-seed0"]["collapsed"] and runs["fgm-eps1-seed0"]["dev_majority_share"] == 1
    assert not runs["none-seed0"]["collapsed"]
    table = (sweep / "cmp" / "summary.md").read_text()
    assert "| fgm ⚠ | 1 | 0 | 50.00 ± —" in table and "| none | — | 0 |" in table
    assert "⚠ fgm ε=1: collapsed on 1 of 1 seeds (0): the best model predicts one class" in table


def test_advnlp_train_says_a_run_collapsed(sweep):
    from advnlp.cli.train import summary

    assert "collapsed: the best model predicts one class for 100%" in summary(
        results(sweep, "fgm-eps1-seed0")
    )
    assert "collapsed" not in summary(results(sweep, "none-seed0"))


def test_every_results_file_is_exactly_what_run_result_writes(sweep):
    """The writer goes through RunResult: reading a file and writing it back changes nothing."""
    files = sorted((sweep / "cmp").glob("runs/*/results.json"))
    assert len(files) == 2
    for path in files:
        assert RunResult.load(path).to_json() == json.loads(path.read_text())


def test_a_broken_results_file_stops_compare_before_it_trains(sweep, tmp_path, capsys):
    copy = tmp_path / "cmp"
    shutil.copytree(sweep / "cmp", copy)
    broken = RunFolder(copy / "runs" / "fgm-eps1-seed0").results  # the plan's third run
    broken.write_text('{"config": {', encoding="utf-8")  # cut off
    args = compare_args(sweep / "data" / "train.jsonl", sweep / "data" / "dev.jsonl", copy, "0,1")
    fails_in_one_line(args, capsys, f"{broken}: cannot read the run's results")
    assert not (copy / "runs" / "none-seed1").exists()  # the second: not trained
