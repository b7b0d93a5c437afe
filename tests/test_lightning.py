"""advnlp.lightning: one Lightning training step gives the gradients of the core method run by
hand on the same model and batches, with automatic and manual optimization, gradient
accumulation and a precision plugin that scales every backward pass."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

try:
    import lightning.pytorch as pl
except ImportError:
    pl = pytest.importorskip("pytorch_lightning")

import advnlp
from advnlp.lightning import AdversarialMixin

from .models import NOISE, SETTINGS, noiseless, tiny_bert

# Lightning 2.6 with torch >= 2.10 (not ours): pytree's LeafSpec check is deprecated.
pytestmark = pytest.mark.filterwarnings(r"ignore:`isinstance\(treespec, LeafSpec\)`:FutureWarning")

VOCAB, HIDDEN, LABELS, BATCH = 20, 8, 3, 4


class Net(nn.Module):
    """Embedding (padding_idx=0) -> masked mean-pool -> tanh -> linear, cross-entropy."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(VOCAB, HIDDEN, padding_idx=0)
        self.head = nn.Linear(HIDDEN, LABELS)

    def forward(self, ids: Tensor, labels: Tensor) -> Tensor:
        e = self.embed(ids)  # (B, T, H)
        mask = (ids != 0).unsqueeze(-1).to(e.dtype)
        pooled = (e * mask).sum(1) / mask.sum(1).clamp_min(1)
        return F.cross_entropy(self.head(torch.tanh(pooled)), labels)


def batches(count: int = 2) -> list[dict[str, Tensor]]:
    generator = torch.Generator().manual_seed(1)
    out = []
    for _ in range(count):
        ids = torch.randint(1, 8, (BATCH, 6), generator=generator)  # few ids: repeated tokens
        for row in range(BATCH):
            ids[row, 6 - row % 3 :] = 0
        out.append({"ids": ids, "labels": torch.arange(BATCH) % LABELS})
    return out


class Classifier(AdversarialMixin, pl.LightningModule):
    def __init__(self, name: str | None, *, manual: bool = False, as_dict: bool = False) -> None:
        super().__init__()
        self.net = Net()
        self.adversarial = (
            None
            if name is None
            else advnlp.build(name, self.net, **noiseless(name, SETTINGS[name]))
        )
        self.automatic_optimization = not manual
        self.as_dict = as_dict
        self.grads: dict[str, Tensor] = {}
        self.outputs: list = []

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        return self.net(batch["ids"], batch["labels"])

    def training_step(self, batch, batch_idx):
        if not self.automatic_optimization:
            opt = self.optimizers()
            opt.zero_grad()
            loss = self.adversarial_backward(lambda: self.loss(batch))
            opt.step()
        else:
            loss = self.loss(batch)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=BATCH)
        return {"loss": loss, "extra": 1} if self.as_dict else loss

    def on_before_optimizer_step(self, optimizer) -> None:
        named = self.net.named_parameters()
        self.grads = {n: p.grad.detach().clone() for n, p in named if p.grad is not None}

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        self.outputs.append(outputs)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


class Times4(pl.plugins.Precision):
    """Scales every loss before backward, as a GradScaler does (a power of two: exact)."""

    def pre_backward(self, tensor: Tensor, module) -> Tensor:
        return super().pre_backward(tensor * 4, module)


def fit(module: Classifier, data: list, **trainer_kwargs) -> pl.Trainer:
    settings = {
        "max_steps": 1,
        "accelerator": "cpu",
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = pl.Trainer(**{**settings, **trainer_kwargs})
    loader = torch.utils.data.DataLoader(data, batch_size=None)  # items are whole batches
    trainer.fit(module, loader)
    return trainer


def by_hand(name: str, data: list, accumulate: int = 1) -> tuple[dict[str, Tensor], list]:
    net = Net()
    adv = advnlp.build(name, net, **noiseless(name, SETTINGS[name]))
    losses = [
        adv.backward(lambda b=b: net(b["ids"], b["labels"]) / accumulate) for b in data[:accumulate]
    ]
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()}, losses


def assert_grads(got: dict[str, Tensor], expected: dict[str, Tensor], factor: float = 1.0) -> None:
    assert got.keys() == expected.keys()
    for n in expected:
        torch.testing.assert_close(got[n], expected[n] * factor, rtol=0, atol=1e-6, msg=n)


