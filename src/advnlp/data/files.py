"""Read a labelled split into a ``datasets.Dataset`` with columns text, [text_pair], label, line.

Accepted: JSON lines (CLUE style, extra keys ignored; also a JSON array), CSV / TSV with a
header, a Hugging Face dataset ``hf:NAME[:CONFIG]:SPLIT``, or a ``save_to_disk`` folder
(``DIR`` or ``DIR:SPLIT`` for a DatasetDict). Sentence pairs come from two text columns.

Local files are parsed here, line by line, because a useful error names the line
(``train.json:17: malformed JSON``), which the ``datasets`` loaders do not; datasets from the
Hub or disk go through ``datasets`` and errors name the row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

TEXT_COLUMNS = ("sentence", "text", "content", "review", "query")
PAIR_COLUMNS = (
    ("sentence1", "sentence2"),
    ("text_a", "text_b"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("query1", "query2"),
)
FILE_KINDS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "tsv"}


@dataclass
class Split:
    """One split, validated: ``dataset`` has text, [text_pair], label (str) and line columns."""

    dataset: Any  # datasets.Dataset
    source: str  # as the user wrote it, for messages
    text_columns: tuple[str, ...]
    locate: Callable[[int], str]  # line (or row) number -> "file:line" / "source row N"

    def where(self, row: int) -> str:
        """Where row ``row`` of ``dataset`` came from, for error messages."""
        return self.locate(self.dataset[row]["line"])


def load_split(
    spec: str,
    *,
    flag: str,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    limit: int | None = None,
) -> Split:
    """Load and validate ``spec`` (what the user passed to ``flag``, e.g. ``--train``)."""
    rows, columns, where = _read(spec, flag)
    if not rows:
        raise DataError(f"{flag} {spec}: no examples in it")
    chosen = _choose_text_columns(spec, flag, columns, text_columns)
    if label_column not in columns:
        raise DataError(
            f"{flag} {spec}: no label column {label_column!r}; columns found: "
            f"{', '.join(columns)}; pass --label-column NAME"
        )
    texts: list[list[str]] = [[] for _ in chosen]
    labels, lines = [], []
    for line, row in rows:
        for column, bucket in zip(chosen, texts, strict=True):
            value = row.get(column)
            if not isinstance(value, str):
                got = "missing" if value is None else f"a {type(value).__name__}"
                raise DataError(f"{where(line)}: text column {column!r} is {got}, not a string")
            bucket.append(value)
        label = row.get(label_column)
        if label is None or isinstance(label, (dict, list)) or str(label).strip() == "":
            raise DataError(f"{where(line)}: label column {label_column!r} is missing or empty")
        labels.append(str(label).strip())
        lines.append(line)

    import datasets

    data = {"text": texts[0], "label": labels, "line": lines}
    if len(chosen) == 2:
        data["text_pair"] = texts[1]
    dataset = datasets.Dataset.from_dict(data)
    if limit is not None and limit < len(dataset):
        dataset = dataset.shuffle(seed=0).select(range(limit))  # the same subset for every run
    return Split(dataset, spec, tuple(chosen), where)


def label_names(train: Split) -> list[str]:
    """The training labels in a stable order: numeric if all are numbers, else alphabetical."""
    names = set(train.dataset["label"])
    if all(_is_number(n) for n in names):
        return sorted(names, key=float)
    return sorted(names)


def check_labels(split: Split, known: Sequence[str], train_source: str) -> None:
    """Every label of ``split`` must occur in the training file."""
    known_set = set(known)
    for row, label in enumerate(split.dataset["label"]):
        if label not in known_set:
            raise DataError(
                f"{split.where(row)}: label {label!r} does not occur in the training data "
                f"{train_source} (its labels: {', '.join(known[:20])}"
                f"{', ...' if len(known) > 20 else ''})"
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _choose_text_columns(
    spec: str, flag: str, columns: list[str], wanted: Sequence[str] | None
) -> list[str]:
    if wanted:
        missing = [c for c in wanted if c not in columns]
        if missing:
            raise DataError(
                f"{flag} {spec}: no column {missing[0]!r}; columns found: {', '.join(columns)}"
            )
        if len(wanted) > 2:
            raise DataError(f"--text-column takes one column or two (a pair), got {len(wanted)}")
        return list(wanted)
    for pair in PAIR_COLUMNS:
        if all(c in columns for c in pair) and pair[0] not in TEXT_COLUMNS[:2]:
            return list(pair)
    for column in TEXT_COLUMNS:
        if column in columns:
            return [column]
    raise DataError(
        f"{flag} {spec}: no text column (looked for {', '.join(TEXT_COLUMNS)} and sentence1/"
        f"sentence2); columns found: {', '.join(columns)}; pass --text-column NAME"
    )


# -- readers: each returns ([(line, row dict)], column names, where(line) -> str) -------------
def _read(spec: str, flag: str):
    if spec.startswith("hf:"):
        return _read_hub(spec, flag)
    path = Path(spec)
    if path.is_dir():
        return _read_disk(path, None, spec, flag)
    head, _, split = spec.rpartition(":")
    if head and Path(head).is_dir():
        return _read_disk(Path(head), split, spec, flag)
    if not path.exists():
        raise DataError(f"{flag} {spec}: no such file")
    if not path.is_file():
        raise DataError(f"{flag} {spec}: not a regular file")
    kind = FILE_KINDS.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"{flag} {spec}: unknown file type {path.suffix or '(none)'!r}; use .json/.jsonl "
            "(JSON lines), .csv or .tsv (with a header), hf:NAME:SPLIT, or a save_to_disk folder"
        )
    text = _decode(path, flag)

    def where(line: int) -> str:
        return f"{spec}:{line}"

    rows = list(_json_rows(text, where) if kind == "json" else _table_rows(text, kind, where))
    columns = list(rows[0][1]) if rows else []
    return rows, columns, where


def _decode(path: Path, flag: str) -> str:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(f"{flag} {path}: the file is empty")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[error.start]:02x}); "
            "convert the file to UTF-8 (e.g. iconv -f GBK -t UTF-8)"
        ) from None


def _json_rows(text: str, where) -> Iterable[tuple[int, dict]]:
    if text.lstrip().startswith("["):  # one JSON array of objects
        try:
            items = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"{where(error.lineno)}: malformed JSON ({error.msg})") from None
        for index, item in enumerate(items):
            yield _object(item, where(f"item {index}"), index + 1)
        return
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{where(number)}: malformed JSON ({error.msg} at column {error.colno}); "
                "each line must be one JSON object"
            ) from None
        yield _object(item, where(number), number)


def _object(item: Any, place: str, line: int) -> tuple[int, dict]:
    if not isinstance(item, dict):
        raise DataError(f"{place}: expected a JSON object, got {type(item).__name__}")
    return line, item


def _table_rows(text: str, kind: str, where) -> Iterable[tuple[int, dict]]:
    # TSV (GLUE style) has no quoting: a quote character is just a character.
    options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if kind == "tsv" else {}
    reader = csv.reader(io.StringIO(text), **options)
    header = next(reader)
    if len(set(header)) != len(header):
        raise DataError(f"{where(1)}: the header repeats a column name: {header}")
    for fields in reader:
        if not fields or not any(f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            raise DataError(
                f"{where(reader.line_num)}: {len(fields)} fields, but the header has "
                f"{len(header)} ({', '.join(header)})"
            )
        yield reader.line_num, dict(zip(header, fields, strict=True))


def _read_hub(spec: str, flag: str):
    parts = spec[3:].split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise DataError(
            f"{flag} {spec}: write a Hub dataset as hf:NAME:SPLIT or hf:NAME:CONFIG:SPLIT"
        )
    name, config, split = parts[0], (parts[1] if len(parts) == 3 else None), parts[-1]
    import datasets

    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as error:  # noqa: BLE001 - datasets raises many kinds; all mean "cannot load"
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DataError(
            f"{flag} {spec}: cannot load dataset {name!r} (split {split!r}) from the Hugging Face "
            f"Hub, no network or a wrong name? ({first[:200]})"
        ) from None
    return _dataset_rows(dataset, spec)


def _read_disk(folder: Path, split: str | None, spec: str, flag: str):
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder))
    except Exception as error:  # noqa: BLE001
        raise DataError(f"{flag} {spec}: not a datasets save_to_disk folder ({error})") from None
    if isinstance(loaded, datasets.DatasetDict):
        if split is None or split not in loaded:
            raise DataError(
                f"{flag} {spec}: the folder holds splits {', '.join(loaded)}; write {folder}:SPLIT"
            )
        loaded = loaded[split]
    return _dataset_rows(loaded, spec)


def _dataset_rows(dataset: Any, spec: str):
    rows = [(index + 1, row) for index, row in enumerate(dataset)]

    def where(line: int) -> str:
        return f"{spec} row {line}"

    # ClassLabel columns hold ints; use their names so labels read like the data.
    for column, feature in dataset.features.items():
        names = getattr(feature, "names", None)
        if names:
            for _, row in rows:
                row[column] = (
                    names[row[column]] if row[column] is not None and row[column] >= 0 else None
                )
    return rows, list(dataset.column_names), where
