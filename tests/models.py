"""Tiny models built from configs in code (no downloads), each with a batch and a way to run it
from token-embedding outputs directly, which the reference implementations need; and the
helpers the tests share: what one step did (its gradients, what the model consumed, whether it
was a plain step) and a Hugging Face Trainer's arguments, rows and captured gradients."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advnlp import registry

VOCAB, HIDDEN, LABELS, PAD = 50, 16, 3, 0
BOS, EOS = 1, 2  # the language models' (tests/test_causal_lm.py)

# The methods the tests run, all of them derived from the registry: a method added there is
# tested everywhere without a row here. Test values go by hyperparameter name, not by method:
# small, and nothing random (FreeLB without its random start, so that two runs draw nothing
# at random and can be compared exactly); what a method takes beyond them keeps its default.
SMALL = {"epsilon": 0.5, "alpha": 0.2, "steps": 2, "init_magnitude": 0.0}
SETTINGS = {name: registry.accepted(name, SMALL) for name in registry.method_names()}
# Methods whose step depends on more than the batch (noise drawn, or rows cached from earlier
# steps), and the hyperparameter that sizes that part: a batch split over micro-batches or DDP
# ranks draws other noise than the whole batch, and FreeFGM's second call sees the first's
# cache, so the tests that compare the two run these methods without it (their full steps are
# checked elsewhere: tests/test_smart.py, test_r3f.py, test_fgm_free.py, the DDP worker).
# SMART and VAT draw a random start: at epsilon 0 they take a plain step.
NOISE = {
    "neftune": "alpha",
    "r3f": "epsilon",
    "fgm_free": "epsilon",
    "smart": "epsilon",
    "vat": "epsilon",
}


def noiseless(name: str, settings: dict) -> dict:
    """``settings`` with the method's noise switched off, if it draws any."""
    return {**settings, NOISE[name]: 0.0} if name in NOISE else settings


def switches(name: str) -> dict[str, tuple]:
    """The method's switches (bool) and choices (``metadata["choices"]``), with their values."""
    found = {}
    for field in registry.config_fields(name):
        values = (False, True) if field.type in (bool, "bool") else field.metadata.get("choices")
        if values:
            found[field.name] = tuple(values)
    return found


def variants(name: str) -> list[dict]:
    """``SETTINGS[name]`` with every combination of the method's switches and choices, each as
    given to ``build`` (values equal to the default left out)."""
    defaults = registry.hyperparameters(name)
    rows = []
    for values in itertools.product(*switches(name).values()):
        chosen = dict(zip(switches(name), values, strict=True))
        rows.append({**SETTINGS[name], **{k: v for k, v in chosen.items() if v != defaults[k]}})
    return rows


def label(name: str, settings: dict) -> str:
    """A test id: the method and where ``settings`` differ from ``SETTINGS[name]``."""
    defaults = registry.hyperparameters(name)
    small = {**defaults, **SETTINGS[name]}
    changed = [f"{k}={v}" for k, v in {**defaults, **settings}.items() if small[k] != v]
    return "-".join([name, *changed])


@dataclass
class Case:
    """A model, one batch, and the same loss computed from given token-embedding outputs."""

    name: str
    model: nn.Module
    ids: Tensor  # (B, T)
    weight: nn.Parameter  # the token-embedding matrix (V, H)
    padding_idx: int | None
    closure: Callable[[], Tensor]  # loss of the batch, through the model's own embedding
    loss_from_embeds: Callable[[Tensor], Tensor]  # loss of the batch given e = E[ids] (+ delta)
    head: nn.Module  # the module whose output is the logits (what R3F's KL compares)

    def lookup(self, matrix: Tensor | None = None) -> Tensor:
        """e = matrix[ids] with the embedding's padding rule (gradient-free padding row)."""
        matrix = self.weight if matrix is None else matrix
        return F.embedding(self.ids, matrix, padding_idx=self.padding_idx)

    @classmethod
    def of_hf_model(
        cls, name: str, model: nn.Module, ids: Tensor, mask: Tensor, labels: Tensor, head: nn.Module
    ) -> Case:
        """A Hugging Face model's case: its loss (``.loss``) of ``ids`` or of given embeddings,
        with this attention mask and labels; PAD is the padding id."""
        return cls(
            name,
            model,
            ids,
            model.get_input_embeddings().weight,
            PAD,
            lambda: model(input_ids=ids, attention_mask=mask, labels=labels).loss,
            lambda e: model(inputs_embeds=e, attention_mask=mask, labels=labels).loss,
            head,
        )

    def mask(self) -> Tensor:
        if self.padding_idx is None:
            return torch.ones(*self.ids.shape, 1, dtype=self.weight.dtype)
        return (self.ids != self.padding_idx).unsqueeze(-1).to(self.weight.dtype)


