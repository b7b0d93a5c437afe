"""The model under attack: texts in, class probabilities out, every query counted and timed.

A victim is any sequence classifier called as ``model(input_ids=..., attention_mask=...)``
(every Hugging Face ``...ForSequenceClassification``; a plain module returning logits works
too) with a fast tokenizer. Queries run in eval mode, without gradients, in batches, on the
GPU when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import UsageError


@dataclass(frozen=True)
class Example:
    """One labelled input: ``label`` is the gold class id in the victim's label space."""

    text: str
    label: int
    text_pair: str | None = None


class Victim:
    """A classifier and its tokenizer, queried on raw text.

    Args:
        model: the classifier (put in eval mode and moved to ``device``).
        tokenizer: its tokenizer; a fast one (offsets are needed by the ``neighbour`` attack).
        max_length: tokens per input, as in training.
        batch_size: inputs per forward pass.
        device: default: CUDA when available, else CPU.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: Any,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        device: str | torch.device | None = None,
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.queries = 0  # inputs scored so far
        self.model_seconds = 0.0  # time inside the model's forward passes

    @property
    def labels(self) -> list[str]:
        """Class names in id order (``config.id2label``; ``LABEL_k`` style when it has none)."""
        config = getattr(self.model, "config", None)
        id2label = getattr(config, "id2label", None) or {}
        count = getattr(config, "num_labels", None) or len(id2label)
        return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(count)]

    def encode(
        self, texts: Sequence[str], pairs: Sequence[str | None] | None = None, **options: Any
    ) -> dict[str, Tensor]:
        """Tokenize a batch (padded to its longest input) onto the victim's device."""
        second = None if pairs is None or all(p is None for p in pairs) else list(pairs)
        encoded = self.tokenizer(
            list(texts),
            second,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
            **options,
        )
        return {key: value.to(self.device) for key, value in encoded.items()}

    def logits(self, batch: dict[str, Tensor]) -> Tensor:
        """Forward pass on an encoded batch (with gradients if the caller enables them)."""
        started = time.perf_counter()
        output = self.model(**batch)
        logits = getattr(output, "logits", output)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.model_seconds += time.perf_counter() - started
        return logits

    @torch.inference_mode()
    def probabilities(
        self, texts: Sequence[str], pairs: Sequence[str | None] | None = None
    ) -> Tensor:
        """(N, C) class probabilities (float32, on the CPU) of ``texts`` [with ``pairs``]."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            part = None if pairs is None else pairs[start : start + self.batch_size]
            batch = self.encode(texts[start : start + self.batch_size], part)
            chunks.append(self.logits(batch).float().softmax(-1).cpu())
        self.queries += len(texts)
        if not chunks:
            return torch.empty(0, len(self.labels))
        return torch.cat(chunks)

    def special_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of ``text`` that the tokenizer reads as special tokens (e.g. a literal
        ``[SEP]``): attacks never edit them."""
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False
        )
        special = set(self.tokenizer.all_special_ids)
        spans = zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        return [(start, end) for token, (start, end) in spans if token in special and end > start]


class QueryCounter:
    """The queries of one example, never more than ``limit``: a batch that would go past the
    limit is cut to what is left (so a search may end with some candidates unscored)."""

    def __init__(self, victim: Victim, limit: int, pair: str | None = None) -> None:
        self.victim = victim
        self.limit = limit
        self.pair = pair
        self.used = 0

    @property
    def left(self) -> int:
        return self.limit - self.used

    def score(self, texts: Sequence[str]) -> Tensor:
        """Probabilities of at most ``left`` of ``texts`` (the first ones), in one batch."""
        texts = list(texts)[: max(self.left, 0)]
        self.used += len(texts)
        pairs = None if self.pair is None else [self.pair] * len(texts)
        return self.victim.probabilities(texts, pairs)


def load_victim(
    path: str | Path,
    *,
    max_length: int | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    flag: str = "--model",
) -> Victim:
    """A saved classifier: an ``advnlp train`` output folder (its ``model/`` is used), a
    ``save_pretrained`` folder, or a Hugging Face model name.

    ``max_length`` defaults to the run's ``--max-length`` when ``path`` is a run folder, else
    to the tokenizer's limit capped at 512.
    """
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..experiment.models import OFFLINE_MODELS, _source

    folder = Path(path).expanduser()
    if str(path) in OFFLINE_MODELS and not folder.exists():
        raise UsageError(
            f"{flag} {path}: a pretrained encoder without a classifier head, nothing to attack; "
            f"fine-tune it first (advnlp train --model {path} ...) and attack that run's folder"
        )
    run_file = folder / "run.json"
    if (folder / "model" / "config.json").exists():
        folder = folder / "model"
    elif run_file.exists():
        raise UsageError(f"{flag} {path}: the run has no saved model yet (no model/ folder)")
    name = str(folder)
    if folder.exists() and not (folder / "config.json").exists():
        raise UsageError(f"{flag} {path}: no config.json in the folder: not a saved model")
    if folder.exists():
        kinds = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        kinds = kinds.get("architectures") or []
        if kinds and not any(k.endswith("ForSequenceClassification") for k in kinds):
            raise UsageError(
                f"{flag} {path}: a {', '.join(kinds)} without a classifier head, nothing to "
                "attack; fine-tune it first (advnlp train --model FOLDER ...) and attack the run"
            )
    if not folder.exists() and (str(path).startswith((".", "/", "~")) or str(path).count("/") > 1):
        raise UsageError(f"{flag} {path}: no such folder")
    if max_length is None and (folder.parent / "run.json").exists() and folder.name == "model":
        saved = json.loads((folder.parent / "run.json").read_text(encoding="utf-8"))
        max_length = saved.get("config", {}).get("max_length")
    source = {} if folder.exists() else _source(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **source)
        model = AutoModelForSequenceClassification.from_pretrained(name, **source)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UsageError(f"{flag} {path}: cannot load a classifier ({first[:200]})") from None
    if not getattr(tokenizer, "is_fast", False):
        raise UsageError(f"{flag} {path}: the tokenizer is not a fast tokenizer (offsets needed)")
    if max_length is None:
        max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    return Victim(model, tokenizer, max_length=max_length, batch_size=batch_size, device=device)
