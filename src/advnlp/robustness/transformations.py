"""Transformations: the candidate edits of one position of a text, all computed offline.

A text is cut into :class:`Units` (characters, words or tokens); a transformation proposes,
for one editable unit, the strings that may replace it. Resources come from PyPI packages
installed with ``advnlp[cli]`` or from the victim itself, never from the network:

- ``homophone`` (Chinese): characters whose usual pinyin, tone included, is the reading of
  the character in context (pypinyin), among the 3,500 most frequent characters of jieba's
  dictionary (the frequency of a character: the summed frequencies of the dictionary words
  holding it), most frequent first;
- ``variant`` (Chinese): traditional and regional forms (OpenCC ``s2t``, ``s2tw``, ``s2hk``,
  in context and alone) that OpenCC's ``t2s`` maps back to the same simplified character;
- ``typo`` (Latin script): QWERTY-neighbour substitution, deletion, swap of two adjacent
  letters, insertion of a neighbour of an adjacent letter inside the word (one edit each);
- ``neighbour`` (any language): tokens nearest by cosine in the victim's own input embedding
  matrix, of the same kind (word start or continuation piece), never a special token.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

COMMON_CHARACTERS = 3500  # the size of the first level of China's list of standard characters


@dataclass(frozen=True)
class Units:
    """A text cut into pieces (``"".join(pieces)`` is the text).

    ``editable`` are the indices of pieces a transformation may change; ``size`` is the number
    of units the edit budget is a fraction of (characters, words or tokens, editable or not);
    ``notes`` hold per-piece information of the transformation (a reading, a token id).
    """

    pieces: tuple[str, ...]
    editable: tuple[int, ...]
    size: int
    notes: tuple[Any, ...] = ()

    def text(self, edits: dict[int, str] | None = None) -> str:
        """The text with ``edits`` (piece index -> replacement) applied."""
        if not edits:
            return "".join(self.pieces)
        return "".join(edits.get(i, piece) for i, piece in enumerate(self.pieces))


class Transformation:
    """Cuts a text into units and proposes replacements for one unit."""

    name: ClassVar[str] = ""
    language: ClassVar[str] = ""  # what the data must hold, for error messages

    def __init__(self, max_candidates: int = 20) -> None:
        self.max_candidates = max_candidates

    def units(self, text: str, protected: Sequence[tuple[int, int]] = ()) -> Units:
        raise NotImplementedError

    def candidates(self, units: Units, index: int, rng: random.Random) -> list[str]:
        """Replacements for piece ``index`` (never the piece itself), at most max_candidates."""
        raise NotImplementedError


def _inside(position: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(start <= position < end for start, end in spans)


def is_chinese(character: str) -> bool:
    """A CJK unified ideograph (basic block, extension A, compatibility ideographs)."""
    code = ord(character)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def _characters(text: str, protected: Sequence[tuple[int, int]], keep) -> Units:
    """One piece per character; Chinese characters count for the budget, ``keep`` ones are
    editable."""
    pieces = tuple(text)
    chinese = [i for i, c in enumerate(pieces) if is_chinese(c)]
    editable = tuple(i for i in chinese if not _inside(i, protected) and keep(i))
    return Units(pieces, editable, len(chinese))


# -- homophone --------------------------------------------------------------------------------
@functools.cache
def character_frequencies() -> dict[str, int]:
    """Character -> summed frequency of the words of jieba's dictionary that hold it."""
    from importlib.resources import files

    counts: dict[str, int] = {}
    text = (files("jieba") / "dict.txt").read_text(encoding="utf-8")
    for line in text.splitlines():
        parts = line.split(" ")
        if len(parts) < 2 or not parts[1].isdigit():
            continue
        frequency = int(parts[1])
        for character in parts[0]:
            if is_chinese(character):
                counts[character] = counts.get(character, 0) + frequency
    return counts


def readings(character: str) -> list[str]:
    """Every pinyin reading of ``character``, tone as a digit (neutral tone 5)."""
    from pypinyin import Style, pinyin

    found = pinyin(character, style=Style.TONE3, heteronym=True, neutral_tone_with_five=True)
    return [r for r in found[0] if r and r[-1].isdigit()]


@functools.cache
def homophone_table() -> dict[str, tuple[str, ...]]:
    """Reading -> the common characters whose first (most usual) reading it is, most frequent
    first (by its rare reading shu1, 除 would pass for a homophone of 书)."""
    frequencies = character_frequencies()
    common = sorted(frequencies, key=lambda c: (-frequencies[c], c))[:COMMON_CHARACTERS]
    table: dict[str, list[str]] = {}
    for character in common:  # most frequent first, so each list is in frequency order
        found = readings(character)
        if found:
            table.setdefault(found[0], []).append(character)
    return {reading: tuple(chars) for reading, chars in table.items()}


