"""FGM: one gradient step of length epsilon on the token embedding (Goodfellow et al. 2015,
Miyato et al. 2017; the seed: Su Jianlin's bert4keras ``adversarial_training``)."""

from __future__ import annotations

from torch import Tensor, nn

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number
from ..perturbation import EPSILON_UNITS, SCOPES


class FGM(AdversarialMethod):
    """Fast Gradient Method on the token embedding.

    Step: g = d loss / d E; delta = epsilon * g / (||g|| + 1e-8); train on the loss at E + delta.
    Costs one extra forward and backward pass (about 2x a plain step).

    Args:
        model: the model the closure runs.
        epsilon: L2 length of the perturbation (the seed uses 0.5 on CLUE with BERT-base).
        scope: ``"token"`` (the seed: delta is a per-vocabulary-row shift built from the
            matrix gradient, one norm over the whole matrix, every occurrence of token v moved
            by delta[v]) or ``"example"`` (per-example delta on the embedding output, L2
            normalised over that example's non-padding positions).
        epsilon_unit: ``"absolute"`` (default, the seed's semantics: an L2 length in embedding
            space) or ``"relative"``: epsilon is a fraction of the embedding's own size: the RMS
            norm of the batch's perturbed matrix rows (token scope; the global norm of delta
            is then epsilon x that RMS) or each example's embedding-output norm over its
            non-padding positions (example scope). 0.1 = a tenth of a typical row or of the
            example; the same value transfers across models (see perturbation.py).
        adversarial_only: True is the seed's Keras behaviour (parameters get the gradient of
            the perturbed loss only); False (default) accumulates clean + adversarial
            gradients, the common PyTorch recipe.
        target: name, dotted suffix or regex of the token embedding (see ``find_embedding``).
        scaler: the ``torch.amp.GradScaler`` in use, if any (keeps fp16 gradients from
            underflowing when ``adversarial_only=True``).

    Dropout draws different masks in the clean and the adversarial pass (as in the seed).
    A non-finite gradient of the embedding output (e.g. fp16 overflow) skips the perturbation
    with a RuntimeWarning: ``.grad`` is then left exactly as a plain step leaves it.

    Example:
        >>> adv = advnlp.FGM(model, epsilon=0.5)
        >>> loss = adv.backward(lambda: model(**batch).loss)  # instead of loss.backward()
    """

    name = "fgm"

    def __init__(
        self,
        model: nn.Module,
        epsilon: float = 1.0,
        *,
        scope: str = "token",
        adversarial_only: bool = False,
        epsilon_unit: str = "absolute",
        target: str | None = None,
        scaler=None,
    ) -> None:
        self.epsilon = check_number("epsilon", epsilon)
        self.scope = check_choice("scope", scope, SCOPES)
        self.adversarial_only = bool(adversarial_only)
        self.epsilon_unit = check_choice("epsilon_unit", epsilon_unit, EPSILON_UNITS)
        super().__init__(model, target=target, scaler=scaler)

    def settings(self) -> dict:
        return {
            "epsilon": self.epsilon,
            "scope": self.scope,
            "adversarial_only": self.adversarial_only,
            "epsilon_unit": self.epsilon_unit,
        }

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        with self._local():  # builds delta only: no DDP all-reduce here
            clean = self._forward(closure)
            if self.adversarial_only:
                grads = self._input_gradients(clean)
            else:
                grads = self._backward_capturing(clean, backward)
        delta = self._direction(self.scope, clean, grads, self.epsilon)
        loss = clean.loss.detach()
        del clean, grads  # free the first pass's (B, T, H) buffers before the second pass
        if delta is None:  # not finite: no perturbation, a plain step
            self._plain_step(closure, backward, clean_done=not self.adversarial_only)
        else:
            backward(self._forward(closure, delta.offset).loss)
        return loss
