"""SMART and VAT: the ways a closure hands over the logits, a plain step where the method is
off, a real epsilon ball with no perturbation of padding, an ascent that finds a worse delta
than a random one, a random start fixed by the seed, which side of VAT's KL is trained, a
batch-mean divergence, and bad values named."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import advnlp
from advnlp.passes import kl_divergence, symmetric_kl

from .models import (
    PAD,
    assert_closure_forms_agree,
    assert_plain_step,
    consumed,
    grads,
    plain_lstm,
    tiny_bert,
    zero,
)

METHODS = ["smart", "vat"]


def _step(case, name, closure=None, seed=3, **kwargs) -> dict:
    zero(case.model)
    torch.manual_seed(seed)
    advnlp.build(name, case.model, **{"epsilon": 0.5, "alpha": 0.5, **kwargs}).backward(
        closure or case.closure
    )
    return grads(case.model)


@pytest.mark.parametrize("name", METHODS)
def test_the_closure_may_return_the_output_a_pair_or_the_loss_alone(name):
    case = tiny_bert(torch.float64)
    assert_closure_forms_agree(case, lambda closure: _step(case, name, closure))


@pytest.mark.parametrize("name", METHODS)
def test_a_closure_without_logits_is_told_what_to_return(name):
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    ids, labels = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([0, 2])
    adv = advnlp.build(name, model)
    who = type(adv).__name__
    with pytest.raises(advnlp.ClosureError, match=rf"^{who} needs the logits: return model"):
        adv.backward(lambda: nn.functional.cross_entropy(model(ids), labels))
    assert not adv.embedding._forward_hooks and not model._forward_hooks


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("mode", ["epsilon 0", "kl_weight 0", "eval"])
def test_off_is_a_plain_step(name, mode):
    case = tiny_bert(torch.float32)
    if mode == "eval":
        case.model.eval()
    calls = []
    kwargs = {"epsilon": 0.0} if mode == "epsilon 0" else {}
    kwargs |= {"kl_weight": 0.0} if mode == "kl_weight 0" else {}
    adv = advnlp.build(name, case.model, **kwargs)
    assert_plain_step(case, lambda: adv.backward(lambda: calls.append(1) or case.closure()))
    assert len(calls) == 1


@pytest.mark.parametrize("name", METHODS)
def test_delta_stays_in_a_real_epsilon_ball_and_off_padding(name):
    """A long step (alpha 10x epsilon) is projected back: every example's perturbation over
    its real positions has norm epsilon (the references' unit per-token norm would be far
    larger), and padding is never moved. Passes: clean, 2 ascent passes, adversarial."""
    case = tiny_bert(torch.float64)

    def step(closure):
        torch.manual_seed(0)
        adv = advnlp.build(name, case.model, epsilon=0.3, alpha=3.0, steps=2, init_std=0.01)
        adv.backward(closure)

    clean, seen = consumed(case, step)
    assert len(seen) == 4 and torch.equal(seen[0], clean)
    real = (case.ids != PAD).unsqueeze(-1)
    for output in seen[1:]:
        delta = output - clean
        assert torch.equal(torch.where(real, 0, delta), torch.zeros_like(delta))
        norms = delta.flatten(1).norm(dim=1)
        assert torch.all(norms <= 0.3 * (1 + 1e-12)), norms
    final = (seen[-1] - clean).flatten(1).norm(dim=1)
    torch.testing.assert_close(final, torch.full_like(final, 0.3), rtol=1e-7, atol=0)


@pytest.mark.parametrize("name", METHODS)
def test_the_ascent_finds_a_larger_divergence_than_a_random_delta_of_its_size(name):
    """What K ascent steps are for: D at the final delta beats D at the random start scaled
    up to the same radius (the start alone, no step: alpha 0)."""
    values = {}
    for alpha in (0.0, 2.0):
        case = tiny_bert(torch.float64)
        torch.manual_seed(1)
        # init_std large enough that the start already sits on the ball (radius 0.5)
        adv = advnlp.build(name, case.model, epsilon=0.5, alpha=alpha, steps=2, init_std=1.0)
        adv.backward(case.closure)
        values[alpha] = float(adv.last_regulariser)
    assert values[2.0] > 2 * values[0.0] > 0, values


@pytest.mark.parametrize("name", METHODS)
def test_the_random_start_is_fixed_by_the_seed_and_matters(name):
    case = tiny_bert(torch.float64)
    first = _step(case, name, seed=5, init_std=0.1)
    again = _step(case, name, seed=5, init_std=0.1)
    other = _step(case, name, seed=6, init_std=0.1)
    for param, value in first.items():
        assert torch.equal(again[param], value), param
    assert any(not torch.allclose(other[n], v) for n, v in first.items())


def test_vat_trains_only_the_perturbed_side_and_smart_both():
    """VAT's clean prediction is a fixed target: its regulariser's gradient reaches the
    classifier through the perturbed pass only, so with the perturbation gone (a tiny ball)
    it vanishes; SMART's symmetric KL differentiates both sides (the same limit, also 0):
    told apart by the gradient w.r.t. the clean logits."""
    torch.manual_seed(0)
    clean = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    perturbed = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    vat = advnlp.VAT(plain_lstm().model)
    smart = advnlp.SMART(plain_lstm().model)
    (vat_clean,) = torch.autograd.grad(vat.divergence(clean, perturbed), clean, allow_unused=True)
    assert vat_clean is None
    (smart_clean,) = torch.autograd.grad(smart.divergence(clean, perturbed), clean)
    assert smart_clean.abs().sum() > 0
    torch.testing.assert_close(
        vat.divergence(clean, perturbed), kl_divergence(clean, perturbed), rtol=1e-12, atol=0
    )


def test_the_divergences_are_batch_means():
    torch.manual_seed(0)
    p, q = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    for divergence in (kl_divergence, symmetric_kl):
        one = divergence(p, q)
        torch.testing.assert_close(divergence(p.repeat(3, 1), q.repeat(3, 1)), one)
    log_p, log_q = p.log_softmax(-1), q.log_softmax(-1)
    by_hand = sum((a.exp() * (a - b)).sum() for a, b in zip(log_p, log_q, strict=True)) / 4
    torch.testing.assert_close(kl_divergence(p, q), by_hand)
    torch.testing.assert_close(symmetric_kl(p, q), kl_divergence(p, q) + kl_divergence(q, p))


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("epsilon", -1.0),
        ("alpha", float("nan")),
        ("steps", 0),
        ("init_std", -1e-5),
        ("kl_weight", "1"),
    ],
)
def test_a_bad_value_is_named(name, argument, value):
    with pytest.raises(advnlp.ConfigError, match=rf"^{argument} must be .*{value!r}"):
        advnlp.build(name, plain_lstm().model, **{argument: value})