class Homophone(Transformation):
    name = "homophone"
    language = "Chinese"

    def units(self, text: str, protected: Sequence[tuple[int, int]] = ()) -> Units:
        from pypinyin import Style, pinyin

        # Readings in context (pypinyin's phrase dictionary: 长 in 长大 is zhang3).
        found = pinyin(
            text,
            style=Style.TONE3,
            neutral_tone_with_five=True,
            errors=lambda chars: [[""] for _ in chars],
        )
        context = [r[0] if r and r[0] and r[0][-1].isdigit() else None for r in found]
        if len(context) != len(text):  # should not happen; fall back to readings alone
            context = [(readings(c) or [None])[0] for c in text]
        table = homophone_table()
        units = _characters(text, protected, lambda i: len(table.get(context[i] or "", ())) > 1)
        return Units(units.pieces, units.editable, units.size, tuple(context))

    def candidates(self, units: Units, index: int, rng: random.Random) -> list[str]:
        original = units.pieces[index]
        same = homophone_table().get(units.notes[index] or "", ())
        return [c for c in same if c != original][: self.max_candidates]


# -- variant ----------------------------------------------------------------------------------
@functools.cache
def _converter(config: str) -> Any:
    import opencc

    return opencc.OpenCC(config)


VARIANT_CONFIGS = ("s2t", "s2tw", "s2hk")


def simplified(text: str) -> str:
    return _converter("t2s").convert(text)


class Variant(Transformation):
    name = "variant"
    language = "Chinese"

    def units(self, text: str, protected: Sequence[tuple[int, int]] = ()) -> Units:
        # Whole-text conversions choose forms by phrase (头发 -> 頭髮); kept where the length
        # is unchanged, so that character i of the result stands for character i of the text.
        converted = [_converter(c).convert(text) for c in VARIANT_CONFIGS]
        in_context = [c for c in converted if len(c) == len(text)]
        forms = [
            self._forms(character, [c[i] for c in in_context]) if is_chinese(character) else ()
            for i, character in enumerate(text)
        ]
        units = _characters(text, protected, lambda i: bool(forms[i]))
        return Units(units.pieces, units.editable, units.size, tuple(forms))

    @staticmethod
    def _forms(character: str, in_context: list[str]) -> tuple[str, ...]:
        base = simplified(character)
        found = in_context + [_converter(c).convert(base) for c in VARIANT_CONFIGS]
        if base != character:
            found.append(base)
        forms = dict.fromkeys(f for f in found if f != character and len(f) == 1)
        return tuple(f for f in forms if simplified(f) == base)

    def candidates(self, units: Units, index: int, rng: random.Random) -> list[str]:
        return list(units.notes[index])[: self.max_candidates]


# -- typo -------------------------------------------------------------------------------------
KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
WORD = re.compile(r"[A-Za-z]+")


@functools.cache
def keyboard_neighbours() -> dict[str, str]:
    """Letter -> the letters around it on a QWERTY keyboard (rows are staggered to the right)."""
    where = {c: (r, i) for r, row in enumerate(KEYBOARD_ROWS) for i, c in enumerate(row)}
    around: dict[str, str] = {}
    for letter, (row, column) in where.items():
        spots = [(row, column - 1), (row, column + 1)]
        spots += [(row - 1, column), (row - 1, column + 1)]  # the row above is shifted left
        spots += [(row + 1, column - 1), (row + 1, column)]  # the row below, right
        around[letter] = "".join(
            KEYBOARD_ROWS[r][c]
            for r, c in spots
            if 0 <= r < len(KEYBOARD_ROWS) and 0 <= c < len(KEYBOARD_ROWS[r])
        )
    return around


def _near(letter: str) -> str:
    near = keyboard_neighbours().get(letter.lower(), "")
    return near.upper() if letter.isupper() else near


def typos(word: str) -> list[str]:
    """Every word one typo away from ``word``, sorted (substitution by a keyboard neighbour,
    deletion, swap of adjacent letters, insertion of a neighbour of an adjacent letter inside
    the word)."""
    found = set()
    for i, letter in enumerate(word):
        found.update(word[:i] + other + word[i + 1 :] for other in _near(letter))
        if len(word) > 2:
            found.add(word[:i] + word[i + 1 :])
        if i + 1 < len(word):
            found.add(word[:i] + word[i + 1] + word[i] + word[i + 2 :])
            for other in set(_near(letter) + _near(word[i + 1])):
                found.add(word[: i + 1] + other + word[i + 1 :])
    found.discard(word)
    return sorted(found)


