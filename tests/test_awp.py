"""AWP: during the adversarial pass exactly the chosen tensors are moved, each within its box
w0 ± adv_eps|w0|; afterwards all weights are bit-identical; start_step delays it; the
selection rules and bad values are named."""

from __future__ import annotations

import pytest
import torch

import advnlp

from . import reference
from .models import grads, plain_lstm, tiny_bert, zero


def _weights_during_adversarial_pass(case, adv):
    """The parameters as the closure saw them on each call of one ``adv.backward``."""
    seen = []

    def closure():
        seen.append({n: p.detach().clone() for n, p in case.model.named_parameters()})
        return case.closure()

    adv.backward(closure)
    return seen


def test_only_weight_matrices_move_and_each_stays_in_its_box():
    case = tiny_bert(torch.float64)
    before = {n: p.detach().clone() for n, p in case.model.named_parameters()}
    adv = advnlp.AWP(case.model, adv_eps=0.05)
    clean, adversarial = _weights_during_adversarial_pass(case, adv)
    chosen = {name for name, _ in adv.chosen}
    assert "bert.embeddings.word_embeddings.weight" in chosen
    assert all(before[n].dim() >= 2 and "weight" in n for n in chosen)
    for name, value in before.items():
        assert torch.equal(clean[name], value), name
        moved = adversarial[name] - value
        if name in chosen:
            assert moved.abs().max() > 0, name
            bound = 0.05 * value.abs()
            assert (moved.abs() <= bound * (1 + 1e-12)).all(), name
            # adv_lr = 1 steps by ||w||: the box binds
            assert (moved.abs() >= bound * (1 - 1e-9))[moved != 0].any(), name
        else:  # biases, LayerNorm, position tables' neighbours in 1-dim
            assert torch.equal(adversarial[name], value), name
        assert torch.equal(dict(case.model.named_parameters())[name], value), name


def test_include_vectors_and_regex_choose_the_tensors():
    model = tiny_bert(torch.float64).model
    with_vectors = {n for n, _ in advnlp.AWP(model, include_vectors=True).chosen}
    assert "bert.embeddings.LayerNorm.weight" in with_vectors
    assert not any(n.endswith("bias") for n in with_vectors)
    only_embeddings = {n for n, _ in advnlp.AWP(model, param_regex=r"word_embeddings").chosen}
    assert only_embeddings == {"bert.embeddings.word_embeddings.weight"}
    with pytest.raises(advnlp.ConfigError, match=r"^param_regex 'no_such' matches no trainable"):
        advnlp.AWP(model, param_regex="no_such")


def test_start_step_calls_are_plain_then_awp_begins():
    case = plain_lstm(torch.float64)
    reference.none(case)
    plain = grads(case.model)
    zero(case.model)
    reference.awp(case, 1.0, 0.01, 0, "weight", False)
    perturbed = grads(case.model)

    adv = advnlp.AWP(case.model, start_step=2)
    for expected in (plain, plain, perturbed):
        zero(case.model)
        adv.backward(case.closure)
        for name, value in grads(case.model).items():
            torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-8, msg=name)
    assert any(not torch.allclose(plain[n], perturbed[n]) for n in plain)


def test_zero_size_is_a_plain_step():
    case = plain_lstm(torch.float64)
    reference.none(case)
    plain = grads(case.model)
    for kwargs in ({"adv_lr": 0.0}, {"adv_eps": 0.0}):
        zero(case.model)
        calls = []
        advnlp.AWP(case.model, **kwargs).backward(case.closure, backward=calls.append)
        assert len(calls) == 1
        zero(case.model)
        advnlp.AWP(case.model, **kwargs).backward(case.closure)
        for name, value in grads(case.model).items():
            assert torch.equal(value, plain[name]), name


def test_restored_when_the_adversarial_pass_raises():
    case = plain_lstm(torch.float32)
    before = {n: p.detach().clone() for n, p in case.model.named_parameters()}
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("out of memory, say")
        return case.closure()

    with pytest.raises(RuntimeError, match="out of memory"):
        advnlp.AWP(case.model).backward(closure)
    for name, param in case.model.named_parameters():
        assert torch.equal(param, before[name]), name


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"adv_lr": -1}, r"^adv_lr must be a finite number >= 0, got -1"),
        ({"adv_eps": float("inf")}, r"^adv_eps must be a finite number >= 0, got inf"),
        ({"start_step": 1.5}, r"^start_step must be an integer >= 0, got 1.5"),
        ({"param_regex": "(weight"}, r"^param_regex must be a regex, got '\(weight'"),
        ({"include_vectors": 1}, r"^include_vectors must be True or False, got 1"),
    ],
)
def test_bad_values_are_named(kwargs, pattern):
    with pytest.raises(advnlp.ConfigError, match=pattern):
        advnlp.build("awp", plain_lstm().model, **kwargs)


def test_takes_no_target_or_scaler():
    with pytest.raises(advnlp.ConfigError, match=r"does not take 'target'"):
        advnlp.build("awp", plain_lstm().model, target="tokens")
    with pytest.raises(advnlp.ConfigError, match=r"takes neither target= nor scaler="):
        advnlp.AWP(plain_lstm().model, scaler=torch.amp.GradScaler("cpu", enabled=False))
