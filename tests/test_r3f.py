"""R3F: the three ways a closure can hand over the logits give the same step, a closure with
none is told how, no noise (a plain step) at epsilon 0 or in eval mode, a batch-mean KL, its
own bad values named; and the KL methods (R3F, SMART, VAT) under gradient accumulation through
the Trainer and Lightning integrations, the noise on: the one batch's gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import advnlp
from advnlp.methods.r3f import symmetric_kl

from .models import (
    PAD,
    accumulated_trainer_steps,
    assert_closure_forms_agree,
    assert_plain_step,
    consumed,
    grads,
    plain_lstm,
    tiny_bert,
    zero,
)


def _step(case, closure) -> dict:
    zero(case.model)
    torch.manual_seed(3)
    advnlp.R3F(case.model, epsilon=0.5, kl_weight=2.0).backward(closure)
    return grads(case.model)


def test_the_closure_may_return_the_output_a_pair_or_the_loss_alone():
    case = tiny_bert(torch.float64)
    assert_closure_forms_agree(case, lambda closure: _step(case, closure))


def test_a_closure_without_logits_is_told_what_to_return():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 3))
    ids, labels = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([0, 2])
    adv = advnlp.R3F(model)
    with pytest.raises(advnlp.ClosureError, match=r"R3F needs the logits: return model\(\*\*batch"):
        adv.backward(lambda: F.cross_entropy(model(ids), labels))  # the loss alone
    assert not adv.embedding._forward_hooks and not model._forward_hooks


@pytest.mark.parametrize("mode", ["epsilon 0", "eval"])
def test_no_noise_is_a_plain_step(mode):
    case = tiny_bert(torch.float32)
    if mode == "eval":
        case.model.eval()
    calls = []
    adv = advnlp.R3F(case.model, epsilon=0.0 if mode == "epsilon 0" else 0.5)
    assert_plain_step(case, lambda: adv.backward(lambda: calls.append(1) or case.closure()))
    assert len(calls) == 1


def test_the_kl_is_a_batch_mean_and_symmetric():
    torch.manual_seed(0)
    p, q = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    one = symmetric_kl(p, q)
    torch.testing.assert_close(symmetric_kl(p.repeat(3, 1), q.repeat(3, 1)), one)
    torch.testing.assert_close(symmetric_kl(q, p), one)
    log_p, log_q = p.log_softmax(-1), q.log_softmax(-1)
    by_hand = sum(
        (a.exp() * (a - b)).sum() + (b.exp() * (b - a)).sum()
        for a, b in zip(log_p, log_q, strict=True)
    )
    torch.testing.assert_close(one, by_hand / 4)
    assert symmetric_kl(p, p) == 0


@pytest.mark.parametrize(
    ("argument", "value"),
    [("epsilon", -1.0), ("kl_weight", -0.5), ("kl_weight", "1"), ("noise", "gaussian")],
)
def test_a_bad_value_is_named(argument, value):
    with pytest.raises(advnlp.ConfigError, match=rf"^{argument} must be .*{value!r}"):
        advnlp.build("r3f", plain_lstm().model, **{argument: value})


@pytest.mark.parametrize("noise", ["uniform", "normal"])
def test_padding_gets_no_noise(noise):
    """Invisible to the gradients of the tiny models (padding is masked or at the tail), so
    checked on what the model consumed in the noisy pass."""
    case = tiny_bert(torch.float64)
    clean, seen = consumed(
        case, lambda closure: advnlp.R3F(case.model, epsilon=0.5, noise=noise).backward(closure)
    )
    real = (case.ids != PAD).unsqueeze(-1)
    assert torch.equal(seen[0], clean)  # the clean pass
    assert torch.equal(torch.where(real, 0, seen[1]), torch.where(real, 0, clean))
    assert (seen[1] - clean)[real.expand_as(clean)].abs().min() > 0


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("r3f", {"epsilon": 0.5, "kl_weight": 2.0}),
        ("r3f", {"epsilon": 0.5, "kl_weight": 2.0, "noise": "normal"}),
        ("smart", {"epsilon": 0.5, "init_std": 0.1, "kl_weight": 2.0}),
        ("vat", {"epsilon": 0.5, "init_std": 0.1, "kl_weight": 2.0}),
    ],
)
def test_hf_gradient_accumulation_gives_the_one_batch_gradients(tmp_path, name, kwargs):
    """AdversarialTrainer, 2 micro-batches of 2 == 1 batch of 4, with the noise on. The KL is
    a mean over the micro-batch and comes from the logits, so the Trainer's division of the
    loss by the accumulation steps does not reach it: the Trainer sets ``micro_batches`` and
    the KL is divided too (without it, the KL would weigh twice as much). The noise is the
    same in both runs: each micro-batch draws its rows after its clean pass, in order, from
    the generator the Trainer seeded (fixed-length rows: no padding to a per-batch length)."""
    pytest.importorskip("transformers")
    steps = accumulated_trainer_steps(tmp_path, torch.float64, name, kwargs)
    (one_batch, _), (accumulated, _) = steps
    told = [trainer.adversary(trainer.model_wrapped).micro_batches for _, trainer in steps]
    for param, value in one_batch.items():
        torch.testing.assert_close(accumulated[param], value, rtol=1e-7, atol=1e-10, msg=param)
    assert told == [1, 2]


@pytest.mark.parametrize("name", ["r3f", "smart"])
def test_lightning_gradient_accumulation_gives_the_one_batch_gradients(name):
    """The Lightning mixin, accumulate_grad_batches=2 over 2 batches of 4 == 1 batch of 8, the
    noise on (drawn in order after each clean pass, as in the Trainer test above)."""
    from .test_lightning import Classifier, batches, fit

    first, second = batches(2)
    whole = {key: torch.cat([first[key], second[key]]) for key in first}
    kwargs = {"epsilon": 0.5, "kl_weight": 2.0} | ({"init_std": 0.1} if name == "smart" else {})
    grads, told = [], []
    for data, accumulate in (([whole], 1), ([first, second], 2)):
        module = Classifier("none")
        module.net = plain_lstm(torch.float64).model  # returns the loss with .logits
        module.adversarial = advnlp.build(name, module.net, **kwargs)
        torch.manual_seed(7)
        fit(module, data, accumulate_grad_batches=accumulate)
        told.append(module.adversarial.micro_batches)
        grads.append(module.grads)
    one_batch, accumulated = grads
    assert one_batch.keys() == accumulated.keys()
    for param, value in one_batch.items():
        torch.testing.assert_close(accumulated[param], value, rtol=1e-7, atol=1e-10, msg=param)
    assert told == [1, 2]
