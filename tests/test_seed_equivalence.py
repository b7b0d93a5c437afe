"""FGM with scope="token" is Su's original weight-perturbation formulation, done without touching
the weight: perturb the matrix rows in place, compute the loss, restore from a backup."""

from __future__ import annotations

import pytest
import torch

import advnlp

from .models import grads, tiny_bert, zero


def seed_fgm(case, epsilon, adversarial_only):
    """The reference, literally (bert4keras adversarial_training, PyTorch edition), untied."""
    weight = case.weight
    loss = case.closure()
    (g,) = torch.autograd.grad(loss, weight, retain_graph=True)  # dL/dE, the whole matrix
    if not adversarial_only:
        loss.backward()
    backup = weight.detach().clone()
    with torch.no_grad():
        weight.add_(epsilon * g / (g.norm() + 1e-8))
    case.closure().backward()
    with torch.no_grad():
        weight.copy_(backup)  # restore from a backup: subtracting delta is not exact


@pytest.mark.parametrize("adversarial_only", [False, True])
@pytest.mark.parametrize("epsilon", [0.05, 0.5, 2.0])
def test_token_scope_equals_weight_perturbation(adversarial_only, epsilon):
    case = tiny_bert(torch.float64)
    seed_fgm(case, epsilon, adversarial_only)
    expected = grads(case.model)
    zero(case.model)
    advnlp.FGM(case.model, epsilon, adversarial_only=adversarial_only).backward(case.closure)
    for name, value in grads(case.model).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-9, atol=1e-13, msg=name)
