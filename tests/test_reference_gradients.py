"""Every method's gradients equal an independent textbook implementation (tests/reference.py),
on a tiny BERT, a tiny GPT-2 with tied input/output embeddings, and a plain LSTM module.
Table-driven over the registry: a method added to the registry without a row here fails."""

from __future__ import annotations

import pytest
import torch

import advnlp

from . import reference
from .models import CASES, grads, zero

# registry name -> [(kwargs for advnlp.build, reference call)]
SETTINGS = {
    "none": [({}, lambda case: reference.none(case))],
    "fgm": [
        ({"epsilon": 0.7}, lambda c: reference.fgm(c, 0.7)),
        (
            {"epsilon": 0.7, "adversarial_only": True},
            lambda c: reference.fgm(c, 0.7, adversarial_only=True),
        ),
        ({"epsilon": 0.3, "scope": "example"}, lambda c: reference.fgm(c, 0.3, "example")),
        (
            {"epsilon": 0.3, "scope": "example", "adversarial_only": True},
            lambda c: reference.fgm(c, 0.3, "example", True),
        ),
        # epsilon_unit="relative": the absolute method at epsilon x the directly computed unit
        (
            {"epsilon": 0.7, "epsilon_unit": "relative"},
            lambda c: reference.fgm(c, 0.7 * float(reference.relative_unit(c, "token"))),
        ),
        (
            {"epsilon": 0.3, "scope": "example", "epsilon_unit": "relative"},
            lambda c: reference.fgm(c, 0.3 * reference.relative_unit(c, "example"), "example"),
        ),
    ],
    "gp": [({"epsilon": 1.5}, lambda c: reference.gradient_penalty(c, 1.5)[0])],
    "pgd": [
        ({"epsilon": 0.5, "alpha": 0.2, "steps": 3}, lambda c: reference.pgd(c, 0.5, 0.2, 3)),
        (
            {"epsilon": 0.25, "alpha": 0.2, "steps": 3, "scope": "token"},
            lambda c: reference.pgd(c, 0.25, 0.2, 3, "token"),
        ),
        (
            {"epsilon": 0.5, "alpha": 0.3, "steps": 2, "adversarial_only": True},
            lambda c: reference.pgd(c, 0.5, 0.3, 2, adversarial_only=True),
        ),
        (
            {
                "epsilon": 0.25,
                "alpha": 0.2,
                "steps": 3,
                "scope": "token",
                "epsilon_unit": "relative",
            },
            lambda c: reference.pgd(
                c,
                *(x * float(reference.relative_unit(c, "token")) for x in (0.25, 0.2)),
                3,
                "token",
            ),
        ),
        (
            {"epsilon": 0.5, "alpha": 0.3, "steps": 2, "epsilon_unit": "relative"},
            lambda c: reference.pgd(
                c, *(x * reference.relative_unit(c, "example") for x in (0.5, 0.3)), 2
            ),
        ),
    ],
    "freelb": [
        (
            {"epsilon": 0.3, "alpha": 0.1, "steps": 3, "init_magnitude": 0.2},
            lambda c: reference.freelb(c, 0.3, 0.1, 3, 0.2),
        ),
        (
            {"epsilon": 1.0, "alpha": 0.5, "steps": 2, "init_magnitude": 0.0},
            lambda c: reference.freelb(c, 1.0, 0.5, 2, 0.0),
        ),
        (
            {
                "epsilon": 0.3,
                "alpha": 0.1,
                "steps": 3,
                "init_magnitude": 0.2,
                "epsilon_unit": "relative",
            },
            lambda c: reference.freelb(
                c,
                *(x * reference.relative_unit(c, "example") for x in (0.3, 0.1)),
                3,
                0.2 * reference.relative_unit(c, "example"),
            ),
        ),
    ],
}
ROWS = [
    pytest.param(name, kwargs, ref, id=f"{name}-{i}")
    for name in SETTINGS
    for i, (kwargs, ref) in enumerate(SETTINGS[name])
]


def test_every_registered_method_has_a_reference():
    assert set(SETTINGS) == set(advnlp.method_names())


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize(("name", "kwargs", "ref"), ROWS)
def test_gradients_match_reference(case_name, name, kwargs, ref):
    case = CASES[case_name]()
    torch.manual_seed(123)  # FreeLB's random start: same draws in both
    expected_loss = ref(case)
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
