"""FreeLB: adversarial training with gradients accumulated over K ascent steps (Zhu et al. 2020)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number, check_steps
from ..perturbation import EPSILON_UNITS, Perturbation


@dataclass
class FreeLBConfig:
    """FreeLB's hyperparameters: ``FreeLB(model, config=FreeLBConfig(epsilon=1.0, steps=3))``."""

    epsilon: float = field(
        default=1.0,
        metadata={"help": "radius of each example's L2 ball (adv-max-norm in the paper's code)"},
    )
    alpha: float = field(default=0.1, metadata={"help": "ascent step length (adv-lr)"})
    steps: int = field(default=3, metadata={"help": "K (adv-steps), >= 1"})
    _: KW_ONLY
    init_magnitude: float = field(
        default=0.1,
        metadata={
            "help": "size of the random start (adv-init-mag); 0 starts at delta = 0",
        },
    )
    epsilon_unit: str = field(
        default="absolute",
        metadata={
            "help": "absolute (L2 lengths in embedding space, the paper's) or relative (epsilon, "
            "alpha and init_magnitude are fractions of each example's embedding-output norm)",
            "choices": EPSILON_UNITS,
        },
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)
        self.alpha = check_number("alpha", self.alpha)
        self.steps = check_steps("steps", self.steps)
        self.init_magnitude = check_number("init_magnitude", self.init_magnitude)
        self.epsilon_unit = check_choice("epsilon_unit", self.epsilon_unit, EPSILON_UNITS)


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
        epsilon, alpha, steps, init_magnitude, epsilon_unit: the hyperparameters, see
            :class:`FreeLBConfig` (or pass ``config=FreeLBConfig(...)``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    Example:
        >>> adv = advnlp.FreeLB(model, epsilon=1.0, alpha=0.1, steps=3)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "freelb"
    config_class = FreeLBConfig
    config: FreeLBConfig
    scope = "example"  # FreeLB's delta is per example (not a hyperparameter)

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
            with self._no_gradient_sync():  # under DDP only the last pass all-reduces
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
