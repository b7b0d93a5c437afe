"""Mixed precision on CPU: bf16 autocast, a GradScaler driving every backward pass, and float32
norms for half-precision gradients."""

from __future__ import annotations

import pytest
import torch

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
    adv.backward(case.closure)
    fp32 = grads(case.model)
    zero(case.model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        adv.backward(case.closure)
    bf16 = grads(case.model)
    assert all(torch.isfinite(v).all() for v in bf16.values())
    assert _cosine(fp32, bf16) > 0.99


@pytest.mark.parametrize("pass_scaler", [False, True])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_grad_scaler_drives_every_backward(name, pass_scaler):
    """Scaled gradients / scale == plain gradients, whether or not the method knows the scaler."""
    case = tiny_bert(torch.float32)
    advnlp.build(name, case.model, **SETTINGS[name]).backward(case.closure)
    plain = grads(case.model)
    zero(case.model)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    kwargs = (
        dict(SETTINGS[name], scaler=scaler) if pass_scaler and name != "none" else SETTINGS[name]
    )
    calls = []

    def scaled_backward(loss):
        calls.append(loss.detach())
        scaler.scale(loss).backward()

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
