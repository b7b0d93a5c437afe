"""AWP: adversarial weight perturbation (Wu, Xia and Wang 2020, "Adversarial Weight
Perturbation Helps Robust Generalization"), as the Kaggle NLP recipe runs it: one ascent step
on the weights, relative to each tensor's size, then a second pass whose gradient is added."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..base import (
    AdversarialMethod,
    Backward,
    Closure,
    _check_loss,
    check_start_step,
    default_backward,
)
from ..embedding import unwrap
from ..errors import ConfigError, check_number


@dataclass
class AWPConfig:
    """AWP's hyperparameters: ``AWP(model, config=AWPConfig(adv_eps=0.001))``."""

    adv_lr: float = field(
        default=1.0,
        metadata={
            "help": "ascent step on each chosen weight tensor w: adv_lr * g/||g|| * ||w||, "
            "g its gradient (0 = a plain step)"
        },
    )
    adv_eps: float = field(
        default=0.01,
        metadata={
            "help": "each weight moves at most adv_eps * |w| (elementwise) from its value "
            "(0 = a plain step)"
        },
    )
    start_step: int = field(
        default=0,
        metadata={
            "help": "calls of backward that are plain steps before AWP begins (the "
            "warm-up every method takes, kept in AWP's config)"
        },
    )
    param_regex: str = field(
        default="weight",
        metadata={
            "help": "regex searched in each parameter name (as the model names it, DDP's "
            "'module.' left out): the tensors AWP perturbs"
        },
    )
    include_vectors: bool = field(
        default=False,
        metadata={
            "help": "also perturb 1-dim tensors the regex matches (biases, LayerNorm); by "
            "default only matrices"
        },
    )

    def __post_init__(self) -> None:
        self.adv_lr = check_number("adv_lr", self.adv_lr)
        self.adv_eps = check_number("adv_eps", self.adv_eps)
        self.start_step = check_start_step(self.start_step)
        if not isinstance(self.param_regex, str):
            raise ConfigError(f"param_regex must be a string, got {self.param_regex!r}")
        try:
            re.compile(self.param_regex)
        except re.error as error:
            raise ConfigError(
                f"param_regex must be a regex, got {self.param_regex!r} ({error})"
            ) from None
        if not isinstance(self.include_vectors, bool):
            raise ConfigError(
                f"include_vectors must be True or False, got {self.include_vectors!r}"
            )


class AWP(AdversarialMethod):
    """Adversarial weight perturbation: clean pass, weights pushed up the loss, second pass.

    Each step: a clean forward and backward (its gradient goes into ``.grad`` as usual); then
    every chosen trainable tensor w with gradient g moves to
    ``w0 + clamp(adv_lr * g/||g|| * ||w0||, -adv_eps * |w0|, adv_eps * |w0|)`` (norms per
    tensor, the clamp elementwise: the Kaggle recipe's box ``w0 ± adv_eps * |w0|``); a forward
    and backward at those weights adds its gradient; then each perturbed tensor gets its
    value back by copy from a backup of that tensor alone, so the weights after ``backward``
    are bit for bit what they were. A tensor whose gradient is zero, missing or not finite
    is left as it is (no ``1e-6`` floor as in the recipe: the direction is scale-free, which
    also makes a ``GradScaler``'s scale irrelevant). The chosen tensors: trainable parameters
    whose name matches ``param_regex`` (default: contains "weight", the recipe's
    ``adv_param="weight"``, which also takes an LSTM's ``weight_ih_l0``) with 2+ dimensions
    unless ``include_vectors`` (the recipe also perturbs LayerNorm weights; matrices only is
    the deliberate default). The token embedding, being a weight matrix, is among them.
    g is what ``.grad`` holds after the clean pass: with gradient accumulation, everything
    accumulated since the last ``zero_grad`` (as in the recipe), so micro-batches do not add
    up to the full batch's step.

    Deviations from the recipe, which these notebooks copy (e.g. Kaggle's Feedback Prize
    ``class AWP``): the restore copies values into the same tensors instead of rebinding
    ``param.data`` or subtracting the step (a subtraction is not exact in floating point), and
    only the perturbed tensors are backed up; the widely copied class defaults to
    ``adv_eps=0.2``, while its users pass 1e-3 to 1e-2: 0.01 here. ``start_step`` counts
    calls of ``backward`` (the recipe counts epochs); the base class runs the warm-up, as
    for every method.

    DDP: the clean pass's gradient is all-reduced (it is not run under ``no_sync``), so every
    rank perturbs its weights by the same, global-batch gradient and the replicas stay equal;
    the second pass's reduce then averages what it adds. Two all-reduces a step.

    It perturbs no embedding output, so it takes neither ``target=`` nor ``scaler=``.
    ``backward`` returns the clean loss. About twice the cost of a plain step.

    Args:
        model: the model the closure runs (or its DDP wrapper).
        adv_lr, adv_eps, start_step, param_regex, include_vectors: see :class:`AWPConfig`.

    Example:
        >>> adv = advnlp.AWP(model, adv_eps=0.01)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "awp"
    config_class = AWPConfig
    config: AWPConfig
    perturbs = False  # weights, not the embedding output: no embedding to find
    adv_lr: float
    adv_eps: float
    start_step: int
    param_regex: str
    include_vectors: bool

    def __init__(self, model: nn.Module, *args, **kwargs) -> None:
        super().__init__(model, *args, **kwargs)
        pattern = re.compile(self.param_regex)
        self.chosen = [
            (name, param)
            for name, param in unwrap(model).named_parameters()
            if param.requires_grad
            and pattern.search(name)
            and (self.include_vectors or param.dim() >= 2)
        ]
        if not self.chosen:
            shapes = "" if self.include_vectors else " with 2+ dimensions"
            raise ConfigError(
                f"param_regex {self.param_regex!r} matches no trainable parameter{shapes} of "
                f"{type(unwrap(model)).__name__}"
            )

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        loss = closure()
        _check_loss(loss)
        backward(loss)
        if self.adv_lr == 0 or self.adv_eps == 0:
            return loss.detach()
        backup = self._perturb()
        try:
            if backup:  # the same on every DDP rank: the gradients it reads are reduced
                adversarial = closure()
                _check_loss(adversarial)
                backward(adversarial)
        finally:
            self._restore(backup)
        return loss.detach()

    @torch.no_grad()
    def _perturb(self) -> list[tuple[Tensor, Tensor]]:
        """Move each chosen tensor up its gradient; ``(tensor, its old value)`` per moved one."""
        backup = []
        for _, param in self.chosen:
            if param.grad is None:
                continue
            # float32 at least: ||w|| / ||g|| overflows half precision when g is small
            work = torch.promote_types(param.dtype, torch.float32)
            grad = param.grad.to(work)
            grad_norm = grad.norm()
            if not torch.isfinite(grad_norm) or grad_norm == 0:
                continue
            original = param.detach().clone()
            step = grad * (self.adv_lr * original.to(work).norm() / grad_norm)
            bound = original.to(work).abs() * self.adv_eps
            param.add_(torch.clamp(step, -bound, bound).to(param.dtype))
            backup.append((param, original))
        return backup

    @staticmethod
    @torch.no_grad()
    def _restore(backup: list[tuple[Tensor, Tensor]]) -> None:
        for param, original in backup:
            param.copy_(original)
