"""The Trainer integration: one training_step gives the core method's gradients, and
method="none" trains exactly like a plain Trainer."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("transformers")

from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402

import advnlp  # noqa: E402
from advnlp.hf import AdversarialTrainer, AdversarialTrainerMixin  # noqa: E402

from .models import PAD, SETTINGS, tiny_bert  # noqa: E402


def _rows(ids):
    mask = (ids != PAD).long()
    return [
        {"input_ids": i, "attention_mask": m, "labels": torch.tensor(n % 3)}
        for n, (i, m) in enumerate(zip(ids, mask, strict=True))
    ]


class GradCapture(TrainerCallback):
    """Copies every parameter's .grad just before each optimizer step."""

    def __init__(self):
        self.grads = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        self.grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})


def _args(tmp_path, **overrides):
    base = dict(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        max_steps=1,
        learning_rate=1e-3,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
        seed=0,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    base.update(overrides)
    return TrainingArguments(**base)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_training_step_matches_core(tmp_path, name):
    case = tiny_bert(torch.float32)
    state = {k: v.clone() for k, v in case.model.state_dict().items()}
    capture = GradCapture()
    trainer = AdversarialTrainer(
        model=case.model,
        args=_args(tmp_path),
        train_dataset=_rows(case.ids),
        method=name,
        method_kwargs=SETTINGS[name],
        callbacks=[capture],
    )
    trainer.train()
    (trainer_grads,) = capture.grads

    reference = tiny_bert(torch.float32)
    reference.model.load_state_dict(state)
    advnlp.build(name, reference.model, **SETTINGS[name]).backward(reference.closure)
    for param, p in reference.model.named_parameters():
        torch.testing.assert_close(trainer_grads[param], p.grad, rtol=1e-5, atol=1e-7, msg=param)


def test_method_none_trains_exactly_like_plain_trainer(tmp_path):
    results = []
    for cls, extra in ((Trainer, {}), (AdversarialTrainer, {"method": "none"})):
        case = tiny_bert(torch.float32, dropout=0.1)
        ids = torch.cat([case.ids, case.ids.flip(0), case.ids.roll(1, 1)])
        trainer = cls(
            model=case.model,
            train_dataset=_rows(ids),
            args=_args(
                tmp_path / cls.__name__,
                max_steps=4,
                per_device_train_batch_size=3,
                gradient_accumulation_steps=2,
            ),
            **extra,
        )
        trainer.train()
        results.append(case.model.state_dict())
    plain, ours = results
    for key in plain:
        assert torch.equal(plain[key], ours[key]), key


def test_gradient_accumulation_matches_one_batch(tmp_path):
    """Example-scope FGM: 2 micro-batches of 2 == 1 batch of 4.

    transformers 5 passes num_items_in_batch to models whose forward takes **kwargs and then
    skips its own division by the accumulation steps; BertForSequenceClassification ignores it
    (a plain Trainer gets k times the gradient there too, and test_method_none_... shows we
    mirror the Trainer). Turning that path off makes the Trainer divide by k itself."""
    grads = []
    for batch, accumulate in ((4, 1), (2, 2)):
        case = tiny_bert(torch.float32, seed=1)
        capture = GradCapture()
        trainer = AdversarialTrainer(
            model=case.model,
            train_dataset=_rows(case.ids),
            callbacks=[capture],
            args=_args(
                tmp_path / str(batch),
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulate,
            ),
            method="fgm",
            method_kwargs={"epsilon": 0.5, "scope": "example"},
        )
        trainer.model_accepts_loss_kwargs = False
        trainer.train()
        grads.append(capture.grads[0])
    for param in grads[0]:
        torch.testing.assert_close(grads[1][param], grads[0][param], rtol=1e-5, atol=1e-7)


def test_bf16_on_cpu_trains(tmp_path):
    case = tiny_bert(torch.float32)
    trainer = AdversarialTrainer(
        model=case.model,
        train_dataset=_rows(case.ids) * 4,
        method="gp",
        method_kwargs={"epsilon": 1.0},
        args=_args(tmp_path, max_steps=3, bf16=True),
    )
    output = trainer.train()
    assert torch.isfinite(torch.tensor(output.training_loss))


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
        args=_args(tmp_path),
        train_dataset=_rows(case.ids),
        method="pgd",
        method_kwargs={"steps": 2},
    ).train()
    assert LoggingTrainer.calls == 3  # clean pass + 2 adversarial passes, all via compute_loss


def test_bad_method_fails_at_construction(tmp_path):
    with pytest.raises(advnlp.ConfigError, match="unknown method 'fgsm'"):
        AdversarialTrainer(model=tiny_bert().model, args=_args(tmp_path), method="fgsm")
    with pytest.raises(advnlp.ConfigError, match="epsilon must be a finite number >= 0, got -1"):
        AdversarialTrainer(
            model=tiny_bert().model,
            args=_args(tmp_path),
            method="fgm",
            method_kwargs={"epsilon": -1},
        )
