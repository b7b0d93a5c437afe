"""NEFTune: the same noise as transformers' ``neftune_noise_alpha`` where there is no padding,
none on padding, none in eval mode or at alpha 0, and its own bad values named."""

from __future__ import annotations

import pytest
import torch
from transformers.integrations.neftune import neftune_post_forward_hook

import advnlp

from .models import assert_plain_step, consumed, grads, tiny_bert, tiny_gpt2, token_batch, zero


def _transformers_step(case, alpha: float) -> dict:
    """One step with transformers' own hook on the model's input embedding."""
    embedding = case.model.get_input_embeddings()
    embedding.neftune_noise_alpha = alpha
    handle = embedding.register_forward_hook(neftune_post_forward_hook)
    try:
        case.closure().backward()
    finally:
        handle.remove()
    return grads(case.model)


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt2])
def test_equals_transformers_neftune_without_padding(make):
    """To 1e-6: transformers computes alpha / sqrt(L * d) in float32 (a float32 sqrt of an
    integer tensor), advnlp in the output's dtype; the draws are the same."""
    case = make(torch.float64, ids=token_batch(pad=False))
    torch.manual_seed(7)
    expected = _transformers_step(case, 5.0)
    zero(case.model)
    torch.manual_seed(7)
    advnlp.NEFTune(case.model, alpha=5.0).backward(case.closure)
    for name, value in grads(case.model).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-6, atol=1e-9, msg=name)
    zero(case.model)
    case.closure().backward()  # and the noise changed something
    assert any(not torch.allclose(v, expected[n]) for n, v in grads(case.model).items())


def test_padding_gets_no_noise_and_real_length_sets_the_size():
    case = tiny_bert(torch.float64)  # ragged padding: rows of 7, 6 and 5 real tokens

    def step(closure):
        torch.manual_seed(7)
        advnlp.NEFTune(case.model, alpha=5.0).backward(closure)

    clean, seen = consumed(case, step)
    noise = seen[0] - clean
    real = case.ids != 0
    assert torch.equal(noise[~real], torch.zeros_like(noise[~real]))
    for row in range(len(case.ids)):
        bound = 5.0 / (int(real[row].sum()) * clean.shape[-1]) ** 0.5
        assert noise[row][real[row]].abs().max() <= bound
        assert noise[row][real[row]].abs().max() > 0.9 * bound  # U(-bound, bound), 16 x L draws


@pytest.mark.parametrize("mode", ["alpha 0", "eval"])
def test_no_noise_at_alpha_zero_or_in_eval_mode(mode):
    case = tiny_bert(torch.float32)
    if mode == "eval":
        case.model.eval()
    adv = advnlp.NEFTune(case.model, alpha=0.0 if mode == "alpha 0" else 5.0)
    loss = assert_plain_step(case, lambda: adv.backward(case.closure))
    assert torch.equal(loss, case.closure().detach())


@pytest.mark.parametrize("value", [-1.0, "5", float("nan"), True])
def test_a_bad_alpha_is_named(value):
    with pytest.raises(advnlp.ConfigError, match=r"^alpha must be "):
        advnlp.NEFTuneConfig(alpha=value)
    with pytest.raises(advnlp.ConfigError, match=r"^alpha must be .*" + repr(value)[:2]):
        advnlp.build("neftune", tiny_bert().model, alpha=value)
