"""The example scripts and the demo run (with small settings, so the default suite stays short)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .launch import python, torchrun

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "accelerate_loop.py"

pytest.importorskip("snownlp")


def test_accelerate_loop_single_process():
    result = python(str(EXAMPLE), "--steps", "3", "--examples", "200")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done: fgm for 3 steps on 1 process(es)" in result.stdout


def test_accelerate_loop_two_processes():
    result = torchrun(str(EXAMPLE), "--steps", "3", "--examples", "200", "--method", "gp")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done: gp for 3 steps on 2 process(es)" in result.stdout


def test_demo_with_small_settings(tmp_path, capsys):
    from advnlp.cli import main

    out = tmp_path / "demo"
    args = [
        "demo",
        "--output",
        str(out),
        "--model",
        "scratch-tiny",  # tests/test_demo.py runs the default e5-small end to end
        "--train-examples",
        "96",
        "--epochs",
        "1",
        "--seeds",
        "0,1",
        "--methods",
        "none,fgm",
        "--epsilon",
        "0.1",
        "--max-length",
        "32",
        "--attack-examples",  # the default attacks, on few reviews (test_demo.py: all of them)
        "5",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| none" in printed and "accuracy_vs_epsilon.png" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert [g["method"] for g in summary["groups"]] == ["none", "fgm"]
    assert {r["id"] for r in summary["runs"]} == {
        "none-seed0",
        "none-seed1",
        "fgm-eps0.1-seed0",
        "fgm-eps0.1-seed1",
    }
    for name in ("summary.md", "accuracy_vs_epsilon.png", "training_curves.png"):
        assert (out / name).stat().st_size > 100
    assert (out / "data" / "train.jsonl").exists()
    # Run again: every run is finished, so nothing trains and the report is the same.
    assert main(args) == 0
    assert json.loads((out / "summary.json").read_text())["groups"] == summary["groups"]
