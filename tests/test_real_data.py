"""End-to-end runs on the real data sets in ../shared/data (slow; skipped where it is absent,
as on a user's machine). Run with: python -m pytest -m slow"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = pytest.mark.slow


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared data sets live beside the repository)")
    return path


@pytest.mark.parametrize(
    ("folder", "train", "dev", "labels"),
    [("tnews", "train.json", "dev.json", 15), ("sst2", "train.tsv", "dev.tsv", 2)],
)
def test_train_on_a_real_sample(tmp_path, folder, train, dev, labels):
    from advnlp.cli import main

    data = _need(SHARED / folder)
    out = tmp_path / folder
    code = main([
        "train", "--train", str(data / train), "--dev", str(data / dev),
        "--method", "fgm", "--epsilon", "0.05", "--model", "scratch-tiny",
        "--max-train-examples", "4000", "--max-dev-examples", "300", "--epochs", "3",
        "--batch-size", "32", "--max-length", "48", "--output", str(out),
    ])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results["labels"]) == labels
    assert results["dev"]["n"] == 300
    assert results["dev"]["accuracy"] > 1.2 / labels  # learned something beyond chance