def token_batch(batch: int = 4, length: int = 7, *, seed: int = 0, pad: bool = True) -> Tensor:
    """Random ids in [1, VOCAB) with a ragged tail of PAD, and repeated tokens (small vocab)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 12, (batch, length), generator=generator)  # few distinct ids: repeats
    if pad:
        for row in range(batch):
            ids[row, length - row % 3 :] = PAD
    return ids


def tiny_bert(
    dtype: torch.dtype = torch.float64,
    *,
    dropout: float = 0.0,
    seed: int = 0,
    ids: Tensor | None = None,
    **config,
) -> Case:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    cfg = BertConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=32,
        num_labels=LABELS,
        pad_token_id=PAD,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    model = BertForSequenceClassification(cfg).to(dtype)
    ids = token_batch(seed=seed) if ids is None else ids
    mask = (ids != PAD).long()
    labels = torch.arange(len(ids)) % LABELS
    return Case.of_hf_model("bert", model, ids, mask, labels, model.classifier)


def gpt2_lm(dtype: torch.dtype = torch.float64, *, seed: int = 0, **config) -> nn.Module:
    """A tiny GPT-2 language model, no dropout, its output head tied to the input embedding
    ``config`` adds to its GPT2Config."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_embd=HIDDEN,
        n_layer=2,
        n_head=2,
        n_positions=32,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        tie_word_embeddings=True,
        bos_token_id=BOS,
        eos_token_id=EOS,
        **config,
    )
    model = GPT2LMHeadModel(cfg).to(dtype)
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


def tiny_gpt2(
    dtype: torch.dtype = torch.float64, *, seed: int = 0, ids: Tensor | None = None
) -> Case:
    """A causal LM whose output head is tied to the input embedding (no padding id)."""
    model = gpt2_lm(dtype, seed=seed)
    ids = token_batch(seed=seed, pad=False) if ids is None else ids
    return Case(
        "gpt2-tied",
        model,
        ids,
        model.transformer.wte.weight,
        None,
        lambda: model(input_ids=ids, labels=ids).loss,
        lambda e: model(inputs_embeds=e, labels=ids).loss,
        model.lm_head,
    )


class PoolClassifier(nn.Module):
    """Embedding -> LSTM -> masked mean-pool -> linear: a plain model with no Hugging Face."""

    def __init__(self, vocab: int = VOCAB, hidden: int = HIDDEN, labels: int = LABELS) -> None:
        super().__init__()
        self.tokens = nn.Embedding(vocab, hidden, padding_idx=PAD)
        self.positions = nn.Embedding(32, hidden)  # must never be chosen as the token embedding
        self.lstm = nn.LSTM(hidden, hidden, batch_first=True)
        self.head = nn.Linear(hidden, labels)

    def forward(self, ids: Tensor, labels: Tensor, embeds: Tensor | None = None) -> Tensor:
        e = self.tokens(ids) if embeds is None else embeds  # (B, T, H)
        e = e + self.positions(torch.arange(ids.shape[1]))
        h, _ = self.lstm(e)
        mask = (ids != PAD).unsqueeze(-1).to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp_min(1)
        logits = self.head(pooled)
        loss = F.cross_entropy(logits, labels)
        # The closure returns the loss alone, as for every method; R3F, whose KL needs the
        # logits, reads a ``.logits`` of what the closure returns (else of the model's output).
        loss.logits = logits
        return loss


def plain_lstm(
    dtype: torch.dtype = torch.float64, *, seed: int = 0, ids: Tensor | None = None
) -> Case:
    torch.manual_seed(seed)
    model = PoolClassifier().to(dtype)
    ids = token_batch(seed=seed) if ids is None else ids
    labels = torch.arange(len(ids)) % LABELS
    return Case(
        "plain-lstm",
        model,
        ids,
        model.tokens.weight,
        PAD,
        lambda: model(ids, labels),
        lambda e: model(ids, labels, embeds=e),
        model.head,
    )


CASES = {"bert": tiny_bert, "gpt2-tied": tiny_gpt2, "plain-lstm": plain_lstm}


def grads(model: nn.Module) -> dict[str, Tensor]:
    """A copy of every parameter's .grad (zeros where None)."""
    return {
        n: (p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p))
        for n, p in model.named_parameters()
    }


