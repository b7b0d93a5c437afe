"""Models and tokenizers for experiments: any Hugging Face name or path, an offline encoder
(``e5-small``, ``minilm``: see ``advnlp.pretrained`` and OFFLINE_MODELS), or a scratch BERT.

``scratch-small`` is a small BERT (4 layers, hidden 256, 4 heads) initialised at random, with a
WordPiece tokenizer trained on the training split (deterministically, see wordpiece.py):
BERT's normaliser puts every CJK character on its own, so Chinese text tokenizes per character
and English per word piece. It is how Chinese runs work where no pretrained checkpoint is at hand.
``scratch-tiny`` (2 layers, hidden 128) is the same, about eight times cheaper per step.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import UsageError
from .wordpiece import SPECIAL_TOKENS, train_tokenizer, wordpiece_vocabulary

__all__ = [  # the tokenizer of scratch models lives in wordpiece.py; imported from here too
    "SCRATCH",
    "SCRATCH_SIZES",
    "SPECIAL_TOKENS",
    "label_config",
    "load_pretrained_model",
    "load_pretrained_tokenizer",
    "model_size",
    "scratch_model",
    "split_texts",
    "train_tokenizer",
    "wordpiece_vocabulary",
]

SCRATCH = "scratch-small"
# name -> (layers, hidden size); heads of 64 dimensions, feed-forward 4 x hidden
SCRATCH_SIZES = {"scratch-small": (4, 256), "scratch-tiny": (2, 128)}


def scratch_model(tokenizer: Any, labels: list[str], max_length: int, size: str = SCRATCH) -> Any:
    """A randomly initialised BERT classifier (``size`` from SCRATCH_SIZES) for ``tokenizer``."""
    from transformers import BertConfig, BertForSequenceClassification

    layers, hidden = SCRATCH_SIZES[size]
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
        max_position_embeddings=max(512, max_length),
        pad_token_id=tokenizer.pad_token_id,
        **label_config(labels),
    )
    return BertForSequenceClassification(config)


def label_config(labels: list[str]) -> dict[str, Any]:
    return {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
    }


def _hub_error(name: str, what: str, error: Exception) -> UsageError:
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return UsageError(
        f"--model {name}: no {what} in a local folder of that name, and none loadable from the "
        f"Hugging Face Hub (no network, or a wrong name?); use a local folder or {SCRATCH} "
        f"({first[:160]})"
    )


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """Can the Hugging Face Hub be reached? (Without it, only the local cache is tried, at once,
    instead of retrying downloads for a minute.)"""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _source(name: str) -> dict[str, Any]:
    """from_pretrained options for ``name``: a local folder, or the Hub (cache only if offline)."""
    if Path(name).expanduser().is_dir():
        return {}
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise UsageError(f"--model {name}: no such folder")
    return {"local_files_only": not hub_reachable()}


def load_pretrained_tokenizer(
    name: str, *, texts: Iterable[str] = (), layers: int | None = None
) -> Any:
    """The tokenizer of a Hub name, a folder or an offline model (e5-small is trimmed to
    ``texts`` and built with ``layers`` layers, so that the model's folder is ready too)."""
    from transformers import AutoTokenizer

    if name in OFFLINE_MODELS:
        name = offline_folder(name, texts=texts, layers=layers)
    try:
        return AutoTokenizer.from_pretrained(name, **_source(name))
    except (OSError, ValueError) as error:
        raise _hub_error(name, "tokenizer", error) from None


def load_pretrained_model(
    name: str, labels: list[str], *, layers: int | None = None, tokenizer: Any = None
) -> Any:
    """A Hub name, local folder or offline model, with a fresh classification head for
    ``labels``; ``layers`` keeps the first layers only. An offline e5-small takes the
    vocabulary of ``tokenizer`` (the one ``load_pretrained_tokenizer`` gave)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    if name in OFFLINE_MODELS:
        name = offline_folder(name, tokenizer=tokenizer, layers=layers)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        if layers is not None:
            total = getattr(
                AutoConfig.from_pretrained(name, **_source(name)), "num_hidden_layers", None
            )
            if total is None or layers > total:
                raise UsageError(f"--layers {layers}: {name} has {total or 'no'} layers to keep")
        return AutoModelForSequenceClassification.from_pretrained(
            name,
            ignore_mismatched_sizes=True,
            **label_config(labels),
            **({} if layers is None else {"num_hidden_layers": layers}),
            **_source(name),
        )
    except UsageError:
        raise
    except (OSError, ValueError) as error:
        raise _hub_error(name, "model", error) from None
    finally:
        hf_logging.set_verbosity(verbosity)


# Encoders that work offline (advnlp.pretrained): CLI name -> canonical name
OFFLINE_MODELS = {
    "e5-small": "e5-small",
    "multilingual-e5-small": "e5-small",
    "minilm": "minilm",
    "all-MiniLM-L6-v2": "minilm",
}


def offline_folder(
    name: str, *, texts: Iterable[str] = (), tokenizer: Any = None, layers: int | None = None
) -> str:
    """The folder of an offline model. e5-small is built (once, cached) with the vocabulary
    of ``tokenizer`` if given, else trimmed to ``texts``; MiniLM is the installed package's."""
    from .. import pretrained

    if OFFLINE_MODELS[name] == "e5-small" and layers is not None and not 1 <= layers <= 12:
        raise UsageError(f"--layers {layers}: e5-small has 12 layers; keep 1 to 12")
    try:
        if OFFLINE_MODELS[name] == "minilm":
            return str(pretrained.minilm())
        if tokenizer is not None:
            pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
            return str(pretrained.e5_small(pieces=pieces, layers=layers))
        return str(pretrained.e5_small(list(texts), layers=layers))
    except ModuleNotFoundError as error:
        raise UsageError(f"--model {name}: {error}") from None


def model_size(tokenizer: Any, model: Any) -> dict[str, Any]:
    """Vocabulary (count and SHA-256 of the pieces in id order: for e5-small, the kept
    pieces), layers and parameters of a run's model, for results.json."""
    from ..pretrained import vocabulary_hash

    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    return {
        "pieces": len(pieces),
        "pieces_sha256": vocabulary_hash(pieces),
        "layers": getattr(model.config, "num_hidden_layers", None),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def split_texts(split: Any) -> list[str]:
    """Every text of a data.Split (both sides of sentence pairs)."""
    dataset = split.dataset
    pair = list(dataset["text_pair"]) if "text_pair" in dataset.column_names else []
    return list(dataset["text"]) + pair
