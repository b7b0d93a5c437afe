"""Models and tokenizers for experiments: any Hugging Face name or path, or a scratch BERT.

``scratch-small`` is a small BERT (4 layers, hidden 256, 4 heads) initialised at random, with a
WordPiece tokenizer trained on the training split by the ``tokenizers`` library: BERT's
normaliser puts every CJK character on its own, so Chinese text tokenizes per character and
English per word piece. It is how Chinese runs work where no pretrained checkpoint is at hand.
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

SCRATCH = "scratch-small"
# name -> (layers, hidden size); heads of 64 dimensions, feed-forward 4 x hidden
SCRATCH_SIZES = {"scratch-small": (4, 256), "scratch-tiny": (2, 128)}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 8000, max_length: int = 128) -> Any:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (a PreTrainedTokenizerFast)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=SPECIAL_TOKENS, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    tokenizer.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_length,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


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


def load_pretrained_tokenizer(name: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name, **_source(name))
    except (OSError, ValueError) as error:
        raise _hub_error(name, "tokenizer", error) from None


def load_pretrained_model(name: str, labels: list[str]) -> Any:
    """A Hub name or local folder, with a fresh classification head for ``labels``."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized classifier" is expected here
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            name, ignore_mismatched_sizes=True, **label_config(labels), **_source(name)
        )
    except (OSError, ValueError) as error:
        raise _hub_error(name, "model", error) from None
    finally:
        hf_logging.set_verbosity(verbosity)