def zero(model: nn.Module) -> None:
    model.zero_grad(set_to_none=True)


# -- what a step did ------------------------------------------------------------------------------
def consumed(case: Case, step: Callable[[Callable[[], Tensor]], object]) -> tuple[Tensor, list]:
    """The clean token-embedding output of ``case``, and what the model consumed in each pass
    of ``step(closure)`` (e.g. ``adv.backward``): the output after advnlp's hook."""
    embedding = case.model.get_input_embeddings()
    clean = embedding(case.ids).detach()
    seen = []

    def closure():  # registered after advnlp's hook, so it sees the perturbed output
        handle = embedding.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
        try:
            return case.closure()
        finally:
            handle.remove()

    step(closure)
    return clean, seen


def assert_plain_step(case: Case, step: Callable[[], object]) -> object:
    """``step()`` leaves exactly (bit for bit) the gradients of a plain step,
    ``case.closure().backward()``; returns what ``step`` returned."""
    zero(case.model)
    case.closure().backward()
    plain = grads(case.model)
    zero(case.model)
    result = step()
    for name, value in grads(case.model).items():
        assert torch.equal(value, plain[name]), name
    return result


def assert_closure_forms_agree(case: Case, step: Callable[[Callable], dict[str, Tensor]]) -> None:
    """For a method that needs the logits: ``step(closure)`` (the gradients of one step) is
    the same whether the closure returns the model's output (.loss and .logits), a (loss,
    logits) pair or the loss alone (the logits read from the model's output), and not a plain
    step's. ``case`` is ``tiny_bert``'s."""
    mask = (case.ids != PAD).long()
    labels = torch.arange(len(case.ids)) % 3

    def output():
        return case.model(input_ids=case.ids, attention_mask=mask, labels=labels)

    expected = step(output)
    pair = step(lambda: (lambda out: (out.loss, out.logits))(output()))
    alone = step(lambda: output().loss)
    zero(case.model)
    case.closure().backward()
    plain = grads(case.model)
    for name, value in expected.items():
        torch.testing.assert_close(pair[name], value, rtol=1e-12, atol=0, msg=name)
        torch.testing.assert_close(alone[name], value, rtol=1e-12, atol=0, msg=name)
    assert any(not torch.allclose(plain[n], v) for n, v in expected.items())


# -- the Hugging Face Trainer ---------------------------------------------------------------------
def trainer_rows(ids: Tensor) -> list[dict[str, Tensor]]:
    """``ids`` as Trainer rows: the attention mask from PAD, labels 0, 1, 2, 0, ... (as
    ``tiny_bert``'s)."""
    mask = (ids != PAD).long()
    return [
        {"input_ids": i, "attention_mask": m, "labels": torch.tensor(n % LABELS)}
        for n, (i, m) in enumerate(zip(ids, mask, strict=True))
    ]


def trainer_args(output_dir, **overrides):
    """TrainingArguments for one quiet CPU step of batch 4 (no saving, no logging)."""
    from transformers import TrainingArguments

    base = dict(
        output_dir=str(output_dir),
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


def grad_capture():
    """A TrainerCallback whose ``.grads`` gets a copy of every parameter's .grad just before
    each optimizer step (made here so that this module imports without transformers)."""
    from transformers import TrainerCallback

    class GradCapture(TrainerCallback):
        def __init__(self):
            self.grads = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            self.grads.append({n: p.grad.detach().clone() for n, p in model.named_parameters()})

    return GradCapture()


def accumulated_trainer_steps(output_dir, dtype: torch.dtype, method: str, kwargs: dict) -> list:
    """One optimizer step of AdversarialTrainer on ``tiny_bert(dtype, seed=1)``'s 4 rows, as 1
    batch of 4 and as 2 micro-batches of 2: for each, (the gradients before the step, the
    trainer)."""
    from advnlp.hf import AdversarialTrainer

    steps = []
    for batch, accumulate in ((4, 1), (2, 2)):
        case = tiny_bert(dtype, seed=1)
        capture = grad_capture()
        trainer = AdversarialTrainer(
            model=case.model,
            train_dataset=trainer_rows(case.ids),
            callbacks=[capture],
            args=trainer_args(
                output_dir / str(batch),
                per_device_train_batch_size=batch,
                gradient_accumulation_steps=accumulate,
            ),
            method=method,
            method_kwargs=kwargs,
        )
        trainer.train()
        steps.append((capture.grads[0], trainer))
    return steps