@pytest.mark.parametrize("manual", [False, True], ids=["automatic", "manual"])
@pytest.mark.parametrize("name", list(SETTINGS))
def test_one_step_matches_the_core(name, manual):
    data = batches()
    module = Classifier(name, manual=manual)
    fit(module, data)
    expected, losses = by_hand(name, data)
    assert_grads(module.grads, expected)
    if name != "none" and name not in NOISE:  # the method really ran (noise: run without)
        plain, _ = by_hand("none", data)
        assert any(not torch.allclose(module.grads[n], plain[n]) for n in plain)
    # returned and logged loss: the clean one (FreeLB: its first pass, here unperturbed)
    torch.testing.assert_close(module.outputs[0]["loss"], losses[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", list(SETTINGS))
def test_gradient_accumulation_matches_the_core(name):
    data = batches(2)
    module = Classifier(name)
    fit(module, data, accumulate_grad_batches=2)
    expected, losses = by_hand(name, data, accumulate=2)
    assert_grads(module.grads, expected)
    for output, loss in zip(module.outputs, losses, strict=True):
        torch.testing.assert_close(output["loss"], loss, rtol=0, atol=1e-6)  # loss / 2


def test_accumulation_keeps_earlier_micro_batches_and_drops_the_last_step():
    """Two optimizer steps with accumulation: each sees exactly its own two micro-batches."""
    data = batches(4)
    module = Classifier("fgm")
    fit(module, data, accumulate_grad_batches=2, max_steps=2)
    expected, _ = by_hand("fgm", data[2:], accumulate=2)  # lr=0: same weights at step 2
    assert_grads(module.grads, expected)


@pytest.mark.parametrize("name", ["fgm", "gp", "freelb"])
def test_precision_plugin_drives_every_backward_pass(name):
    data = batches()
    module = Classifier(name)
    fit(module, data, plugins=[Times4()])
    expected, _ = by_hand(name, data)
    assert_grads(module.grads, expected, factor=4.0)


@pytest.mark.parametrize("name", ["none", "fgm", "gp"])
def test_grad_scaler_of_lightning_fp16_amp(name):
    """Lightning's own fp16 AMP plugin with a GradScaler: unscaled gradients match fp32. The
    scaler is shared with a method that perturbs (so the penalty is computed unscaled), never
    with the baseline (which takes none)."""
    data = batches()
    module = Classifier(name)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    fit(module, data, plugins=[pl.plugins.MixedPrecision("16-mixed", "cpu", scaler)])
    assert module.adversarial.scaler is (scaler if module.adversarial.perturbs else None)
    expected, _ = by_hand(name, data)
    for n in expected:
        torch.testing.assert_close(module.grads[n], expected[n], rtol=0, atol=2e-3, msg=n)


class Subclass(Classifier):
    """training_step overridden again, calling super(): both are wrapped, only one runs."""

    def training_step(self, batch, batch_idx):
        return super().training_step(batch, batch_idx)


def test_subclass_calling_super_runs_the_method_once():
    data = batches()
    module = Subclass("fgm")
    fit(module, data)
    assert_grads(module.grads, by_hand("fgm", data)[0])


class BertModule(AdversarialMixin, pl.LightningModule):
    """A Hugging Face model: the method finds its token embedding via get_input_embeddings."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.case = tiny_bert()  # float64, dropout 0, its own fixed batch
        self.model = self.case.model
        self.adversarial = advnlp.build(name, self.model, **noiseless(name, SETTINGS[name]))

    def training_step(self, batch, batch_idx):
        return self.case.closure()

    def on_before_optimizer_step(self, optimizer) -> None:
        self.grads = {
            n: p.grad.detach().clone()
            for n, p in self.model.named_parameters()
            if p.grad is not None
        }

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)


@pytest.mark.parametrize("name", ["fgm", "gp"])
def test_tiny_bert_matches_the_core(name):
    module = BertModule(name)
    fit(module, [torch.zeros(1)])  # the batch is the case's own
    case = tiny_bert()
    advnlp.build(name, case.model, **noiseless(name, SETTINGS[name])).backward(case.closure)
    expected = {n: p.grad for n, p in case.model.named_parameters() if p.grad is not None}
    assert_grads({n: module.grads[n] for n in expected}, expected)


def test_logged_loss_is_the_clean_loss_and_logged_once_per_step():
    data = batches()
    module = Classifier("pgd", as_dict=True)
    trainer = fit(module, data)
    _, losses = by_hand("pgd", data)
    # an epoch mean: any log call from the extra (adversarial) passes would move it
    torch.testing.assert_close(trainer.callback_metrics["train_loss"], losses[0])
    assert module.outputs[0]["extra"] == 1


def test_no_method_trains_normally():
    data = batches()
    module = Classifier(None)
    fit(module, data)
    assert_grads(module.grads, by_hand("none", data)[0])


class NoBackward(pl.plugins.Precision):
    """A plugin that never backpropagates the loss training_step returned."""

    def backward(self, tensor, model, optimizer, *args, **kwargs) -> None:
        if not model._advnlp_busy:  # the mixin's own passes still run
            return
        super().backward(tensor, model, optimizer, *args, **kwargs)


def test_gradients_never_handed_back_are_an_error_not_silence():
    with pytest.raises(RuntimeError, match="never backpropagated by Lightning"):
        fit(Classifier("fgm"), batches(2), max_steps=2, plugins=[NoBackward()])


def test_adversarial_backward_errors():
    module = Classifier("fgm")
    with pytest.raises(advnlp.ConfigError, match="is for manual optimization"):
        module.adversarial_backward(lambda: module.loss(batches(1)[0]))
    module = Classifier(None, manual=True)
    with pytest.raises(advnlp.ConfigError, match=r"set self.adversarial = advnlp.FGM"):
        module.adversarial_backward(lambda: module.loss(batches(1)[0]))


def test_import_advnlp_does_not_import_lightning_and_missing_lightning_is_explained():
    program = Path(__file__).with_name("programs") / "lightning_missing.py"
    result = subprocess.run([sys.executable, str(program)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