class Typo(Transformation):
    name = "typo"
    language = "Latin-script (e.g. English)"

    def units(self, text: str, protected: Sequence[tuple[int, int]] = ()) -> Units:
        pieces, editable, position, words = [], [], 0, 0
        for match in WORD.finditer(text):
            if match.start() > position:
                pieces.append(text[position : match.start()])
            words += 1
            if len(match.group()) >= 2 and not _inside(match.start(), protected):
                editable.append(len(pieces))
            pieces.append(match.group())
            position = match.end()
        if position < len(text):
            pieces.append(text[position:])
        return Units(tuple(pieces), tuple(editable), words)

    def candidates(self, units: Units, index: int, rng: random.Random) -> list[str]:
        found = typos(units.pieces[index])
        if len(found) > self.max_candidates:  # a seeded sample: the same seed, the same typos
            found = sorted(rng.sample(found, self.max_candidates))
        return found


# -- neighbour --------------------------------------------------------------------------------
class Neighbour(Transformation):
    """Nearest tokens in the victim's input embedding matrix (cosine similarity).

    Units are the text's tokens (spans from the tokenizer's offsets); a token is replaced by
    the surface form of a neighbour token of the same kind: a word-start token by a word-start
    token, a continuation piece (``##ing``) by a continuation piece.
    """

    name = "neighbour"
    language = "any"

    def __init__(self, victim: Any, max_candidates: int = 20) -> None:
        super().__init__(max_candidates)
        from ..embedding import find_embedding

        self.tokenizer = victim.tokenizer
        weight = find_embedding(victim.model)[1].weight.detach().float()
        self.unit_rows = torch.nn.functional.normalize(weight, dim=-1)  # (V, H)
        tokens = self.tokenizer.convert_ids_to_tokens(list(range(len(weight))))
        marks = {"##": 0, "\u2581": 0, "\u0120": 0}  # WordPiece, SentencePiece, byte-level BPE
        for token in tokens[:50000]:
            for mark in marks:
                if isinstance(token, str) and token.startswith(mark):
                    marks[mark] += 1
        self.mark = max(marks, key=marks.get)
        special = set(self.tokenizer.all_special_ids)
        self.surfaces: list[str | None] = []
        kinds = []
        for index, token in enumerate(tokens):
            surface = None
            if isinstance(token, str) and index not in special:
                marked = token.startswith(self.mark)
                surface = token[len(self.mark) :] if marked else token
                surface = surface.strip() or None
                kinds.append(marked)
            else:
                kinds.append(None)
            self.surfaces.append(surface)
        # kind: 1 marked, 0 unmarked, -1 special (never a candidate)
        self.kinds = torch.tensor([-1 if k is None else int(k) for k in kinds])
        self.allowed = torch.tensor([s is not None for s in self.surfaces])

    def units(self, text: str, protected: Sequence[tuple[int, int]] = ()) -> Units:
        encoded = self.tokenizer(
            text, add_special_tokens=False, return_offsets_mapping=True, truncation=False
        )
        special = set(self.tokenizer.all_special_ids)
        pieces, editable, notes, position, tokens = [], [], [], 0, 0
        spans = zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        for token, (start, end) in spans:
            if token in special or end <= start or start < position:
                continue  # special, empty or overlapping spans (byte-level pieces) stay as they are
            if start > position:
                pieces.append(text[position:start])
                notes.append(None)
            tokens += 1
            if self.surfaces[token] is not None and not _inside(start, protected):
                editable.append(len(pieces))
            pieces.append(text[start:end])
            notes.append(token)
            position = end
        if position < len(text):
            pieces.append(text[position:])
            notes.append(None)
        return Units(tuple(pieces), tuple(editable), tokens, tuple(notes))

    @functools.lru_cache(maxsize=65536)  # noqa: B019 - one transformation per attack, bounded
    def _nearest(self, token: int) -> tuple[str, ...]:
        similarity = self.unit_rows @ self.unit_rows[token]  # (V,)
        same_kind = self.kinds == self.kinds[token]
        similarity[~(self.allowed & same_kind)] = -2.0
        similarity[token] = -2.0
        order = similarity.topk(min(4 * self.max_candidates, len(similarity))).indices.tolist()
        found: dict[str, None] = {}
        original = self.surfaces[token]
        for index in order:
            surface = self.surfaces[index]
            if similarity[index] <= -2.0 or surface is None or surface == original:
                continue
            found.setdefault(surface, None)
            if len(found) == self.max_candidates:
                break
        return tuple(found)

    def candidates(self, units: Units, index: int, rng: random.Random) -> list[str]:
        return list(self._nearest(units.notes[index]))


TRANSFORMATIONS: dict[str, type[Transformation]] = {
    t.name: t for t in (Homophone, Variant, Typo, Neighbour)
}


def make(name: str, victim: Any, max_candidates: int = 20) -> Transformation:
    """The transformation called ``name`` (see TRANSFORMATIONS), bound to ``victim``."""
    kind = TRANSFORMATIONS[name]
    if kind is Neighbour:
        return Neighbour(victim, max_candidates)
    return kind(max_candidates)
