"""PGD: K steps of projected gradient ascent on the token embedding (Madry et al. 2018)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number, check_steps
from ..perturbation import EPSILON_UNITS, SCOPES


@dataclass
class PGDConfig:
    """PGD's hyperparameters: ``PGD(model, config=PGDConfig(epsilon=1.0, steps=5))``."""

    epsilon: float = field(default=1.0, metadata={"help": "radius of the L2 ball delta stays in"})
    alpha: float = field(default=0.3, metadata={"help": "length of each ascent step"})
    steps: int = field(default=3, metadata={"help": "K, the number of ascent steps (>= 1)"})
    _: KW_ONLY
    scope: str = field(
        default="example",
        metadata={
            "help": "example (per-example norms over non-padding positions) or token "
            "(per-vocabulary-row delta, one global norm, as the popular recipe that perturbs "
            "the embedding matrix)",
            "choices": SCOPES,
        },
    )
    adversarial_only: bool = field(
        default=False,
        metadata={
            "help": "train on the adversarial loss only (Madry et al.); otherwise clean + final "
            "adversarial gradients accumulate (the common recipe)"
        },
    )
    epsilon_unit: str = field(
        default="absolute",
        metadata={
            "help": "absolute (L2 lengths in embedding space) or relative (epsilon and alpha are "
            "fractions of the embedding's own size)",
            "choices": EPSILON_UNITS,
        },
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)
        self.alpha = check_number("alpha", self.alpha)
        self.steps = check_steps("steps", self.steps)
        self.scope = check_choice("scope", self.scope, SCOPES)
        self.adversarial_only = bool(self.adversarial_only)
        self.epsilon_unit = check_choice("epsilon_unit", self.epsilon_unit, EPSILON_UNITS)


class PGD(AdversarialMethod):
    """Projected gradient descent on the embedding output.

    delta_0 = 0; delta_{t+1} = Proj_{||delta|| <= epsilon}(delta_t + alpha * g_t / ||g_t||);
    train on the loss at delta_K. The first pass gives g_0; passes 1..K-1 only compute the
    gradient of the embedding output (no parameter gradient); pass K is backpropagated.
    ``steps=K`` costs K + 1 forward passes, like the common PyTorch recipe.

    An ascent step whose gradient is not finite (e.g. fp16 overflow) is not taken, with a
    RuntimeWarning; if no step is taken, ``.grad`` is left exactly as a plain step leaves it.

    With ``epsilon_unit="relative"`` epsilon and alpha are fractions of the RMS norm of the
    batch's perturbed matrix rows (token scope; the global norm of delta is then at most
    epsilon x that RMS) or of each example's embedding-output norm over its non-padding
    positions (example scope): the same value transfers across models (see perturbation.py).

    Args:
        model: the model the closure runs.
        epsilon, alpha, steps, scope, adversarial_only, epsilon_unit: the hyperparameters, see
            :class:`PGDConfig` (or pass ``config=PGDConfig(...)``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    Example:
        >>> adv = advnlp.PGD(model, epsilon=1.0, alpha=0.3, steps=3)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "pgd"
    config_class = PGDConfig
    config: PGDConfig

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        # every pass but the last only builds delta: no DDP all-reduce
        with self._no_gradient_sync():
            clean = self._forward(closure)
            if self.adversarial_only:
                grads = self._input_gradients(clean)
            else:
                grads = self._backward_capturing(clean, backward)
            run, delta = clean, None
            for step in range(self.steps):
                ascent = self._direction(self.scope, run, grads, self.alpha)
                if ascent is not None:  # a non-finite gradient's step is not taken
                    delta = (ascent if delta is None else delta + ascent).clipped(self.epsilon)
                if step == self.steps - 1:
                    break
                run = self._forward(closure, None if delta is None else delta.offset)
                grads = self._input_gradients(run)
        loss = clean.loss.detach()
        del clean, run, grads  # free the (B, T, H) buffers of the ascent passes
        if delta is None:  # no step taken (every gradient non-finite): a plain step
            self._plain_step(closure, backward, clean_done=not self.adversarial_only)
        else:
            backward(self._forward(closure, delta.offset).loss)
        return loss
