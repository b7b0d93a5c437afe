"""Run by tests/test_invariants.py in a fresh interpreter: ``import advnlp`` loads nothing
beyond what ``import torch`` itself loads (transformers above all)."""

import sys

import torch  # noqa: F401

before = set(sys.modules)
import advnlp  # noqa: E402, F401

new = {name.split(".")[0] for name in set(sys.modules) - before} - {"advnlp"}
assert not new, f"import advnlp also imported {sorted(new)}"
assert "transformers" not in sys.modules, "import advnlp imported transformers"
