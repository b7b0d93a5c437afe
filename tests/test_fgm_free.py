"""FreeFGM: its second step on a batch is FGM's adversarial-only step (the reference formula),
tokens it has not seen are not moved, epsilon 0 is a plain step every time, bad values named."""

from __future__ import annotations

import pytest
import torch

import advnlp

from . import reference
from .models import CASES, consumed, grads, tiny_bert, token_batch, zero


@pytest.mark.parametrize("case_name", list(CASES))
def test_second_step_is_fgm_adversarial_only_from_the_first_steps_gradient(case_name):
    """Same batch, no optimizer step in between: the cached rows are FGM's token-scope delta
    built from the gradient at E (step 1 is unperturbed), so step 2 trains on loss(E + delta)."""
    case = CASES[case_name]()
    reference.none(case)
    plain = grads(case.model)
    zero(case.model)
    reference.fgm(case, 0.5, "token", adversarial_only=True)
    expected = grads(case.model)

    zero(case.model)
    adv = advnlp.build("fgm_free", case.model, epsilon=0.5)
    adv.backward(case.closure)
    for name, value in grads(case.model).items():
        torch.testing.assert_close(value, plain[name], rtol=1e-5, atol=1e-8, msg=name)
    zero(case.model)
    adv.backward(case.closure)
    for name, value in grads(case.model).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-8, msg=name)


def test_only_tokens_seen_before_are_moved_by_their_cached_rows():
    first = tiny_bert(torch.float64, ids=token_batch(seed=0))
    adv = advnlp.FreeFGM(first.model, epsilon=0.5)
    adv.backward(first.closure)
    keys, rows = adv._keys.clone(), adv._rows.clone()
    second = tiny_bert(torch.float64, ids=token_batch(seed=1) + 10)  # ids 11..21: some new

    def step(closure):
        adv_second = advnlp.FreeFGM(second.model, epsilon=0.5)
        adv_second._keys, adv_second._rows = keys, rows
        adv_second.backward(closure)

    clean, seen = consumed(second, step)
    moved = seen[0] - clean
    seen = torch.isin(second.ids, keys[keys != 0])
    assert seen.any() and (~seen & (second.ids != 0)).any()
    for position in zip(*torch.nonzero(second.ids != 0, as_tuple=True), strict=True):
        token = second.ids[position]
        expected = rows[keys == token][0] if seen[position] else torch.zeros_like(moved[position])
        torch.testing.assert_close(moved[position], expected, rtol=1e-12, atol=1e-12)


def test_epsilon_zero_is_a_plain_step_every_time():
    case = tiny_bert(torch.float32)
    case.closure().backward()
    plain = grads(case.model)
    adv = advnlp.FreeFGM(case.model, epsilon=0.0)
    for _ in range(2):
        zero(case.model)
        adv.backward(case.closure)
        for name, value in grads(case.model).items():
            assert torch.equal(value, plain[name]), name


@pytest.mark.parametrize("value", [-0.5, "1", None])
def test_a_bad_epsilon_is_named(value):
    with pytest.raises(advnlp.ConfigError, match=rf"^epsilon must be .*{value!r}"):
        advnlp.build("fgm_free", tiny_bert().model, epsilon=value)


def test_rows_of_tokens_not_in_the_batch_are_kept():
    case = tiny_bert(torch.float64, ids=token_batch(seed=0))
    adv = advnlp.FreeFGM(case.model, epsilon=0.5)
    adv.backward(case.closure)
    first = dict(zip(adv._keys.tolist(), adv._rows, strict=True))
    other = tiny_bert(torch.float64, ids=token_batch(seed=1) + 10)
    adv.model, adv.embedding = other.model, other.model.get_input_embeddings()
    adv.backward(other.closure)
    kept = set(first) - set(other.ids.unique().tolist())
    assert kept and set(adv._keys.tolist()) == set(first) | set(other.ids.unique().tolist())
    for token in kept:
        torch.testing.assert_close(adv._rows[adv._keys == token][0], first[token], rtol=0, atol=0)
