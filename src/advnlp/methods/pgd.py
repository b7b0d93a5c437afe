"""PGD: K steps of projected gradient ascent on the token embedding (Madry et al. 2018)."""

from __future__ import annotations

from torch import Tensor, nn

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number, check_steps
from ..perturbation import EPSILON_UNITS, SCOPES


class PGD(AdversarialMethod):
    """Projected gradient descent on the embedding output.

    delta_0 = 0; delta_{t+1} = Proj_{||delta|| <= epsilon}(delta_t + alpha * g_t / ||g_t||);
    train on the loss at delta_K. The first pass gives g_0; passes 1..K-1 only compute the
    gradient of the embedding output (no parameter gradient); pass K is backpropagated.
    ``steps=K`` costs K + 1 forward passes, like the common PyTorch recipe.

    An ascent step whose gradient is not finite (e.g. fp16 overflow) is not taken, with a
    RuntimeWarning; if no step is taken, ``.grad`` is left exactly as a plain step leaves it.

    Args:
        model: the model the closure runs.
        epsilon: radius of the L2 ball delta stays in.
        alpha: length of each ascent step.
        steps: K, the number of ascent steps (>= 1).
        scope: ``"example"`` (default: per-example norms over non-padding positions) or
            ``"token"`` (per-vocabulary-row delta, one global norm, as the popular recipe that
            perturbs the embedding matrix).
        epsilon_unit: ``"absolute"`` (default: L2 lengths in embedding space) or
            ``"relative"``: epsilon and alpha are fractions of the embedding's own size: the
            RMS norm of the batch's perturbed matrix rows (token scope; the global norm of
            delta is then at most epsilon x that RMS) or each example's embedding-output norm
            over its non-padding positions (example scope). 0.1 = a tenth of a typical row or
            of the example; the same value transfers across models (see perturbation.py).
        adversarial_only: True trains on the adversarial loss only (Madry et al.); False
            (default) accumulates clean + final adversarial gradients (the common recipe).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    Example:
        >>> adv = advnlp.PGD(model, epsilon=1.0, alpha=0.3, steps=3)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "pgd"

    def __init__(
        self,
        model: nn.Module,
        epsilon: float = 1.0,
        alpha: float = 0.3,
        steps: int = 3,
        *,
        scope: str = "example",
        adversarial_only: bool = False,
        epsilon_unit: str = "absolute",
        target: str | None = None,
        scaler=None,
    ) -> None:
        self.epsilon = check_number("epsilon", epsilon)
        self.alpha = check_number("alpha", alpha)
        self.steps = check_steps("steps", steps)
        self.scope = check_choice("scope", scope, SCOPES)
        self.adversarial_only = bool(adversarial_only)
        self.epsilon_unit = check_choice("epsilon_unit", epsilon_unit, EPSILON_UNITS)
        super().__init__(model, target=target, scaler=scaler)

    def settings(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "alpha": self.alpha,
            "steps": self.steps,
            "scope": self.scope,
            "adversarial_only": self.adversarial_only,
            "epsilon_unit": self.epsilon_unit,
        }

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        with self._local():  # every pass but the last only builds delta: no DDP all-reduce
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
