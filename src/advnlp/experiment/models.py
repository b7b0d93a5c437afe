"""Models and tokenizers for experiments: any Hugging Face name or path, an offline encoder
(``e5-small``, ``minilm``: see ``advnlp.pretrained`` and OFFLINE_MODELS), or a scratch BERT.

``scratch-small`` is a small BERT (4 layers, hidden 256, 4 heads) initialised at random, with a
WordPiece tokenizer trained on the training split (deterministically, see ``train_tokenizer``):
BERT's normaliser puts every CJK character on its own, so Chinese text tokenizes per character
and English per word piece. It is how Chinese runs work where no pretrained checkpoint is at hand.
``scratch-tiny`` (2 layers, hidden 128) is the same, about eight times cheaper per step.
"""

from __future__ import annotations

import functools
import heapq
import os
import socket
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ..errors import UsageError

SCRATCH = "scratch-small"
# name -> (layers, hidden size); heads of 64 dimensions, feed-forward 4 x hidden
SCRATCH_SIZES = {"scratch-small": (4, 256), "scratch-tiny": (2, 128)}
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def train_tokenizer(texts: Iterable[str], *, vocab_size: int = 8000, max_length: int = 128) -> Any:
    """A BERT-style WordPiece tokenizer trained on ``texts`` (a PreTrainedTokenizerFast).

    The same texts give the same tokenizer, byte for byte, in any process and with any thread
    count. The ``tokenizers`` library's own WordPiece trainer does not: it numbers the "##"
    continuation pieces in the iteration order of a Rust HashMap (randomly seeded in every
    process) and breaks ties between equally frequent merges by those numbers, so two trainings
    on one file give other ids and other merges. Here the library only normalises and splits
    the text; the vocabulary is built by ``wordpiece_vocabulary``, with every tie broken by the
    pieces themselves.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        pieces = pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text))
        words.update(word for word, _ in pieces)
    vocab = wordpiece_vocabulary(words, vocab_size)
    tokenizer = Tokenizer(
        models.WordPiece({piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]")
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
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


def wordpiece_vocabulary(words: Counter[str], size: int, min_frequency: int = 2) -> list[str]:
    """WordPiece pieces learnt from word counts, in id order: the special tokens, every
    character (as a word start, then as a "##" continuation), then merged pieces.

    As in BERT's WordPiece training (BPE with a "##" prefix): a word starts as its characters,
    and the most frequent adjacent pair of pieces, counted over all words, is merged into one
    piece until the vocabulary has ``size`` pieces or no pair occurs ``min_frequency`` times.
    A CJK character is a word of its own after BERT's normaliser, so Chinese stays per
    character. Ties go to the pair that sorts first, and characters beyond ``size`` are
    dropped rarest first (then by the character), so the result depends on the counts alone.
    """
    splits = {word: [word[0], *(f"##{c}" for c in word[1:])] for word in words if word}
    characters: Counter[str] = Counter()
    for word, pieces in splits.items():
        for piece in pieces:
            characters[piece] += words[word]
    room = max(0, size - len(SPECIAL_TOKENS))
    kept = sorted(characters, key=lambda piece: (-characters[piece], piece))[:room]
    # Word starts first, then continuations, each in character order: ids do not follow counts.
    vocab = [*SPECIAL_TOKENS, *sorted(kept, key=lambda piece: (piece.startswith("##"), piece))]
    known = set(vocab)
    # A word holding a dropped character can never be matched whole: WordPiece makes it [UNK].
    splits = {w: p for w, p in splits.items() if all(piece in known for piece in p)}

    pair_counts: Counter[tuple[str, str]] = Counter()
    holders: dict[tuple[str, str], set[str]] = {}  # words that may hold the pair
    for word, pieces in splits.items():
        for pair in pairwise(pieces):
            pair_counts[pair] += words[word]
            holders.setdefault(pair, set()).add(word)
    # A max-heap by (count, pair sorting first); stale entries are skipped when popped.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    while len(vocab) < size and heap:
        negative, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative:
            continue
        if -negative < min_frequency:
            break
        left, right = pair
        merged = left + right.removeprefix("##")
        if merged not in known:
            known.add(merged)
            vocab.append(merged)
        changed: set[tuple[str, str]] = set()
        for word in holders.pop(pair):
            pieces = splits[word]
            for old in pairwise(pieces):
                pair_counts[old] -= words[word]
                changed.add(old)
            pieces = _merge(pieces, left, right, merged)
            splits[word] = pieces
            for new in pairwise(pieces):
                pair_counts[new] += words[word]
                holders.setdefault(new, set()).add(word)
                changed.add(new)
        pair_counts.pop(pair, None)
        for old in changed:  # the order of a set of tuples of str varies; the heap's does not
            if pair_counts.get(old, 0) > 0:
                heapq.heappush(heap, (-pair_counts[old], old))
    return vocab


def _merge(pieces: list[str], left: str, right: str, merged: str) -> list[str]:
    """``pieces`` with every adjacent (left, right), read left to right, made one piece."""
    out: list[str] = []
    i = 0
    while i < len(pieces):
        if i + 1 < len(pieces) and pieces[i] == left and pieces[i + 1] == right:
            out.append(merged)
            i += 2
        else:
            out.append(pieces[i])
            i += 1
    return out


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
