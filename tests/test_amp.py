"""Mixed precision on CPU: bf16 autocast, a GradScaler driving every backward pass, and float32
norms for half-precision gradients."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import advnlp
from advnlp.perturbation import Perturbation

from .models import SETTINGS, grads, tiny_bert, zero


def _cosine(a, b):
    a = torch.cat([v.flatten() for v in a.values()])
    b = torch.cat([v.flatten() for v in b.values()])
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("name", list(SETTINGS))
def test_bf16_autocast_matches_fp32(name):
    case = tiny_bert(torch.float32)
    adv = advnlp.build(name, case.model, **SETTINGS[name])
    torch.manual_seed(0)  # methods that draw noise draw the same in both runs
    adv.backward(case.closure)
    fp32 = grads(case.model)
    zero(case.model)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # a fresh method: no state from fp32's
        advnlp.build(name, case.model, **SETTINGS[name]).backward(case.closure)
    bf16 = grads(case.model)
    assert all(torch.isfinite(v).all() for v in bf16.values())
    assert _cosine(fp32, bf16) > 0.99


@pytest.mark.parametrize("pass_scaler", [False, True])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_grad_scaler_drives_every_backward(name, pass_scaler):
    """Scaled gradients / scale == plain gradients, whether or not the method knows the scaler."""
    case = tiny_bert(torch.float32)
    torch.manual_seed(0)  # methods that draw noise draw the same in both runs
    advnlp.build(name, case.model, **SETTINGS[name]).backward(case.closure)
    plain = grads(case.model)
    zero(case.model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    kwargs = (
        dict(SETTINGS[name], scaler=scaler)
        if pass_scaler and advnlp.METHODS[name].perturbs
        else SETTINGS[name]
    )
    calls = []

    def scaled_backward(loss):
        calls.append(loss.detach())
        scaler.scale(loss).backward()

    torch.manual_seed(0)
    advnlp.build(name, case.model, **kwargs).backward(case.closure, backward=scaled_backward)
    assert calls, "the method must route its backward passes through `backward=`"
    scaled = grads(case.model)
    for param, value in plain.items():
        torch.testing.assert_close(scaled[param] / 2.0**12, value, rtol=1e-4, atol=1e-7, msg=param)


def test_half_precision_gradients_get_float32_norms():
    ids = torch.tensor([[1, 2, 3, 0]])
    big = torch.full((1, 4, 8), 300.0, dtype=torch.float16)  # 300^2 overflows fp16 (max 65504)
    for scope in ("token", "example"):
        delta = Perturbation.from_gradients(scope, [ids], [big], padding_idx=0)
        assert delta.is_finite()
        unit = delta.normalized(1.0)
        assert unit.parts[0].dtype == torch.float32
        torch.testing.assert_close(float(unit.norms()[0].max()), 1.0, rtol=1e-5, atol=0)
        offset = unit.offset(0, ids)
        assert torch.equal(offset[0, 3], torch.zeros(8))  # padding is never moved


HALF = [torch.bfloat16, torch.float16]  # both run on CPU for these tiny models


def _half_case(dtype, factor: float = 1.0):
    """A tiny BERT with `dtype` weights (so its embedding gradients are `dtype`), and a float32
    twin holding the very same values; `scaled` returns the loss in float32 (as autocast
    gives it: a scale of 2**16 is inf in fp16) times factor."""
    half = tiny_bert(dtype)
    twin = tiny_bert(torch.float32)
    twin.model.load_state_dict({k: v.float() for k, v in half.model.state_dict().items()})
    for case in (half, twin):
        case.scaled = lambda c=case: c.closure().float() * factor
    return half, twin


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", [n for n in SETTINGS if n != "none"])
def test_every_method_on_half_weights(name, dtype):
    """Half embedding gradients all the way: no warning, finite half .grad, and the same
    gradients as the float32 twin up to half rounding."""
    half, twin = _half_case(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        torch.manual_seed(0)  # methods that draw noise draw the same in both runs
        advnlp.build(name, half.model, **SETTINGS[name]).backward(half.closure)
    torch.manual_seed(0)
    advnlp.build(name, twin.model, **SETTINGS[name]).backward(twin.closure)
    got = grads(half.model)
    assert all(v.dtype == dtype and torch.isfinite(v).all() for v in got.values())
    assert _cosine({k: v.float() for k, v in got.items()}, grads(twin.model)) > 0.99


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("scope", ["token", "example"])
def test_half_gradients_give_float32_directions(scope, dtype):
    """The direction built from a half model's real gradients is float32 with norm epsilon,
    also from gradients a GradScaler has scaled by 2**21 (their norm overflows fp16)."""
    half, _ = _half_case(dtype)
    adv = advnlp.FGM(half.model, epsilon=0.5, scope=scope)
    run = adv._forward(half.closure)
    grads_ = adv._input_gradients(run)
    assert grads_[0].dtype == dtype
    delta = adv._direction(scope, run, grads_, 0.5)
    assert delta.parts[0].dtype == torch.float32
    for norm in delta.norms():  # every example has real tokens: each norm is epsilon
        torch.testing.assert_close(norm, torch.full_like(norm, 0.5), rtol=1e-6, atol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        scaled = adv._direction(scope, run, [g * 2.0**21 for g in grads_], 0.5)
    torch.testing.assert_close(scaled.parts[0], delta.parts[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_gradient_penalty_squares_half_gradients_in_float32(dtype):
    half, _ = _half_case(dtype)
    adv = advnlp.GradientPenalty(half.model, epsilon=1.0)
    adv.backward(half.closure)
    with sdpa_kernel(SDPBackend.MATH):  # the kernel the penalty runs with: same rounding
        (g,) = adv._input_gradients(adv._forward(half.closure))
    assert g.dtype == dtype
    expected = 0.5 * g.float().pow(2).sum()
    assert adv.last_penalty.dtype == torch.float32
    # half squares or sums would be ~1e-3 off
    torch.testing.assert_close(adv.last_penalty, expected, rtol=1e-5, atol=0)


# Methods whose direction or penalty comes from torch.autograd.grad, which the scaler's
# `backward` never sees: they must scale the loss themselves.
SCALED = {
    "fgm": {"epsilon": 0.5, "adversarial_only": True},
    "pgd": {"epsilon": 0.5, "alpha": 0.2, "steps": 2, "adversarial_only": True},
    "gp": {"epsilon": 1.0},
}


@pytest.mark.parametrize("name", list(SCALED))
def test_grad_scaler_rescues_gradients_that_underflow_in_fp16(name):
    """fp16 weights and a loss of ~1e-6: unscaled, the embedding gradients underflow to 0 in
    fp16 and the perturbation (or penalty) vanishes; with the scaler passed to the method it
    matches the float32 twin. The penalty's epsilon is divided by 1e-6, so that it weighs
    against the loss as epsilon=1 does on the plain loss (it is quadratic in the loss's scale,
    the loss linear)."""
    factor = 1e-6
    kwargs = dict(SCALED[name])
    if name == "gp":
        kwargs["epsilon"] /= factor
    half, twin = _half_case(torch.float16, factor)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)

    def scaled_backward(loss):
        scaler.scale(loss).backward()

    def effect(case, **extra):
        """The method's gradients minus plain ones (the perturbation's or penalty's share)."""
        advnlp.build(name, case.model, **kwargs, **extra).backward(case.scaled, **backward)
        adversarial = grads(case.model)
        zero(case.model)
        advnlp.build("none", case.model).backward(case.scaled, **backward)
        plain = grads(case.model)
        zero(case.model)
        unscale = extra.get("scaler") and 2.0**16 or 1.0
        return {k: (adversarial[k].float() - plain[k].float()) / unscale for k in plain}

    backward = {}
    reference = effect(twin)
    backward = {"backward": scaled_backward}
    got = effect(half, scaler=scaler)
    assert _cosine(got, reference) > 0.95
