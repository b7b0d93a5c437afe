"""No adversary: plain training behind the same call, so baselines run through the same code."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, _check_loss, default_backward


@dataclass
class BaselineConfig:
    """Plain training has no hyperparameters."""


class Baseline(AdversarialMethod):
    """Plain training: ``loss = closure(); backward(loss)``.

    Args:
        model: any ``nn.Module`` (it needs no embedding).

    Example:
        >>> adv = advnlp.build("none", model)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "none"
    config_class = BaselineConfig
    config: BaselineConfig
    perturbs = False  # no embedding to find, no gradient of its own to scale

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        loss = closure()
        _check_loss(loss)
        (backward or default_backward)(loss)
        return loss.detach()
