"""The Trainer integration: one training_step gives the core method's gradients, and
method="none" trains exactly like a plain Trainer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import Trainer  # noqa: E402

import advnlp  # noqa: E402
from advnlp.hf import AdversarialTrainer, AdversarialTrainerMixin  # noqa: E402

from .models import (  # noqa: E402
    SETTINGS,
    accumulated_trainer_steps,
    grad_capture,
    noiseless,
    tiny_bert,
    trainer_args,
    trainer_rows,
)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_training_step_matches_core(tmp_path, name):
    case = tiny_bert(torch.float32)
    state = {k: v.clone() for k, v in case.model.state_dict().items()}
    capture = grad_capture()
    trainer = AdversarialTrainer(
        model=case.model,
        args=trainer_args(tmp_path),
        train_dataset=trainer_rows(case.ids),
        method=name,
        method_kwargs=noiseless(name, SETTINGS[name]),
        callbacks=[capture],
    )
    trainer.train()
    (trainer_grads,) = capture.grads

    reference = tiny_bert(torch.float32)
    reference.model.load_state_dict(state)
    advnlp.build(name, reference.model, **noiseless(name, SETTINGS[name])).backward(
        reference.closure
    )
    for param, p in reference.model.named_parameters():
        torch.testing.assert_close(trainer_grads[param], p.grad, rtol=1e-5, atol=1e-7, msg=param)


def test_method_none_trains_exactly_like_plain_trainer(tmp_path):
    """With gradient accumulation. The mixin turns model_accepts_loss_kwargs off (see hf.py: a
    classification head takes **kwargs yet ignores num_items_in_batch, so the Trainer would not
    divide by the accumulation steps); the plain Trainer gets the same setting."""
    results = []
    for cls, extra in ((Trainer, {}), (AdversarialTrainer, {"method": "none"})):
        case = tiny_bert(torch.float32, dropout=0.1)
        ids = torch.cat([case.ids, case.ids.flip(0), case.ids.roll(1, 1)])
        trainer = cls(
            model=case.model,
            train_dataset=trainer_rows(ids),
            args=trainer_args(
                tmp_path / cls.__name__,
                max_steps=4,
                per_device_train_batch_size=3,
                gradient_accumulation_steps=2,
            ),
            **extra,
        )
        if cls is Trainer:
            trainer.model_accepts_loss_kwargs = False
        trainer.train()
        results.append(case.model.state_dict())
    plain, ours = results
    for key in plain:
        assert torch.equal(plain[key], ours[key]), key


def test_gradient_accumulation_matches_one_batch(tmp_path):
    """Example-scope FGM: 2 micro-batches of 2 == 1 batch of 4.

    transformers 5 passes num_items_in_batch to models whose forward takes **kwargs and then
    skips its own division by the accumulation steps; BertForSequenceClassification ignores it
    (a plain Trainer gets k times the gradient there). The mixin turns that path off, so the
    Trainer divides by k itself."""
    steps = accumulated_trainer_steps(
        tmp_path, torch.float32, "fgm", {"epsilon": 0.5, "scope": "example"}
    )
    (one_batch, _), (accumulated, _) = steps
    for param in one_batch:
        torch.testing.assert_close(accumulated[param], one_batch[param], rtol=1e-5, atol=1e-7)


def test_bf16_on_cpu_trains_and_the_method_changes_the_gradients(tmp_path):
    """bf16 autocast through the Trainer: the gradient penalty's step has finite gradients
    that differ from a plain step's by more than bf16 rounding, in the direction of the
    float32 core method's difference."""

    def step_grads(method, **args):
        case = tiny_bert(torch.float32)
        capture = grad_capture()
        trainer = AdversarialTrainer(
            model=case.model,
            train_dataset=trainer_rows(case.ids),
            callbacks=[capture],
            method=method,
            method_kwargs={"epsilon": 1.0} if method == "gp" else {},
            args=trainer_args(tmp_path / method / str(args), **args),
        )
        output = trainer.train()
        assert torch.isfinite(torch.tensor(output.training_loss))
        (got,) = capture.grads
        assert all(torch.isfinite(v).all() for v in got.values())
        return torch.cat([v.flatten() for v in got.values()])

    bf16_effect = step_grads("gp", bf16=True) - step_grads("none", bf16=True)
    fp32_effect = step_grads("gp") - step_grads("none")
    assert fp32_effect.norm() > 0
    cosine = float(bf16_effect @ fp32_effect / (bf16_effect.norm() * fp32_effect.norm()))
    assert cosine > 0.9, cosine


@pytest.mark.parametrize(
    ("method", "takes_scaler"),
    [("fgm", True), ("gradient_penalty", True), ("none", False), ("baseline", False)],
)
def test_fp16_grad_scaler_reaches_the_method_and_every_backward(tmp_path, method, takes_scaler):
    """What accelerate sets up for fp16 on a GPU, on CPU: a real GradScaler drives every
    backward pass (the gradients come out scaled), and the method gets it when it takes one,
    aliases included ("baseline" is "none": no scaler, no error)."""
    scale = 2.0**10
    kwargs = {"epsilon": 0.5} if takes_scaler else {}
    case = tiny_bert(torch.float32)
    state = {k: v.clone() for k, v in case.model.state_dict().items()}
    capture = grad_capture()
    trainer = AdversarialTrainer(
        model=case.model,
        args=trainer_args(tmp_path, fp16=True, max_grad_norm=0.0),
        train_dataset=trainer_rows(case.ids),
        method=method,
        method_kwargs=kwargs,
        callbacks=[capture],
    )
    assert trainer.accelerator.scaler is None  # accelerate makes none on CPU
    scaler = torch.amp.GradScaler("cpu", init_scale=scale)
    trainer.accelerator.scaler = scaler
    trainer.train()
    adversary = trainer.adversary(trainer.model_wrapped)
    assert adversary.scaler is (scaler if takes_scaler else None)

    reference = tiny_bert(torch.float32)
    reference.model.load_state_dict(state)
    advnlp.build(method, reference.model, **kwargs).backward(reference.closure)
    (got,) = capture.grads
    for param, p in reference.model.named_parameters():
        torch.testing.assert_close(got[param] / scale, p.grad, rtol=1e-4, atol=1e-6, msg=param)


def test_mixin_with_own_trainer_subclass(tmp_path):
    class LoggingTrainer(Trainer):
        calls = 0

        def compute_loss(self, model, inputs, **kwargs):
            LoggingTrainer.calls += 1
            return super().compute_loss(model, inputs, **kwargs)

    class MyTrainer(AdversarialTrainerMixin, LoggingTrainer):
        pass

    case = tiny_bert(torch.float32)
    MyTrainer(
        model=case.model,
        args=trainer_args(tmp_path),
        train_dataset=trainer_rows(case.ids),
        method="pgd",
        method_kwargs={"steps": 2},
    ).train()
    assert LoggingTrainer.calls == 3  # clean pass + 2 adversarial passes, all via compute_loss


def test_bad_method_fails_at_construction(tmp_path):
    with pytest.raises(advnlp.ConfigError, match="unknown method 'fgsm'"):
        AdversarialTrainer(model=tiny_bert().model, args=trainer_args(tmp_path), method="fgsm")
    with pytest.raises(advnlp.ConfigError, match="epsilon must be a finite number >= 0, got -1"):
        AdversarialTrainer(
            model=tiny_bert().model,
            args=trainer_args(tmp_path),
            method="fgm",
            method_kwargs={"epsilon": -1},
        )
