"""SMART: smoothness-inducing adversarial regularisation (Jiang et al. 2020, "SMART: Robust and
Efficient Fine-Tuning for Pre-trained Natural Language Models through Principled Regularized
Optimization"; the references: mt-dnn's ``SmartPerturbation`` (mt_dnn/perturbation.py) and
smart-pytorch's ``SMARTLoss``). :class:`~advnlp.methods.vat.VAT` is the same loop with the
one-sided KL."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_number, check_steps
from ..passes import Pass, keeping_logits, logits_needed, loss_of, symmetric_kl
from ..perturbation import Perturbation, work_dtype

SCOPE = "example"  # per-example L2 norms over the non-padding positions, as PGD's default


@dataclass
class SMARTConfig:
    """SMART's hyperparameters: ``SMART(model, config=SMARTConfig(epsilon=1.0, steps=1))``."""

    epsilon: float = field(
        default=1.0,
        metadata={
            "help": "radius of the per-example L2 ball delta stays in (embedding-space units); "
            "0 = a plain step"
        },
    )
    alpha: float = field(
        default=1.0,
        metadata={
            "help": "length of each ascent step (the paper's eta; 1.0 = epsilon: one "
            "step reaches the ball)"
        },
    )
    steps: int = field(
        default=1, metadata={"help": "K, the number of ascent steps on the divergence (>= 1)"}
    )
    init_std: float = field(
        default=1e-5,
        metadata={
            "help": "random start: N(0, init_std^2) per non-padding coordinate (the paper's sigma)"
        },
    )
    kl_weight: float = field(
        default=1.0,
        metadata={
            "help": "lambda, the weight of the smoothness regulariser (the paper's "
            "lambda_s); 0 = a plain step"
        },
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)
        self.alpha = check_number("alpha", self.alpha)
        self.steps = check_steps("steps", self.steps)
        self.init_std = check_number("init_std", self.init_std)
        self.kl_weight = check_number("kl_weight", self.kl_weight)


