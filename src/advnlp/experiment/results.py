"""``results.json``, typed: what a finished run records. The writer (train.py) and every reader
(the report, compare, the CLI) go through ``RunResult``, so a field renamed on one side breaks
the other's tests instead of silently reading ``None``.

Schema versions: 0 is a file without ``schema_version`` (written before it existed); 1 adds
``schema_version`` and ``dev_majority_share``; 2 adds causal language model runs
(``config.task``; the scores' ``loss``, ``perplexity``, ``tokens``; the epochs' ``dev_loss``).
Fields added over time are optional on reading, so an older file loads with ``None`` where it
lacks one. A file from a newer advnlp (a higher version), or one that is not a results file, is
refused with a one-line DataError naming it.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError
from .io import write_json_atomic
from .run_config import RunConfig

RESULTS_NAME = "results.json"  # in a run's folder (RunFolder.results)
SCHEMA_VERSION = 2
# A run whose best model predicts one class for at least this share of the dev examples has
# collapsed: it learnt (almost) nothing but the label it falls back on, whatever its accuracy.
COLLAPSE_SHARE = 0.9
# Fields (in results.json and a summary's runs) that measure time: the only ones that differ
# between two runs of the same command on the same machine.
TIMINGS = frozenset({"train_runtime_s", "median_step_time_s", "step_time_s", "train_s"})


@dataclass
class Scores:
    """The best model's scores on one split (fractions) and its number of examples.

    A causal language model's: ``accuracy`` is the next-token accuracy on the response tokens,
    ``loss`` their mean negative log-likelihood (nats per token), ``perplexity`` exp(loss),
    ``tokens`` their count."""

    accuracy: float
    macro_f1: float | None = None
    n: int | None = None
    loss: float | None = None
    perplexity: float | None = None
    tokens: int | None = None


@dataclass
class Epoch:
    """One epoch: the mean train loss of its steps, dev scores, median step time (s) and the
    time of all its steps (s; evaluation excluded; a resumed epoch counts the steps it kept)."""

    epoch: int
    train_loss: float | None = None
    dev_accuracy: float | None = None
    dev_macro_f1: float | None = None
    step_time_s: float | None = None
    dev_loss: float | None = None  # causal LMs: mean NLL of the dev response tokens
    train_s: float | None = None  # None in runs written before advnlp recorded it


@dataclass(kw_only=True)
class RunResult:
    """One run's results.json; the fields in the file's order (``schema_version`` first)."""

    config: RunConfig
    labels: list[str] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)
    best_epoch: int | None = None
    dev: Scores
    dev_predictions: list[int] | None = None  # label ids, in the dev file's order
    dev_labels: list[int] | None = None
    test: Scores | None = None
    median_step_time_s: float | None = None
    train_runtime_s: float | None = None
    steps: int | None = None
    resumed_from: str | None = None  # the checkpoint a resumed run went on from
    # what a reader needs to reproduce the run (see the README's "Reproducibility")
    versions: dict[str, str] | None = None
    environment: dict[str, Any] | None = None
    tokenizer_sha256: str | None = None
    vocab_size: int | None = None
    data_sha256: dict[str, str | None] | None = None
    world_size: int | None = None
    model_size: dict[str, Any] | None = None  # pieces, their hash, layers, parameters
    steps_run: int | None = None  # by this process: fewer than steps when it resumed
    dev_majority_share: float | None = None  # share of the most predicted class on dev

    def __post_init__(self) -> None:
        if self.dev_majority_share is None and self.dev_predictions:
            self.dev_majority_share = majority_share(self.dev_predictions)

    @property
    def collapsed(self) -> bool:
        """Whether the best model predicts one class for >= COLLAPSE_SHARE of dev."""
        return self.dev_majority_share is not None and self.dev_majority_share >= COLLAPSE_SHARE

    @property
    def train_seconds(self) -> float | None:
        """Seconds in the optimizer steps of all epochs (None if an epoch did not record it)."""
        times = [e.train_s for e in self.epochs]
        return None if not times or None in times else sum(times)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, **asdict(self)}

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RunResult:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as error:
            reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
            raise DataError(f"{path}: cannot read the run's results ({reason})") from None
        return cls.from_json(data, path)

    @classmethod
    def from_json(cls, data: Any, source: str | os.PathLike[str] = RESULTS_NAME) -> RunResult:
        """The RunResult of a parsed results.json (``source`` names it in errors)."""
        if not isinstance(data, Mapping):
            raise DataError(f"{source}: not an advnlp results file (not a JSON object)")
        version = data.get("schema_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise DataError(f"{source}: not an advnlp results file (schema_version {version!r})")
        if version > SCHEMA_VERSION:
            raise DataError(
                f"{source}: written by a newer advnlp (results schema {version}; this one reads "
                f"up to {SCHEMA_VERSION}); upgrade advnlp to read it"
            )
        try:
            return _parse(data)
        except _Invalid as error:
            raise DataError(f"{source}: not an advnlp results file ({error})") from None


def majority_share(predictions: Sequence[int]) -> float | None:
    """The share of the most frequent value (None for no predictions)."""
    if not predictions:
        return None
    return max(Counter(predictions).values()) / len(predictions)


class _Invalid(ValueError):
    """What is wrong in a results file (from_json adds the file's name)."""


_NUMBER = (int, float)
# top-level key -> the JSON types it may hold (besides null: every one of them is optional)
_SIMPLE = {
    "best_epoch": int,
    "median_step_time_s": _NUMBER,
    "train_runtime_s": _NUMBER,
    "steps": int,
    "resumed_from": str,
    "versions": Mapping,
    "environment": Mapping,
    "tokenizer_sha256": str,
    "vocab_size": int,
    "data_sha256": Mapping,
    "world_size": int,
    "model_size": Mapping,
    "steps_run": int,
    "dev_majority_share": _NUMBER,
}


def _get(
    data: Mapping[str, Any], key: str, kinds: Any, where: str = "", required: bool = False
) -> Any:
    """``data[key]`` if it is one of ``kinds`` (never a bool for a number), None if absent."""
    value = data.get(key)
    if value is None:
        if required:
            raise _Invalid(f"no {where}{key}")
        return None
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise _Invalid(f"{where}{key} is {json.dumps(value)[:40]}")
    return value


def _list(data: Mapping[str, Any], key: str, kind: type) -> list | None:
    values = _get(data, key, list)
    if values is not None and any(isinstance(v, bool) or not isinstance(v, kind) for v in values):
        raise _Invalid(f"{key} holds a value that is not a {kind.__name__}")
    return values


def _scores(data: Mapping[str, Any], key: str, required: bool) -> Scores | None:
    scores = _get(data, key, Mapping, required=required)
    if scores is None:
        return None
    where = f"{key}."
    return Scores(
        accuracy=_get(scores, "accuracy", _NUMBER, where, required=True),
        macro_f1=_get(scores, "macro_f1", _NUMBER, where),
        n=_get(scores, "n", int, where),
        loss=_get(scores, "loss", _NUMBER, where),
        perplexity=_get(scores, "perplexity", _NUMBER, where),
        tokens=_get(scores, "tokens", int, where),
    )


def _epoch(row: Any) -> Epoch:
    if not isinstance(row, Mapping):
        raise _Invalid("epochs holds a value that is not an object")
    numbers = ("train_loss", "dev_accuracy", "dev_macro_f1", "step_time_s", "dev_loss", "train_s")
    return Epoch(
        epoch=_get(row, "epoch", int, "epochs[].", required=True),
        **{key: _get(row, key, _NUMBER, "epochs[].") for key in numbers},
    )


def _parse(data: Mapping[str, Any]) -> RunResult:
    config = _get(data, "config", Mapping, required=True)
    _get(config, "method", str, "config.", required=True)
    _get(config, "seed", int, "config.", required=True)
    _get(config, "method_kwargs", Mapping, "config.")
    return RunResult(
        config=RunConfig.from_json({**config, "method_kwargs": config.get("method_kwargs") or {}}),
        labels=_list(data, "labels", str) or [],
        epochs=[_epoch(row) for row in _get(data, "epochs", list) or []],
        dev=_scores(data, "dev", required=True),
        dev_predictions=_list(data, "dev_predictions", int),
        dev_labels=_list(data, "dev_labels", int),
        test=_scores(data, "test", required=False),
        **{key: _get(data, key, kinds) for key, kinds in _SIMPLE.items()},
    )
