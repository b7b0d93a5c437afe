"""The WordPiece tokenizer of the scratch models, trained on a run's texts, deterministically."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from itertools import pairwise
from typing import Any

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
