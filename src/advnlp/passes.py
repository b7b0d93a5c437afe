"""One pass through the token embedding, the two things made of its gradients, and the
divergences between two passes' predictions (R3F, SMART, VAT).

Framework-neutral: torch tensors in, torch tensors out. The PyTorch methods (base.py, through
a forward hook) and the Keras switches (keras.py, through a wrapped layer ``call``) both record
their passes with :meth:`Pass.add`, build the ascent step with :func:`ascent_step` and the
gradient penalty with :func:`penalty_term`, so both give the same numbers and the same
non-finite rule.

A non-finite gradient (inf/nan, e.g. fp16 overflow) is never used, and never scaled, not even
by 0: inf * 0 is nan, and a nan in a perturbation or a penalty would reach every gradient.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ClosureError
from .perturbation import Perturbation, work_dtype

# Called for embedding call number `index` fed `ids` (and returning `output`): what to add.
Offset = Callable[[int, Tensor, Tensor], Tensor]


@dataclass
class Pass:
    """One forward pass: its loss and what went in and out of the embedding."""

    loss: Tensor = field(default_factory=lambda: torch.empty(0))
    ids: list[Tensor] = field(default_factory=list)  # token ids of each embedding call
    outputs: list[Tensor] = field(default_factory=list)  # outputs as the model consumed them
    # epsilon_unit="relative", example scope: each call's per-example norm of the unperturbed
    # output over non-padding positions, (B, 1, 1)
    units: list[Tensor] = field(default_factory=list)

    def add(self, ids: Tensor, output: Tensor, offset: Offset | None = None) -> Tensor:
        """Record one embedding call (fed ``ids``, returning ``output``); what the model
        consumes instead: ``output`` plus ``offset``, differentiable even when the embedding
        is frozen."""
        if not output.requires_grad:  # a frozen embedding can still be perturbed
            output = output.detach().requires_grad_()
        if offset is not None:
            output = output + offset(len(self.outputs), ids, output).to(output.dtype)
        self.ids.append(ids)
        self.outputs.append(output)
        return output

    def gradient(
        self, scope: str, grads: Sequence[Tensor | None], padding_idx: int | None
    ) -> Perturbation:
        """``grads`` (d loss / d each output, None where none arrived) in ``scope``'s space."""
        if all(g is None for g in grads):  # the loss does not depend on the embedding
            grads = [torch.zeros_like(out) for out in self.outputs]
        return Perturbation.from_gradients(scope, self.ids, grads, padding_idx)


def ascent_step(
    gradient: Perturbation,
    length: float,
    unit: list[Tensor] | None = None,
    *,
    who: str,
    stacklevel: int = 2,
) -> Perturbation | None:
    """``length`` (in ``unit``; None: absolute) times the unit ascent direction, or None with a
    RuntimeWarning naming ``who`` if ``gradient`` is not finite.

    ``stacklevel`` is the one the caller would pass to ``warnings.warn``.
    """
    if not gradient.is_finite():
        warnings.warn(
            f"{who}: the gradient of the embedding output is not finite (inf/nan, e.g. fp16 "
            "overflow); this ascent step is not taken (with no step taken, the step is not "
            "perturbed)",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )
        return None
    return gradient.normalized(length, unit)


def penalty_term(
    grads: Sequence[Tensor | None], epsilon: float, *, who: str, stacklevel: int = 2
) -> Tensor:
    """``0.5 * epsilon * ||grads||^2``, grads being d loss / d embedding outputs (None where
    none arrived); 0, detached, with a RuntimeWarning naming ``who`` if it is not finite.

    Squares in float32 at least (float64 stays float64): fp16 gradients overflow when squared.
    Keep the graph of ``grads`` (``create_graph=True``): the penalty's gradient is a
    second-order one, and from detached gradients the penalty would be a silent no-op.
    """
    squares = [g.to(work_dtype(g.dtype)).pow(2).sum() for g in grads if g is not None]
    if not squares:  # the loss does not depend on the embedding: nothing to penalise
        return torch.zeros(())
    penalty = 0.5 * epsilon * torch.stack(squares).sum()
    if not torch.isfinite(penalty):
        warnings.warn(
            f"{who}: the penalty is not finite (inf/nan, e.g. fp16 overflow); this step trains "
            "on the plain loss",
            RuntimeWarning,
            stacklevel=stacklevel + 1,
        )
        return penalty.detach().zero_()
    return penalty


# -- predictions: what the KL regularisers compare ----------------------------------------------
def keeping_logits(
    model: nn.Module, closure: Callable[[], Any], kept: list[Tensor | None]
) -> Callable[[], Any]:
    """``closure`` returning the loss alone; its logits (or the model's) are appended to
    ``kept`` (None if there are none).

    A closure may return an output with ``.loss`` and ``.logits`` (``model(**batch)``), a
    ``(loss, logits)`` pair, or the loss alone, in which case the logits are read from the
    model's own output when it has ``.logits`` (Hugging Face models).
    """

    def run() -> Any:
        outputs: list[Any] = []
        handle = model.register_forward_hook(lambda m, a, out: outputs.append(out))
        try:
            result = closure()
        finally:
            handle.remove()
        kept.append(_logits_of(result, outputs))
        return loss_of(result)

    return run


def logits_needed(who: str, kept: Sequence[Tensor | None]) -> list[Tensor]:
    """``kept`` (from :func:`keeping_logits`), or a ClosureError saying how to hand them over."""
    if any(logits is None for logits in kept):
        raise ClosureError(
            f"{who} needs the logits: return model(**batch) (an output with .loss and "
            ".logits) or a (loss, logits) pair from the closure"
        )
    return list(kept)  # type: ignore[arg-type]


def loss_of(result: Any) -> Any:
    """The loss in what a closure returned: itself, ``.loss``, or the first of a pair."""
    if isinstance(result, tuple) and len(result) == 2:
        return result[0]
    return getattr(result, "loss", result)


def _logits_of(result: Any, outputs: list[Any]) -> Tensor | None:
    """The logits in what a closure returned, else in the model's last output, else None."""
    if isinstance(result, tuple) and len(result) == 2:
        return result[1]
    for source in (result, outputs[-1] if outputs else None):
        logits = getattr(source, "logits", None)
        if isinstance(logits, Tensor):
            return logits
    return None


def _log_probs(logits: Tensor) -> Tensor:
    return torch.log_softmax(logits.to(work_dtype(logits.dtype)), dim=-1)


def _batch(logits: Tensor) -> int:
    return logits.shape[0] if logits.dim() > 1 else 1


def kl_divergence(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p || q) over the last dimension, summed over the others, divided by the batch size
    (the first dimension); in float32 at least. Detach ``p_logits`` for a fixed target."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    return (log_p.exp() * (log_p - log_q)).sum() / _batch(p_logits)


def symmetric_kl(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """KL(p || q) + KL(q || p) over the last dimension, summed, divided by the batch size."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    return ((log_p.exp() - log_q.exp()) * (log_p - log_q)).sum() / _batch(p_logits)
