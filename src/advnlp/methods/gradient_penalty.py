"""Gradient penalty on the embedding output (the reference: Su Jianlin, kexue.fm / bert4keras)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..distributed import group_size, refuse_sharded_double_backward
from ..errors import check_number
from ..passes import penalty_term


@dataclass
class GradientPenaltyConfig:
    """The gradient penalty's hyperparameter: ``GradientPenalty(model, config=...)``."""

    epsilon: float = field(
        default=1.0,
        metadata={"help": "weight of the penalty (Su's original uses 1 on CLUE with BERT-base)"},
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)


class GradientPenalty(AdversarialMethod):
    """Train on ``loss + 0.5 * epsilon * ||d loss / d e||^2``.

    ``e`` are the token-embedding outputs (one row per token occurrence, padding included, as in
    Su's original). The penalty pulls each example to the flat bottom of its class's "pit", so
    small input changes do not move it. Its gradient needs a real second-order pass
    (``create_graph=True``): a penalty computed from a detached gradient is a silent no-op.

    PyTorch's fused attention kernels (flash / memory-efficient SDPA) have no double backward,
    so the forward pass runs with the math SDPA kernel. The penalty is not scale invariant:
    under a GradScaler pass ``scaler=`` so it is computed on unscaled gradients.

    Gradient accumulation: the penalty is quadratic in the loss's scale. If the closure
    returns ``loss / k`` for k micro-batches (the usual manual recipe), the accumulated
    gradients equal the full batch's; if the division by k happens in ``backward`` (as
    ``accelerator.backward`` does), each micro-batch's penalty weighs k times more.

    Args:
        model: the model the closure runs.
        epsilon: the hyperparameter, see :class:`GradientPenaltyConfig` (or pass ``config=``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    After ``backward``, ``last_penalty`` holds the penalty term (detached).

    Refused under FSDP (``fully_shard`` on any part of the model), with a ConfigError when the
    method is built or called: the double backward crashes the process there (SIGSEGV, no
    error), because the first backward frees the gathered parameters that its graph still
    reads (see ``advnlp.distributed.refuse_sharded_double_backward``). DDP works.

    Example:
        >>> adv = advnlp.GradientPenalty(model, epsilon=1.0)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "gp"
    config_class = GradientPenaltyConfig
    config: GradientPenaltyConfig
    last_penalty: Tensor | None = None

    def __init__(self, model: nn.Module, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        refuse_sharded_double_backward(model, type(self).__name__)

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        refuse_sharded_double_backward(self.model, type(self).__name__)  # sharded after building
        backward = backward or default_backward
        with sdpa_kernel(SDPBackend.MATH), _explain_missing_double_backward():
            run = self._forward(closure)
            grads = self._input_gradients(run, create_graph=True)
            # Each data-parallel rank's local mean loss has group_size times the per-token
            # gradient of the global mean loss: dividing keeps the global batch's penalty.
            size = group_size(self.data_parallel_group)
            penalty = (
                penalty_term(
                    grads,
                    self.epsilon,
                    who="GradientPenalty",
                    stacklevel=3,  # past the warm-up's
                )
                / size
            )
            self.last_penalty = penalty.detach()
            backward(run.loss + penalty.to(run.loss.dtype))
        return run.loss.detach()


@contextlib.contextmanager
def _explain_missing_double_backward():
    try:
        yield
    except RuntimeError as error:
        if "derivative for" in str(error) and "not implemented" in str(error):
            raise RuntimeError(
                "GradientPenalty needs a double backward, which an attention kernel of this "
                "model lacks; load it with attn_implementation='sdpa' or 'eager' "
                f"(not flash attention). Original error: {error}"
            ) from error
        raise
