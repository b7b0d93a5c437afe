"""What defines one run: the flags of ``advnlp train`` as a dataclass, checked before anything
is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from ..errors import UsageError
from ..registry import check
from .models import SCRATCH, SCRATCH_SIZES

TASKS = ("classification", "causal-lm")
DEFAULT_LR = {"pretrained": 2e-5, SCRATCH: 3e-4}  # Su's original: 2e-5; a random BERT needs more


@dataclass
class RunConfig:
    """Everything that defines a run (the CLI flags of ``advnlp train``)."""

    train: str
    dev: str
    output: str
    test: str | None = None
    model: str = SCRATCH
    method: str = "none"
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: DEFAULT_LR for the kind of model
    max_length: int = 128
    seed: int = 0
    text_columns: list[str] | None = None
    label_column: str = "label"
    max_train_examples: int | None = None
    max_dev_examples: int | None = None
    bucketing: bool = True
    gradient_accumulation: int = 1
    # warm-up: optimizer steps that are plain before the method starts (the Trainer's
    # global_step, so accumulation and resuming do not move it)
    start_step: int = 0
    precision: str = "fp32"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    vocab_size: int = 8000
    keep_checkpoints: bool = False
    layers: int | None = None  # keep the first K layers of a pretrained model (None: all)
    # "classification" (text -> label) or "causal-lm" (prompt -> response, experiment/causal.py)
    task: str = "classification"

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR[SCRATCH if self.model in SCRATCH_SIZES else "pretrained"]

    def validate(self) -> None:
        """Raise UsageError naming the flag of the first bad value."""
        checks = [
            ("--epochs", self.epochs, isinstance(self.epochs, int) and self.epochs >= 1),
            ("--batch-size", self.batch_size, self.batch_size >= 1),
            ("--lr", self.lr, self.lr is None or (0 < self.lr < 1)),
            ("--max-length", self.max_length, 8 <= self.max_length <= 8192),
            (
                "--gradient-accumulation",
                self.gradient_accumulation,
                self.gradient_accumulation >= 1,
            ),
            (
                "--start-step",
                self.start_step,
                not isinstance(self.start_step, bool)
                and isinstance(self.start_step, int)
                and self.start_step >= 0,
            ),
            ("--warmup-ratio", self.warmup_ratio, 0 <= self.warmup_ratio < 1),
            (
                "--max-train-examples",
                self.max_train_examples,
                self.max_train_examples is None or self.max_train_examples >= 1,
            ),
            (
                "--max-dev-examples",
                self.max_dev_examples,
                self.max_dev_examples is None or self.max_dev_examples >= 1,
            ),
            ("--precision", self.precision, self.precision in ("fp32", "bf16", "fp16")),
            ("--vocab-size", self.vocab_size, self.vocab_size >= 100),
            ("--layers", self.layers, self.layers is None or self.layers >= 1),
        ]
        checks.append(("--task", self.task, self.task in TASKS))
        for flag, value, ok in checks:
            if not ok:
                raise UsageError(f"{flag}: {value!r} is out of range")
        if self.task == "causal-lm" and self.model in SCRATCH_SIZES:
            raise UsageError(
                f"--model: {self.model} is a classifier; --task causal-lm needs a causal language "
                "model (a Hugging Face name or folder)"
            )
        if self.layers is not None and self.model in SCRATCH_SIZES:
            raise UsageError(
                f"--layers: {self.model} has a fixed size; --layers is for pretrained models"
            )
        if "start_step" in self.method_kwargs:
            raise UsageError(
                "method_kwargs: the warm-up is RunConfig.start_step (--start-step), not a "
                "method setting"
            )
        check(self.method, **self.method_kwargs)  # ConfigError naming the bad value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def with_defaults(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """Saved settings with the fields an earlier advnlp did not write at their defaults, so
        that a folder started before a field existed still resumes (e.g. start_step, task)."""
        defaults = {
            f.name: f.default_factory() if f.default_factory is not MISSING else f.default
            for f in fields(cls)
            if f.default is not MISSING or f.default_factory is not MISSING
        }
        return defaults | dict(saved)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunConfig:
        """The config ``to_json`` wrote. Keys added by a later advnlp are ignored and keys an
        earlier one did not write take their defaults; the data and output paths, which every
        results.json holds, are None where a hand-made record leaves them out."""
        known = {f.name for f in fields(cls)}
        paths: dict[str, Any] = {"train": None, "dev": None, "output": None}
        return cls(**(paths | {key: value for key, value in data.items() if key in known}))
