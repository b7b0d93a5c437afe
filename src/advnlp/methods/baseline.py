"""No adversary: plain training behind the same call, so baselines run through the same code."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ..base import AdversarialMethod, Backward, Closure, _check_loss, default_backward


class Baseline(AdversarialMethod):
    """Plain training: ``loss = closure(); backward(loss)``.

    Args:
        model: any ``nn.Module`` (it needs no embedding).

    Example:
        >>> adv = advnlp.build("none", model)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "none"

    def __init__(self, model: nn.Module, **_: Any) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.embedding_name, self.embedding = None, None

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        loss = closure()
        _check_loss(loss)
        (backward or default_backward)(loss)
        return loss.detach()
