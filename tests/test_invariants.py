"""Invariants every method keeps, whatever the model, batch and settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import advnlp

from .models import (
    PAD,
    VOCAB,
    grads,
    label,
    noiseless,
    plain_lstm,
    switches,
    tiny_bert,
    tiny_gpt2,
    variants,
    zero,
)

# What the property tests draw for each hyperparameter, by name; switches and choices come
# from each method's config, and a number not listed here stays at its default.
DRAWS = {
    "epsilon": st.floats(0, 3),
    "alpha": st.floats(0, 1),
    "steps": st.integers(1, 3),
    "init_magnitude": st.floats(0, 1),
    "adv_lr": st.floats(0, 2),
    "adv_eps": st.floats(0, 0.5),
}


def method_settings(name: str) -> st.SearchStrategy[dict]:
    drawn = {key: DRAWS[key] for key in advnlp.hyperparameters(name) if key in DRAWS}
    drawn |= {key: st.sampled_from(values) for key, values in switches(name).items()}
    return st.fixed_dictionaries(drawn)


@st.composite
def batches(draw, min_length=1):
    """Random ids; in at least a third of the batches, rows end in a ragged run of padding."""
    batch, length = draw(st.integers(1, 5)), draw(st.integers(min_length, 9))
    ids = torch.tensor(
        draw(
            st.lists(
                st.lists(st.integers(1, VOCAB - 1), min_size=length, max_size=length),
                min_size=batch,
                max_size=batch,
            )
        )
    )
    padding = draw(st.sampled_from(["ragged", "none", "ragged", "scattered"]))
    if padding == "ragged":
        for row in range(batch):  # keep min_length real tokens in each row
            ids[row, draw(st.integers(min_length, length)) :] = PAD
    elif padding == "scattered":  # padding ids anywhere but the first position
        ids[:, 1:][ids[:, 1:] > VOCAB - 10] = PAD
    return ids


# AWP perturbs weights, not the embedding output: the bit-identical check matters most for it.
PERTURBING = [
    name
    for name in advnlp.method_names()
    if advnlp.registry.resolve(name).perturbs or name == "awp"
]
OTHERS = [name for name in advnlp.method_names() if name not in PERTURBING]


@st.composite
def method_and_settings(draw):
    # Perturbing methods dominate: with `none` the bit-identical check cannot fail.
    name = draw(st.sampled_from(PERTURBING * 6 + OTHERS))
    return name, draw(method_settings(name))


# A fresh seed for the weights of each case (drawn integers would repeat small values).
SEEDS = st.randoms(use_true_random=False)


def _snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _assert_unchanged(model, before):
    after = dict(model.named_parameters())
    assert set(after) == set(before)
    for name, value in before.items():
        assert torch.equal(after[name], value), f"{name} changed"


def _check_restored(case, name, kwargs):
    before = _snapshot(case.model)
    adv = advnlp.build(name, case.model, **kwargs)
    loss = adv.backward(case.closure)
    assert torch.isfinite(loss)
    _assert_unchanged(case.model, before)
    if adv.embedding is not None:
        assert not adv.embedding._forward_hooks  # the hook lives only inside backward()


@settings(max_examples=600, deadline=None, derandomize=True)
@given(ids=batches(), method=method_and_settings(), weights=SEEDS)
def test_parameters_bit_identical_plain_model(ids, method, weights):
    """600 random (weights, batch, padding, method, settings) cases on a plain LSTM model."""
    case = plain_lstm(torch.float32, ids=ids, seed=weights.getrandbits(31))
    _check_restored(case, *method)


@settings(max_examples=100, deadline=None, derandomize=True)
@given(
    ids=batches(min_length=2),
    method=method_and_settings(),
    tied=st.booleans(),
    weights=SEEDS,
)
def test_parameters_bit_identical_transformers(ids, method, tied, weights):
    """100 random cases on a tiny BERT or a tiny tied-embedding GPT-2 (>= 2 tokens: a causal
    LM has nothing to predict from one)."""
    make = tiny_gpt2 if tied else tiny_bert
    case = make(torch.float32, ids=ids, seed=weights.getrandbits(31))
    _check_restored(case, *method)


def test_hook_removed_when_closure_raises():
    case = plain_lstm(torch.float32)
    adv = advnlp.FGM(case.model)

    def broken():
        case.closure()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        adv.backward(broken)
    assert not adv.embedding._forward_hooks


# Every setting with adversarial_only=True, at epsilon 0.
ADVERSARIAL_ONLY = [
    pytest.param(name, {**kwargs, "epsilon": 0.0}, id=label(name, kwargs))
    for name in advnlp.method_names()
    for kwargs in variants(name)
    if kwargs.get("adversarial_only")
]


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt2, plain_lstm])
@pytest.mark.parametrize(("name", "kwargs"), ADVERSARIAL_ONLY)
def test_epsilon_zero_adversarial_only_gives_plain_gradients_exactly(make, name, kwargs):
    case = make(torch.float32)
    case.closure().backward()
    plain = grads(case.model)
    zero(case.model)
    advnlp.build(name, case.model, **kwargs).backward(case.closure)
    for param, value in grads(case.model).items():
        assert torch.equal(value, plain[param]), param


# The gradient penalty runs one pass and moves no input: nothing to see here.
# AWP perturbs the weight matrix itself (tied head included, by design): not an input method.
@pytest.mark.parametrize("method", [name for name in PERTURBING if name not in ("gp", "awp")])
def test_tied_output_head_is_never_perturbed(method):
    """BertForMaskedLM ties the decoder to the word embeddings: the decoder must read the
    unperturbed matrix in every pass, while the encoder input is perturbed."""
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        pad_token_id=PAD,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        tie_word_embeddings=True,
    )
    model = BertForMaskedLM(cfg)
    decoder = model.cls.predictions.decoder
    assert decoder.weight is model.bert.embeddings.word_embeddings.weight
    original = decoder.weight.detach().clone()
    ids = torch.randint(1, VOCAB, (2, 6))
    with torch.no_grad():
        clean = model.bert.embeddings(input_ids=ids)
    seen_weights, seen_inputs = [], []
    decoder.register_forward_pre_hook(
        lambda m, args: seen_weights.append(m.weight.detach().clone())
    )
    model.bert.embeddings.register_forward_hook(
        lambda m, args, out: seen_inputs.append(out.detach().clone())
    )
    kwargs = advnlp.registry.accepted(method, {"epsilon": 1.0})
    adv = advnlp.build(method, model, **kwargs)
    for _ in range(2):  # FreeFGM perturbs from its second step on
        adv.backward(lambda: model(input_ids=ids, labels=ids).loss)
    assert seen_weights and all(torch.equal(w, original) for w in seen_weights)
    assert not torch.equal(clean, seen_inputs[-1]), "nothing was perturbed"


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_gradient_penalty_is_not_a_no_op_on_default_attention(dropout):
    case = tiny_bert(torch.float32, dropout=dropout)
    assert case.model.config._attn_implementation == "sdpa"  # fused kernels by default
    torch.manual_seed(0)
    case.closure().backward()
    plain = grads(case.model)
    zero(case.model)
    adv = advnlp.GradientPenalty(case.model, epsilon=1.0)
    torch.manual_seed(0)
    adv.backward(case.closure)
    penalized = grads(case.model)
    assert adv.last_penalty > 0
    assert all(torch.isfinite(v).all() for v in penalized.values())
    diff = max((penalized[n] - plain[n]).abs().max().item() for n in plain)
    assert diff > 1e-6


def test_gradient_penalty_grows_with_epsilon():
    case = tiny_bert(torch.float64)
    deltas = []
    case.closure().backward()
    plain = grads(case.model)
    for eps in (0.5, 1.0, 2.0):
        zero(case.model)
        advnlp.GradientPenalty(case.model, epsilon=eps).backward(case.closure)
        g = grads(case.model)
        deltas.append(sum((g[n] - plain[n]).norm() for n in g))
    # the extra gradient is exactly linear in epsilon
    torch.testing.assert_close(deltas[1] / deltas[0], torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(deltas[2] / deltas[1], torch.tensor(2.0, dtype=torch.float64))


def _token_scope(name: str, kwargs: dict) -> bool:
    return {**advnlp.hyperparameters(name), **kwargs}.get("scope") == "token"


# Example scope adds up over micro-batches like the loss does (the gradient penalty only
# because the closure returns loss / 2: see GradientPenalty's docstring); token scope, as
# documented, takes ONE norm over the whole batch, and so does AWP (per weight tensor, from the
# gradient accumulated in .grad). Methods that draw noise run noiseless.
WHOLE_BATCH_NORM = {"awp"}
LINEAR, NOT_LINEAR = (
    [
        pytest.param(name, noiseless(name, kwargs), id=label(name, kwargs))
        for name in advnlp.method_names()
        for kwargs in variants(name)
        if (_token_scope(name, kwargs) or name in WHOLE_BATCH_NORM) == token
    ]
    for token in (False, True)
)


def _accumulated(make, name, kwargs):
    """Gradients of one full batch of 4, and of 2 micro-batches of 2 accumulated in .grad."""
    case = make()
    adv = advnlp.build(name, case.model, **kwargs)
    adv.backward(case.closure)
    full = grads(case.model)
    zero(case.model)
    for half in (slice(0, 2), slice(2, 4)):
        ids, labels = case.ids[half], torch.arange(4)[half] % 3
        mask = (ids != PAD).long()
        if make is tiny_bert:
            closure = lambda: case.model(input_ids=ids, attention_mask=mask, labels=labels).loss / 2  # noqa: E731, B023
        else:
            closure = lambda: case.model(ids, labels) / 2  # noqa: E731, B023
        adv.backward(closure)
    return full, grads(case.model)


@pytest.mark.parametrize("make", [tiny_bert, plain_lstm])
@pytest.mark.parametrize(("name", "kwargs"), LINEAR)
def test_accumulation_over_two_micro_batches_equals_full_batch(make, name, kwargs):
    full, accumulated = _accumulated(make, name, kwargs)
    for param, value in full.items():
        torch.testing.assert_close(accumulated[param], value, rtol=1e-5, atol=1e-9, msg=param)


@pytest.mark.parametrize(("name", "kwargs"), NOT_LINEAR)
def test_token_scope_differs_under_accumulation(name, kwargs):
    full, accumulated = _accumulated(plain_lstm, name, kwargs)
    assert any(not torch.allclose(accumulated[p], full[p], rtol=1e-5, atol=1e-9) for p in full)


def test_import_advnlp_stays_light():
    """`import advnlp` loads nothing beyond what `import torch` itself loads."""
    program = Path(__file__).with_name("programs") / "import_advnlp_light.py"
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
