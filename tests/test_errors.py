"""Each user mistake gets a ValueError/TypeError subclass whose message repeats the value and
says what to change."""

from __future__ import annotations

import pytest
import torch

import advnlp

from .models import plain_lstm, tiny_bert


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("fgm", {"epsilon": -0.5}, r"epsilon must be a finite number >= 0, got -0.5"),
        ("fgm", {"epsilon": float("nan")}, r"epsilon must be a finite number >= 0, got nan"),
        ("fgm", {"epsilon": "0.5"}, r"epsilon must be a number, got '0.5' \(str\)"),
        ("gp", {"epsilon": -1}, r"epsilon must be a finite number >= 0, got -1"),
        ("fgm", {"scope": "vocab"}, r"scope must be one of 'token', 'example', got 'vocab'"),
        ("pgd", {"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ("pgd", {"steps": 1.5}, r"steps must be an integer >= 1, got 1.5"),
        ("pgd", {"alpha": -0.1}, r"alpha must be a finite number >= 0, got -0.1"),
        ("freelb", {"steps": -2}, r"steps must be an integer >= 1, got -2"),
        ("freelb", {"init_magnitude": -1.0}, r"init_magnitude must be a finite number >= 0"),
        (
            "fgm",
            {"alpha": 0.1},
            r"method 'fgm' does not take 'alpha'; it takes: adversarial_only, "
            r"data_parallel_group, epsilon, epsilon_unit, scaler, scope, start_step, target",
        ),
        ("none", {"epsilon": 1.0}, r"method 'none' takes no hyperparameters, got epsilon"),
    ],
)
def test_bad_hyperparameters(name, kwargs, pattern):
    with pytest.raises(advnlp.ConfigError, match=pattern) as info:
        advnlp.build(name, plain_lstm().model, **kwargs)
    assert isinstance(info.value, ValueError)


def test_unknown_method_lists_known_ones():
    with pytest.raises(
        advnlp.ConfigError,
        match=r"unknown method 'fgsm'; known methods: none, fgm, gp, pgd, freelb",
    ):
        advnlp.build("fgsm", plain_lstm().model)


def test_aliases_resolve():
    assert isinstance(advnlp.build("gradient_penalty", plain_lstm().model), advnlp.GradientPenalty)
    assert isinstance(advnlp.build("FGM", plain_lstm().model), advnlp.FGM)


def test_closure_returning_model_output():
    case = tiny_bert()
    adv = advnlp.FGM(case.model)
    with pytest.raises(
        advnlp.ClosureError,
        match=r"got SequenceClassifierOutput \(return model\(\*\*batch\).loss\)",
    ):
        adv.backward(
            lambda: case.model(input_ids=case.ids, labels=torch.zeros(4, dtype=torch.long))
        )


def test_closure_returning_non_scalar():
    case = plain_lstm()
    adv = advnlp.FGM(case.model)
    with pytest.raises(advnlp.ClosureError, match=r"shape \(2,\); reduce it"):
        adv.backward(lambda: case.closure().repeat(2))


@pytest.mark.parametrize("name", advnlp.method_names())
def test_closure_returning_detached_loss(name):
    case = plain_lstm()
    with pytest.raises(advnlp.ClosureError, match="does not require grad"):
        advnlp.build(name, case.model).backward(lambda: case.closure().detach())


def test_backward_under_no_grad():
    case = plain_lstm()
    adv = advnlp.FGM(case.model)
    with torch.no_grad(), pytest.raises(advnlp.ClosureError, match=r"gradients are disabled"):
        adv.backward(case.closure)


def test_closure_that_bypasses_the_embedding():
    case = tiny_bert()
    adv = advnlp.FGM(case.model)
    with pytest.raises(
        advnlp.ClosureError,
        match=r"never called the token embedding 'bert.embeddings.word_embeddings'",
    ):
        adv.backward(lambda: case.loss_from_embeds(case.lookup()))


def test_model_without_trainable_parameters():
    model = plain_lstm().model.requires_grad_(False)
    with pytest.raises(advnlp.ConfigError, match=r"no parameter of PoolClassifier requires grad"):
        advnlp.FGM(model)


def _lstm_inputs(frozen: bool) -> tuple[list[torch.Tensor], torch.nn.Module]:
    """What the LSTM received in each pass of one FGM step (embedding frozen or not)."""
    case = plain_lstm()
    case.model.tokens.requires_grad_(not frozen)
    seen = []
    case.model.lstm.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach()))
    advnlp.FGM(case.model, epsilon=1.0).backward(case.closure)
    return seen, case.model


def test_frozen_embedding_is_still_perturbed():
    seen, model = _lstm_inputs(frozen=True)
    assert model.tokens.weight.grad is None
    assert model.head.weight.grad is not None
    clean, adversarial = seen
    assert (adversarial - clean).abs().max() > 1e-3, "the second pass was not perturbed"
    # exactly the perturbation the trained embedding gets
    torch.testing.assert_close(adversarial - clean, _lstm_inputs(frozen=False)[0][1] - clean)


def test_model_must_be_a_module():
    with pytest.raises(TypeError, match="must be a torch.nn.Module, got function"):
        advnlp.FGM(lambda x: x)
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        advnlp.build("none", "bert-base-chinese")


def test_batch_changing_between_passes():
    case = plain_lstm()
    adv = advnlp.FGM(case.model, epsilon=1.0)
    calls = iter([case.ids, case.ids.flip(0) + 20])
    labels = torch.arange(4) % 3
    with pytest.raises(RuntimeError, match="same batch every time"):
        adv.backward(lambda: case.model(next(calls), labels))


def test_non_finite_gradient_warns_and_skips():
    case = plain_lstm(torch.float32)
    before = {n: p.detach().clone() for n, p in case.model.named_parameters()}
    adv = advnlp.FGM(case.model, epsilon=1.0)
    with pytest.warns(RuntimeWarning, match="not finite.*not perturbed"):
        adv.backward(lambda: case.closure() * torch.tensor(float("inf")))
    for n, p in case.model.named_parameters():
        assert torch.equal(p, before[n])
