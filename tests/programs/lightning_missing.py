"""Run by tests/test_lightning.py in a fresh interpreter: ``import advnlp`` does not import
Lightning, and without Lightning ``import advnlp.lightning`` says how to install it."""

import sys

import advnlp  # noqa: F401

assert not {"lightning", "pytorch_lightning"} & set(sys.modules), "import advnlp imported lightning"
sys.modules["lightning"] = sys.modules["pytorch_lightning"] = None  # as if not installed
try:
    import advnlp.lightning  # noqa: F401
except ImportError as error:
    assert "pip install 'advnlp[lightning]'" in str(error), error
else:
    raise AssertionError("import advnlp.lightning gave no ImportError without Lightning")
