"""epsilon_unit="relative": epsilon is a fraction of the embedding's own size (the RMS norm of
the perturbed rows in token scope, each example's embedding norm in example scope), checked
against the perturbation the model actually received, recomputed here from the weights.
Tolerances are 1e-5 relative: the methods divide by ||g|| + 1e-8, as Su's original does."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

import advnlp
from advnlp import registry
from advnlp.errors import ConfigError

from .models import LABELS, PAD, PoolClassifier, token_batch


def _model() -> tuple[PoolClassifier, Tensor, Tensor]:
    torch.manual_seed(0)
    model = PoolClassifier().double()
    ids = token_batch()  # repeated tokens and a ragged tail of padding
    assert (ids == PAD).any()
    return model, ids, torch.arange(len(ids)) % LABELS


def _deltas(model: PoolClassifier, ids: Tensor, labels: Tensor, adv) -> list[Tensor]:
    """The offset each pass added to the token-embedding output: what the LSTM received, less
    the clean lookup and the position embeddings."""
    seen: list[Tensor] = []
    handle = model.lstm.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    try:
        adv.backward(lambda: model(ids, labels))
    finally:
        handle.remove()
    with torch.no_grad():
        clean = model.tokens(ids) + model.positions(torch.arange(ids.shape[1]))
    return [s - clean for s in seen]


def _token_rows(delta: Tensor, ids: Tensor) -> dict[int, Tensor]:
    """delta's row for each distinct non-padding id (every occurrence must carry the same)."""
    rows = {}
    for v in ids.unique().tolist():
        at = delta[ids == v]
        if v == PAD:
            assert at.abs().max() == 0
            continue
        torch.testing.assert_close(at, at[:1].expand_as(at), rtol=0, atol=1e-12)
        rows[v] = at[0]
    return rows


def _rms_row_norm(model: PoolClassifier, ids: Tensor) -> float:
    norms = [
        float(model.tokens.weight[v].detach().norm()) for v in ids.unique().tolist() if v != PAD
    ]
    return (sum(n * n for n in norms) / len(norms)) ** 0.5


def _example_norms(vectors: Tensor, ids: Tensor) -> Tensor:
    """Per-example L2 norm over non-padding positions."""
    return (vectors * (ids != PAD).unsqueeze(-1)).flatten(1).norm(dim=1)


TOKEN_SCOPE = [
    ("fgm", {"epsilon": 0.3, "scope": "token"}),
    (
        "pgd",
        {"epsilon": 0.3, "alpha": 0.5, "steps": 2, "scope": "token"},
    ),  # alpha > eps: on the ball
]
EXAMPLE_SCOPE = [
    ("fgm", {"epsilon": 0.3, "scope": "example"}),
    ("pgd", {"epsilon": 0.3, "alpha": 0.5, "steps": 2, "scope": "example"}),
    # a random start (at most 0.1 x sqrt(1/3) of the example) plus a step of 0.5: on the ball
    ("freelb", {"epsilon": 0.3, "alpha": 0.5, "steps": 2, "init_magnitude": 0.1}),
]


@pytest.mark.parametrize(("name", "kwargs"), TOKEN_SCOPE, ids=[n for n, _ in TOKEN_SCOPE])
def test_token_scope_global_norm_is_epsilon_times_rms_row_norm(name, kwargs):
    model, ids, labels = _model()
    adv = advnlp.build(name, model, epsilon_unit="relative", **kwargs)
    rows = _token_rows(_deltas(model, ids, labels, adv)[-1], ids)
    global_norm = float(torch.stack(list(rows.values())).norm())
    expected = kwargs["epsilon"] * _rms_row_norm(model, ids)
    assert global_norm == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("name", "kwargs"), EXAMPLE_SCOPE, ids=[n for n, _ in EXAMPLE_SCOPE])
def test_example_scope_norm_is_epsilon_times_each_examples_embedding_norm(name, kwargs):
    model, ids, labels = _model()
    adv = advnlp.build(name, model, epsilon_unit="relative", **kwargs)
    delta = _deltas(model, ids, labels, adv)[-1]
    assert delta[ids == PAD].abs().max() == 0
    with torch.no_grad():
        expected = kwargs["epsilon"] * _example_norms(model.tokens.weight[ids], ids)
    torch.testing.assert_close(_example_norms(delta, ids), expected, rtol=1e-5, atol=0)


