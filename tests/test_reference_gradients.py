"""Every method's gradients equal an independent textbook implementation (tests/reference.py),
on a tiny BERT, a tiny GPT-2 with tied input/output embeddings, and a plain LSTM module.
Table-driven over the registry: a method added to the registry without a reference formula here
fails, and every combination of its switches and choices is checked."""

from __future__ import annotations

import pytest
import torch

import advnlp

from . import reference
from .models import CASES, SETTINGS, grads, label, variants, zero


def unit(case, scope: str, epsilon_unit: str):
    """What lengths are measured in: 1, or the embedding's own size computed directly (the
    relative method equals the absolute one at epsilon x this unit)."""
    if epsilon_unit == "absolute":
        return 1.0
    size = reference.relative_unit(case, scope)
    return float(size) if scope == "token" else size


# registry name -> the reference formula, called with every hyperparameter of the method
REFERENCE = {
    "none": lambda c: reference.none(c),
    "fgm": lambda c, epsilon, scope, adversarial_only, epsilon_unit: reference.fgm(
        c, epsilon * unit(c, scope, epsilon_unit), scope, adversarial_only
    ),
    "gp": lambda c, epsilon: reference.gradient_penalty(c, epsilon)[0],
    "pgd": lambda c, epsilon, alpha, steps, scope, adversarial_only, epsilon_unit: reference.pgd(
        c,
        *(x * unit(c, scope, epsilon_unit) for x in (epsilon, alpha)),
        steps,
        scope,
        adversarial_only,
    ),
    "freelb": lambda c, epsilon, alpha, steps, init_magnitude, epsilon_unit: reference.freelb(
        c,
        *(x * unit(c, "example", epsilon_unit) for x in (epsilon, alpha)),
        steps,
        init_magnitude * unit(c, "example", epsilon_unit),
    ),
    "neftune": lambda c, alpha: reference.neftune(c, alpha),
    "r3f": lambda c, epsilon, kl_weight, noise: reference.r3f(c, epsilon, kl_weight, noise),
    # a first step, from an empty cache: plain (tests/test_fgm_free.py checks the second)
    "fgm_free": lambda c, epsilon: reference.none(c),
    "awp": reference.awp,
    "smart": reference.smart,
    "vat": lambda c, **kwargs: reference.smart(c, **kwargs, symmetric=False),
}
# Every switch and choice of each method (tests/models.py), and its defaults (FreeLB's
# random start included: both sides draw it from the same seed).
ROWS = [
    pytest.param(name, kwargs, id=label(name, kwargs))
    for name in advnlp.method_names()
    for kwargs in variants(name) + ([{}] if SETTINGS[name] else [])
]


def test_every_registered_method_has_a_reference():
    assert set(REFERENCE) == set(advnlp.method_names())


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize(("name", "kwargs"), ROWS)
def test_gradients_match_reference(case_name, name, kwargs):
    case = CASES[case_name]()
    torch.manual_seed(123)  # FreeLB's random start: same draws in both
    expected_loss = REFERENCE[name](case, **{**advnlp.hyperparameters(name), **kwargs})
    expected = grads(case.model)

    zero(case.model)
    adv = advnlp.build(name, case.model, **kwargs)
    torch.manual_seed(123)
    loss = adv.backward(case.closure)

    torch.testing.assert_close(loss, expected_loss.detach(), rtol=1e-5, atol=1e-8)
    actual = grads(case.model)
    for param, value in expected.items():
        torch.testing.assert_close(actual[param], value, rtol=1e-5, atol=1e-8, msg=param)
    assert any(v.abs().sum() > 0 for v in actual.values())


@pytest.mark.parametrize("case_name", list(CASES))
def test_gradient_penalty_term_matches_independent_value(case_name):
    case = CASES[case_name]()
    _, expected_penalty = reference.gradient_penalty(case, 2.0)
    zero(case.model)
    adv = advnlp.GradientPenalty(case.model, epsilon=2.0)
    adv.backward(case.closure)
    torch.testing.assert_close(adv.last_penalty, expected_penalty, rtol=1e-5, atol=0)
    assert adv.last_penalty > 0
