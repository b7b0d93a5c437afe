"""R3F: noise on the embedding output and a symmetric KL between the clean and the noisy
predictions (Aghajanyan et al. 2021, "Better Fine-Tuning by Reducing Representational
Collapse"; the reference: fairseq's ``sentence_prediction_r3f`` criterion)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

import torch
from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number
from ..passes import keeping_logits, logits_needed, loss_of, symmetric_kl
from ..perturbation import work_dtype

__all__ = ["R3F", "R3FConfig", "symmetric_kl"]

NOISES = ("uniform", "normal")


@dataclass
class R3FConfig:
    """R3F's hyperparameters: ``R3F(model, config=R3FConfig(epsilon=1e-5, kl_weight=1.0))``."""

    epsilon: float = field(
        default=1e-5,
        metadata={
            "help": "noise size: U(-epsilon, epsilon) or N(0, epsilon^2) per coordinate "
            "(fairseq's --eps); 0 = a plain step"
        },
    )
    kl_weight: float = field(
        default=1.0,
        metadata={"help": "lambda, the weight of the symmetric KL (fairseq's --r3f-lambda)"},
    )
    _: KW_ONLY
    noise: str = field(
        default="uniform",
        metadata={"help": "uniform or normal (fairseq's --noise-type)", "choices": NOISES},
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)
        self.kl_weight = check_number("kl_weight", self.kl_weight)
        self.noise = check_choice("noise", self.noise, NOISES)


class R3F(AdversarialMethod):
    """Robust representations through regularised fine-tuning.

    Trains on loss(E) + kl_weight * KL_sym(f(E), f(E + z)), z ~ U(-epsilon, epsilon) or
    N(0, epsilon^2) on every non-padding coordinate of the embedding output, KL_sym(p, q) =
    KL(p || q) + KL(q || p) over the last dimension of the logits, summed over the other
    dimensions and divided by the batch size (the first dimension): fairseq's batch mean.
    One backward pass through both forward passes (about 2x a plain step); ``backward``
    returns the clean loss. In eval mode or at epsilon 0 the step is plain (no second pass).

    The KL needs the logits. The closure may return them: ``lambda: model(**batch)`` (an output
    with ``.loss`` and ``.logits``, as Hugging Face models return) or a ``(loss, logits)`` pair.
    A closure that returns the loss alone, as for every other method, works when the model's
    own output has ``.logits`` (Hugging Face models): they are read from it.

    Deliberate deviations from fairseq: the noisy pass is not detached from the embedding
    (the KL's gradient reaches the embedding matrix by both passes, as the paper's objective
    has it), padding gets no noise, and any model with logits works, not only a sentence
    classification head. The noise comes from torch's global generator (``torch.manual_seed``
    fixes it); the KL is computed in float32 at least.

    Gradient accumulation: the KL comes from the logits, not from the loss the closure
    returns, so a closure's division by k micro-batches does not reach it. Set
    ``micro_batches = k`` (``AdversarialTrainer`` and the Lightning mixin do, from their steps):
    the KL is divided by k too, and k equal micro-batches give the one batch's gradients.

    Args:
        model: the model the closure runs.
        epsilon, kl_weight, noise: the hyperparameters, see :class:`R3FConfig`.
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any (unused: no gradient is read).

    Example:
        >>> adv = advnlp.R3F(model, epsilon=1e-5, kl_weight=1.0)
        >>> loss = adv.backward(lambda: model(**batch))
    """

    name = "r3f"
    config_class = R3FConfig
    config: R3FConfig
    # Equal micro-batches accumulated per optimizer step whose closure returns loss / k: the
    # KL (a mean over the micro-batch) is divided likewise. AdversarialTrainer sets it.
    micro_batches: int = 1

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        if not self.embedding.training or self.epsilon == 0:
            loss = self._forward(lambda: loss_of(closure())).loss
            backward(loss)
            return loss.detach()
        kept: list[Tensor | None] = []  # the clean pass's logits, then the noisy one's
        clean = self._forward(keeping_logits(self.model, closure, kept))
        noisy = self._forward(keeping_logits(self.model, closure, kept), self._noise)
        del noisy  # its loss is not trained on: only its logits, through the KL
        clean_logits, noisy_logits = logits_needed("R3F", kept)  # (the loss was checked first)
        kl = symmetric_kl(clean_logits, noisy_logits) / self.micro_batches
        backward(clean.loss + self.kl_weight * kl)
        return clean.loss.detach()

    def _noise(self, index: int, ids: Tensor, output: Tensor) -> Tensor:
        noise = torch.empty_like(output, dtype=work_dtype(output.dtype))
        if self.noise == "uniform":
            noise.uniform_(-self.epsilon, self.epsilon)
        else:
            noise.normal_(0.0, self.epsilon)
        if self.padding_idx is not None:
            noise = noise * (ids != self.padding_idx).unsqueeze(-1).to(noise.dtype)
        return noise