def test_freelb_relative_start_is_the_absolute_start_times_each_examples_norm():
    model, ids, labels = _model()
    starts = {}
    for unit in ("absolute", "relative"):
        adv = advnlp.FreeLB(model, steps=1, init_magnitude=0.2, epsilon_unit=unit)
        torch.manual_seed(5)
        (starts[unit],) = _deltas(model, ids, labels, adv)
    with torch.no_grad():
        norms = _example_norms(model.tokens.weight[ids], ids).view(-1, 1, 1)
    torch.testing.assert_close(starts["relative"], starts["absolute"] * norms, rtol=1e-5, atol=0)


@pytest.mark.parametrize("scope", ["token", "example"])
def test_scaling_the_embedding_by_c_scales_relative_delta_by_c_not_absolute(scope):
    c = 3.0
    measured = {}
    for unit in ("absolute", "relative"):
        for factor in (1.0, c):
            model, ids, labels = _model()
            with torch.no_grad():
                model.tokens.weight.mul_(factor)
            adv = advnlp.FGM(model, epsilon=0.3, scope=scope, epsilon_unit=unit)
            delta = _deltas(model, ids, labels, adv)[-1]
            if scope == "token":  # the one global norm over the distinct rows
                measured[unit, factor] = torch.stack(list(_token_rows(delta, ids).values())).norm()
            else:  # each example's norm
                measured[unit, factor] = _example_norms(delta, ids)
    relative = measured["relative", c] / measured["relative", 1.0]
    absolute = measured["absolute", c] / measured["absolute", 1.0]
    torch.testing.assert_close(relative, torch.full_like(relative, c), rtol=1e-5, atol=0)
    torch.testing.assert_close(absolute, torch.ones_like(absolute), rtol=1e-5, atol=0)


ZERO = [
    ("fgm", {"epsilon": 0.0, "scope": "token", "adversarial_only": True}),
    ("fgm", {"epsilon": 0.0, "scope": "example", "adversarial_only": True}),
    ("pgd", {"epsilon": 0.0, "alpha": 0.0, "steps": 2, "scope": "token", "adversarial_only": True}),
    ("pgd", {"epsilon": 0.0, "alpha": 0.0, "steps": 2, "adversarial_only": True}),
    ("freelb", {"epsilon": 0.0, "alpha": 0.0, "steps": 2, "init_magnitude": 0.0}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), ZERO, ids=[f"{n}-{i}" for i, (n, _) in enumerate(ZERO)]
)
def test_relative_epsilon_zero_gives_the_plain_gradients_and_keeps_parameters(name, kwargs):
    model, ids, labels = _model()
    model(ids, labels).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    advnlp.build(name, model, epsilon_unit="relative", **kwargs).backward(
        lambda: model(ids, labels)
    )
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], rtol=1e-12, atol=1e-15, msg=n)
        assert torch.equal(p.detach(), before[n]), n


@pytest.mark.parametrize(("name", "kwargs"), TOKEN_SCOPE + EXAMPLE_SCOPE)
def test_parameters_bit_identical_after_relative_backward(name, kwargs):
    model, ids, labels = _model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    advnlp.build(name, model, epsilon_unit="relative", **kwargs).backward(
        lambda: model(ids, labels)
    )
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), n
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_epsilon_unit_is_validated_listed_and_recorded():
    for name in ("fgm", "pgd", "freelb"):
        assert advnlp.hyperparameters(name)["epsilon_unit"] == "absolute"
        with pytest.raises(ConfigError, match="epsilon_unit must be one of 'absolute', 'relative'"):
            registry.check(name, epsilon_unit="percent")
        model, _, _ = _model()
        assert advnlp.build(name, model, epsilon_unit="relative").settings()["epsilon_unit"] == (
            "relative"
        )
    with pytest.raises(ConfigError, match="does not take 'epsilon_unit'"):
        registry.check("gp", epsilon_unit="relative")
