"""FreeLB: adversarial training with gradients accumulated over K ascent steps (Zhu et al. 2020)."""

from __future__ import annotations

import contextlib

from torch import Tensor, nn

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_number, check_steps
from ..perturbation import Perturbation


class FreeLB(AdversarialMethod):
    """Free Large-Batch adversarial training.

    delta_0 ~ U(-1, 1) * init_magnitude / sqrt(L * H) on each example's L non-padding
    positions; for t = 1..K: backpropagate loss(delta_{t-1}) / K (parameter gradients
    accumulate), then delta_t = Proj_{||delta|| <= epsilon}(delta_{t-1} + alpha * g / ||g||),
    per example. Parameters get the mean of the K adversarial gradients; there is no clean
    pass, so ``backward`` returns the loss of the first pass (clean when init_magnitude=0).
    Costs K forward and backward passes.

    Dropout draws new masks in every pass here (the reference implementation can reuse them).

    Args:
        model: the model the closure runs.
        epsilon: radius of each example's L2 ball (``adv-max-norm`` in the paper's code).
        alpha: ascent step length (``adv-lr``).
        steps: K (``adv-steps``), >= 1.
        init_magnitude: size of the random start (``adv-init-mag``); 0 starts at delta = 0.
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    Example:
        >>> adv = advnlp.FreeLB(model, epsilon=1.0, alpha=0.1, steps=3)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "freelb"
    scope = "example"

    def __init__(
        self,
        model: nn.Module,
        epsilon: float = 1.0,
        alpha: float = 0.1,
        steps: int = 3,
        *,
        init_magnitude: float = 0.1,
        target: str | None = None,
        scaler=None,
    ) -> None:
        self.epsilon = check_number("epsilon", epsilon)
        self.alpha = check_number("alpha", alpha)
        self.steps = check_steps("steps", steps)
        self.init_magnitude = check_number("init_magnitude", init_magnitude)
        super().__init__(model, target=target, scaler=scaler)

    def hyperparameters(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "steps": self.steps,
            "init_magnitude": self.init_magnitude,
        }

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward

        def averaged(loss: Tensor) -> None:
            backward(loss / self.steps)

        offset, first_loss = self._random_start, None
        for step in range(self.steps):
            last = step == self.steps - 1
            # Only the last pass all-reduces under DDP: earlier ones accumulate locally.
            with contextlib.nullcontext() if last else self._local():
                run = self._forward(closure, offset)
                if first_loss is None:
                    first_loss = run.loss.detach()
                    delta = Perturbation(self.scope, run.offsets)
                if last:
                    averaged(run.loss)
                    break
                grads = self._backward_capturing(run, averaged)
            ascent = self._direction(self.scope, run, grads, self.alpha)
            delta = (delta + ascent).clipped(self.epsilon)
            offset = delta.offset
        return first_loss

    def _random_start(self, index: int, ids: Tensor, output: Tensor) -> Tensor:
        start = Perturbation.uniform(
            self.scope, [ids], [output], self.padding_idx, self.init_magnitude
        )
        return start.parts[0]
