"""FreeLB: adversarial training with gradients accumulated over K ascent steps (Zhu et al. 2020)."""

from __future__ import annotations

from torch import Tensor, nn

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number, check_steps
from ..perturbation import EPSILON_UNITS, Perturbation


class FreeLB(AdversarialMethod):
    """Free Large-Batch adversarial training.

    delta_0 ~ U(-1, 1) * init_magnitude / sqrt(L * H) on each example's L non-padding
    positions; for t = 1..K: backpropagate loss(delta_{t-1}) / K (parameter gradients
    accumulate), then delta_t = Proj_{||delta|| <= epsilon}(delta_{t-1} + alpha * g / ||g||),
    per example. Parameters get the mean of the K adversarial gradients; there is no clean
    pass, so ``backward`` returns the loss of the first pass (clean when init_magnitude=0).
    Costs K forward and backward passes.

    Dropout draws new masks in every pass here (the reference implementation can reuse them).
    An ascent step whose gradient is not finite (e.g. fp16 overflow) is not taken, with a
    RuntimeWarning: delta stays where it was (the random start, if no step is taken).

    Args:
        model: the model the closure runs.
        epsilon: radius of each example's L2 ball (``adv-max-norm`` in the paper's code).
        alpha: ascent step length (``adv-lr``).
        steps: K (``adv-steps``), >= 1.
        init_magnitude: size of the random start (``adv-init-mag``); 0 starts at delta = 0.
        epsilon_unit: ``"absolute"`` (default: L2 lengths in embedding space, the paper's) or
            ``"relative"``: epsilon, alpha and init_magnitude are fractions of each example's
            embedding-output norm over its non-padding positions (0.1 = a tenth of the
            example's own embedding; the same value transfers across models).
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
        epsilon_unit: str = "absolute",
        target: str | None = None,
        scaler=None,
    ) -> None:
        self.epsilon = check_number("epsilon", epsilon)
        self.alpha = check_number("alpha", alpha)
        self.steps = check_steps("steps", steps)
        self.init_magnitude = check_number("init_magnitude", init_magnitude)
        self.epsilon_unit = check_choice("epsilon_unit", epsilon_unit, EPSILON_UNITS)
        super().__init__(model, target=target, scaler=scaler)

    def settings(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "steps": self.steps,
            "init_magnitude": self.init_magnitude,
            "epsilon_unit": self.epsilon_unit,
        }

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward

        def averaged(loss: Tensor) -> None:
            backward(loss / self.steps)

        start: list[Tensor] = []  # the random start of each embedding call, as drawn

        def random_start(index: int, ids: Tensor, output: Tensor) -> Tensor:
            magnitude = self.init_magnitude
            if self.epsilon_unit == "relative":
                magnitude = magnitude * Perturbation.example_unit(ids, output, self.padding_idx)
            start.append(Perturbation.random_start(ids, output, self.padding_idx, magnitude))
            return start[-1]

        offset, first_loss, delta = random_start, None, None
        for _ in range(self.steps - 1):
            with self._local():  # under DDP only the last pass all-reduces
                run = self._forward(closure, offset)
                grads = self._backward_capturing(run, averaged)
            if delta is None:
                first_loss, delta = run.loss.detach(), Perturbation(self.scope, start)
            ascent = self._direction(self.scope, run, grads, self.alpha)
            if ascent is not None:  # a non-finite gradient's step is not taken
                delta = (delta + ascent).clipped(self.epsilon)
            offset = delta.offset
        run = grads = None  # keep no (B, T, H) buffers of earlier passes through the last one
        last = self._forward(closure, offset).loss
        averaged(last)
        return last.detach() if first_loss is None else first_loss
