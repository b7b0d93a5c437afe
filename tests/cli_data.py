"""Tiny labelled files written by the CLI tests (Chinese and English, two learnable labels)."""

from __future__ import annotations

import json
import random
from pathlib import Path

# Flags that keep a CLI run on these files to seconds.
SMALL_RUN = ["--batch-size", "8", "--max-length", "24", "--vocab-size", "200"]

POSITIVE = ["很好", "不错", "喜欢", "满意", "good", "great", "love it"]
NEGATIVE = ["很差", "失望", "讨厌", "糟糕", "bad", "awful", "hate it"]
FILLER = ["这本书", "酒店", "服务", "价格", "the room", "this phone", "delivery"]


def examples(n: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = POSITIVE if label == "pos" else NEGATIVE
        sentence = f"{rng.choice(FILLER)}{rng.choice(words)}，{rng.choice(FILLER)}"
        rows.append({"sentence": sentence, "label": label, "id": str(i)})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")
    return path


def write_splits(folder: Path, train: int = 64, dev: int = 24) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return (
        write_jsonl(folder / "train.jsonl", examples(train, 0)),
        write_jsonl(folder / "dev.jsonl", examples(dev, 1)),
    )


def fails_in_one_line(args: list[str], capsys, *needles: str) -> str:
    """Run the CLI in-process: exit 2, one stderr line holding every needle, no traceback."""
    from advnlp.cli import main

    code = main(args)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err
