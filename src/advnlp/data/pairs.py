"""Read prompt/response pairs for causal language model fine-tuning: JSON lines (or one JSON
array) of objects with a string ``prompt`` and a string ``response``; extra keys are ignored.

Errors name the file and line (``train.jsonl:17: no "response" field``), as files.py does for
labelled data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .files import _decode, _json_rows

FIELDS = ("prompt", "response")


@dataclass
class Pairs:
    """One split: ``dataset`` has the columns prompt, response and line (in the file)."""

    dataset: Any  # datasets.Dataset
    source: str  # as the user wrote it, for messages

    def where(self, row: int) -> str:
        """The file:line of row ``row`` of ``dataset``."""
        return f"{self.source}:{self.dataset[row]['line']}"


def load_pairs(spec: str, *, flag: str, limit: int | None = None) -> Pairs:
    """Load and check the pairs in the file ``spec`` (what the user passed to ``flag``)."""
    path = Path(spec)
    if not path.exists():
        raise DataError(f"{flag} {spec}: no such file")
    if not path.is_file():
        raise DataError(f"{flag} {spec}: not a regular file")
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise DataError(
            f"{flag} {spec}: prompt/response pairs are read from JSON lines (.jsonl or .json), "
            f"not {path.suffix or 'a file without extension'}"
        )
    text = _decode(path, flag)
    columns: dict[str, list] = {"prompt": [], "response": [], "line": []}
    for line, row in _json_rows(text, lambda n: f"{spec}:{n}"):
        for key in FIELDS:
            value = row.get(key)
            if not isinstance(value, str):
                got = (
                    f'no "{key}" field' if value is None else f'"{key}" is a {type(value).__name__}'
                )
                raise DataError(f"{spec}:{line}: {got}, expected a string")
            columns[key].append(value)
        if not columns["response"][-1].strip():
            raise DataError(f'{spec}:{line}: "response" is empty: nothing to train on')
        columns["line"].append(line)
    if not columns["line"]:
        raise DataError(f"{flag} {spec}: no prompt/response pairs in it")

    import datasets

    dataset = datasets.Dataset.from_dict(columns)
    if limit is not None and limit < len(dataset):
        dataset = dataset.shuffle(seed=0).select(range(limit))  # the same subset for every run
    return Pairs(dataset, spec)
