"""Every method's gradients equal an independent textbook implementation (tests/reference.py),
on a tiny BERT, a tiny GPT-2 with tied input/output embeddings, and a plain LSTM module.
Table-driven over the registry: a method added to the registry without a reference formula
(reference.REFERENCE) fails, and every combination of its switches and choices is checked."""

from __future__ import annotations

import pytest

import advnlp

from . import reference
from .models import CASES, SETTINGS, label, variants

# Every switch and choice of each method (tests/models.py), and its defaults (FreeLB's
# random start included: both sides draw it from the same seed).
ROWS = [
    pytest.param(name, kwargs, id=label(name, kwargs))
    for name in advnlp.method_names()
    for kwargs in variants(name) + ([{}] if SETTINGS[name] else [])
]


def test_every_registered_method_has_a_reference():
    assert set(reference.REFERENCE) == set(advnlp.method_names())


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize(("name", "kwargs"), ROWS)
def test_gradients_match_reference(case_name, name, kwargs):
    reference.assert_step_matches(CASES[case_name](), name, kwargs)


@pytest.mark.parametrize("case_name", list(CASES))
def test_gradient_penalty_term_matches_independent_value(case_name):
    reference.assert_penalty_matches(CASES[case_name]())