class SMART(AdversarialMethod):
    """Smoothness-inducing regulariser: loss(E) + kl_weight * D(f(E), f(E + delta)).

    D is the symmetric KL of the two predictions (KL(p || q) + KL(q || p) over the last
    dimension of the logits, summed over the others, divided by the batch size: a batch
    mean). delta maximises D near 0: delta_0 ~ N(0, init_std^2) on every non-padding
    coordinate of the embedding output, projected onto the ball; then K times
    delta <- Proj_{||delta|| <= epsilon}(delta + alpha * g / ||g||), g = d D / d delta with
    the clean prediction fixed, norms per example over its non-padding positions. The
    regulariser at delta_K is trained through both predictions (the paper's objective), in
    one backward pass with the clean loss. K + 2 forward passes, K of them only for
    ``autograd.grad``; ``backward`` returns the clean loss. In eval mode, at epsilon 0 or at
    kl_weight 0 the step is plain (one pass).

    Deliberate deviations from the reference code: a real epsilon ball. smart-pytorch 0.0.4
    divides ``noise + step_size * grad`` by its own per-token inf-norm, so delta has unit norm
    per token whatever the step size, and its ``epsilon`` is only a divide-by-zero guard;
    mt-dnn's ``SmartPerturbation`` did the same (its open issue #214) and in another version
    adds ``step_size`` times the per-token normalised gradient and drops the start, again with
    no ball and ``epsilon`` a guard. smart-pytorch's symmetric KL sums over the batch (the
    regulariser grows with the batch size); here it is a batch mean. Both stop the gradient
    through the target distribution of each KL direction and ascend the one-sided
    KL(clean || perturbed); here the symmetric KL's full gradient flows and the ascent climbs
    D itself, as the paper's objective has it. L2 norms per example (the paper's examples use
    the inf-norm per token); padding gets no noise.

    The closure may return ``model(**batch)`` (an output with ``.loss`` and ``.logits``), a
    ``(loss, logits)`` pair, or the loss alone when the model's own output has ``.logits``.
    The random start comes from torch's global generator (``torch.manual_seed`` fixes it);
    the divergences are computed in float32 at least. Under bf16/fp16 autocast a start of
    1e-5 may be below the logits' resolution: then the first direction is rounding noise
    (raise ``init_std``). An ascent step whose gradient is not finite is not taken (with a
    RuntimeWarning). After ``backward``, ``last_regulariser`` holds D at the final delta
    (detached). Gradient accumulation: set ``micro_batches = k`` when the closure
    returns loss / k (``AdversarialTrainer`` and the Lightning mixin do), see :class:`~advnlp.R3F`.

    Args:
        model: the model the closure runs.
        epsilon, alpha, steps, init_std, kl_weight: the hyperparameters, see
            :class:`SMARTConfig` (or pass ``config=SMARTConfig(...)``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any (the divergence is scaled by it
            before its gradient is taken, so fp16 gradients do not underflow).

    Example:
        >>> adv = advnlp.SMART(model, epsilon=1.0, steps=1, kl_weight=1.0)
        >>> loss = adv.backward(lambda: model(**batch))
    """

    name = "smart"
    config_class = SMARTConfig
    config: SMARTConfig
    # Equal micro-batches accumulated per optimizer step whose closure returns loss / k: the
    # divergence (a mean over the micro-batch) is divided likewise. AdversarialTrainer sets it.
    micro_batches: int = 1
    last_regulariser: Tensor | None = None  # D at the final delta, detached (for logging)

    def divergence(self, clean: Tensor, perturbed: Tensor) -> Tensor:
        """D(clean prediction, perturbed prediction), a batch mean: the symmetric KL."""
        return symmetric_kl(clean, perturbed)

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        if not self.embedding.training or self.epsilon == 0 or self.kl_weight == 0:
            loss = self._forward(lambda: loss_of(closure())).loss
            backward(loss)
            return loss.detach()
        who = type(self).__name__
        kept: list[Tensor | None] = []
        # every pass but the last only builds delta: no DDP all-reduce (the clean pass's graph
        # is backpropagated with the last one's)
        with self._no_gradient_sync():
            clean = self._forward(keeping_logits(self.model, closure, kept))
            (target,) = logits_needed(who, kept)
            delta = self._random_start(clean)
            for _ in range(self.steps):
                kept = []
                run = self._forward(keeping_logits(self.model, closure, kept), delta.offset)
                (logits,) = logits_needed(who, kept)
                grads = self._divergence_gradients(target.detach(), logits, run)
                ascent = self._direction(SCOPE, run, grads, self.alpha)
                if ascent is not None:  # a non-finite gradient's step is not taken
                    delta = (delta + ascent).clipped(self.epsilon)
            del run, grads, logits  # free the ascent passes' buffers
        kept = []
        self._forward(keeping_logits(self.model, closure, kept), delta.offset)
        (perturbed,) = logits_needed(who, kept)
        regulariser = self.divergence(target, perturbed) / self.micro_batches
        self.last_regulariser = regulariser.detach()
        backward(clean.loss + self.kl_weight * regulariser)
        return clean.loss.detach()

    def _random_start(self, clean: Pass) -> Perturbation:
        """N(0, init_std^2) on each non-padding coordinate of every embedding call of the clean
        pass, drawn in one call of the output's shape each, projected onto the ball."""
        parts = []
        for ids, output in zip(clean.ids, clean.outputs, strict=True):
            noise = torch.empty_like(output, dtype=work_dtype(output.dtype))
            noise = noise.normal_(0.0, self.init_std) if self.init_std > 0 else noise.zero_()
            if self.padding_idx is not None:
                noise = noise * (ids != self.padding_idx).unsqueeze(-1).to(noise.dtype)
            parts.append(noise)
        return Perturbation(SCOPE, parts).clipped(self.epsilon)

    def _divergence_gradients(
        self, target: Tensor, logits: Tensor, run: Pass
    ) -> list[Tensor | None]:
        """The direction of d D(target, logits) / d embedding outputs of ``run``, each
        example's divided by its largest entry; no ``.grad`` touched.

        Near the random start the gradient is tiny (of the order of init_std): against it the
        1e-8 floor of g / (||g|| + 1e-8) would shorten the step, and fp16 would underflow.
        Hence the GradScaler's scale (if any) before, and the division by the largest entry
        after (as VAT's reference code normalises its direction); only the direction is used.
        """
        divergence = self.divergence(target, logits) * self._loss_scale()
        grads = self._output_gradients(divergence, run)
        return [None if g is None else _by_largest_entry(g) for g in grads]


def _by_largest_entry(grad: Tensor) -> Tensor:
    """``grad`` divided by its largest absolute entry per example (0 stays 0; a non-finite
    entry makes the example non-finite, so its step is skipped)."""
    grad = grad.to(work_dtype(grad.dtype))
    dims = tuple(range(1, grad.dim())) if grad.dim() > 2 else tuple(range(grad.dim()))
    largest = grad.abs().amax(dim=dims, keepdim=True)
    return grad / torch.where(largest > 0, largest, 1)
