"""Hugging Face Trainer integration: one argument turns a method on.

    from advnlp.hf import AdversarialTrainer
    trainer = AdversarialTrainer(model=model, args=args, train_dataset=train,
                                 method="fgm", method_kwargs={"epsilon": 0.5})
    trainer.train()

or, for a Trainer subclass of your own::

    class MyTrainer(AdversarialTrainerMixin, MyBaseTrainer): ...

Only ``training_step`` changes: the forward pass (``compute_loss``, so a custom loss keeps
working), the gradient-accumulation scaling and ``accelerator.backward`` are the Trainer's own,
run once per pass the method needs. Checkpointing, resume, length-grouped batches, logging
and mixed precision stay the Trainer's. Needs the ``[hf]`` extra.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import Trainer

from .base import AdversarialMethod
from .embedding import unwrap
from .registry import build, resolve

__all__ = ["AdversarialTrainer", "AdversarialTrainerMixin"]


class AdversarialTrainerMixin:
    """Adds ``method`` / ``method_kwargs`` to a ``transformers.Trainer`` (subclass).

    Args:
        method: a registered method name (``advnlp.method_names()``), e.g. ``"fgm"``.
        method_kwargs: its hyperparameters, e.g. ``{"epsilon": 0.5}``.

    The method is built on the model the Trainer hands to ``training_step`` (DDP-wrapped in a
    multi-process run, so the delta-building passes can skip the all-reduce), with the
    accelerator's GradScaler when fp16 is on. The logged loss is the clean loss.

    ``method_kwargs={"start_step": N}`` (the warm-up) counts optimizer steps here, the
    Trainer's ``global_step``, not calls of backward: every micro-batch of one optimizer step
    is then plain or perturbed alike, and a resumed run does not warm up again.

    Gradient accumulation: for most models the mixin sets ``model_accepts_loss_kwargs =
    False``, so each micro-batch's mean loss is divided by the accumulation steps (right for
    models that average their own loss, e.g. classification heads). Causal language models
    (those ``AutoModelForCausalLM`` makes: their loss sums over the labelled tokens and divides
    by ``num_items_in_batch``) keep the Trainer's own setting, so a response token weighs the
    same in every micro-batch, as in one big batch. For another model whose loss does use
    ``num_items_in_batch``, set it back to True after construction.
    """

    def __init__(
        self,
        *args: Any,
        method: str = "fgm",
        method_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        # Classification heads average their loss themselves, yet take **kwargs: transformers 5
        # would pass them num_items_in_batch, skip its division by the accumulation steps and
        # multiply by the number of processes, giving k x world_size times the gradient (and
        # the gradient penalty a wrong weight). Off, the Trainer scales the loss itself.
        # Causal LMs do divide by it: they keep the Trainer's choice.
        if not _counts_tokens(self.model):
            self.model_accepts_loss_kwargs = False
        self.adversarial_method = resolve(method).name  # aliases resolved once, here
        self.adversarial_kwargs = dict(method_kwargs or {})
        self._adversary: AdversarialMethod | None = None
        if self.model is not None:  # fail now, not after the first epoch of data loading
            self.adversary(self.model)

    def adversary(self, model: nn.Module) -> AdversarialMethod:
        """The method for ``model``, rebuilt if the Trainer wrapped the model since it was made
        or the accelerator's GradScaler changed."""
        kwargs = dict(self.adversarial_kwargs)
        if resolve(self.adversarial_method).perturbs:  # the baseline takes no gradient itself
            # fp16: the method scales the gradients it takes itself with the Trainer's scaler
            kwargs.setdefault("scaler", getattr(self.accelerator, "scaler", None))
        current = self._adversary
        if (
            current is None
            or current.model is not model
            or current.scaler is not kwargs.get("scaler")
        ):
            self._adversary = build(self.adversarial_method, model, **kwargs)
        return self._adversary

    def training_step(
        self,
        model: nn.Module,
        inputs: dict[str, torch.Tensor | Any],
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor:
        # Mirrors Trainer.training_step (transformers 5), with the forward pass in a closure.
        model.train()
        if hasattr(self.optimizer, "train") and callable(self.optimizer.train):
            self.optimizer.train()
        inputs = self._prepare_inputs(inputs)

        # getattr: these attributes came and went across transformers 5.x releases.
        scaled_for_ga = getattr(self, "loss_is_scaled_for_ga", None)
        if scaled_for_ga is None:
            scaled_for_ga = (
                getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None
            ) or getattr(self, "compute_loss_func", None) is not None
        accumulation = getattr(
            self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps
        )

        def closure() -> torch.Tensor:
            with self.compute_loss_context_manager():
                loss = self.compute_loss(model, inputs, num_items_in_batch=num_items_in_batch)
            if self.args.n_gpu > 1:
                loss = loss.mean()  # DataParallel returns one loss per device
            if not scaled_for_ga:
                # Scale in the closure, not in backward: the gradient penalty then sees the
                # same per-example gradients as with one big batch.
                loss = loss / accumulation
            return loss

        adversary = self.adversary(model)
        if hasattr(adversary, "micro_batches"):  # R3F, SMART, VAT: their KL, read from the
            adversary.micro_batches = accumulation  # logits, is divided like the loss
        adversary.steps_done = self.state.global_step  # the warm-up counts optimizer steps
        return adversary.backward(closure, backward=self.accelerator.backward)


def _counts_tokens(model: nn.Module | None) -> bool:
    """Whether ``model`` is a causal language model (the Trainer's own test, which it uses to
    shift labels): its loss, transformers' causal LM loss, divides the summed token losses by
    ``num_items_in_batch`` when given it (the labelled tokens of the whole accumulated batch)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model is None:
        return False
    model = unwrap(model)
    if callable(getattr(model, "get_base_model", None)):  # a PEFT wrapper
        model = model.get_base_model()
    return type(model).__name__ in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values()


class AdversarialTrainer(AdversarialTrainerMixin, Trainer):
    """``transformers.Trainer`` with adversarial training: ``method="fgm", method_kwargs={...}``."""
