"""FGM: one gradient step of length epsilon on the token embedding (Goodfellow et al. 2015,
Miyato et al. 2017; the reference: Su Jianlin's bert4keras ``adversarial_training``)."""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field

from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_choice, check_number
from ..perturbation import EPSILON_UNITS, SCOPES


@dataclass
class FGMConfig:
    """FGM's hyperparameters: ``FGM(model, config=FGMConfig(epsilon=0.5))``."""

    epsilon: float = field(
        default=1.0,
        metadata={"help": "L2 length of the perturbation (Su's original: 0.5 on CLUE, BERT-base)"},
    )
    _: KW_ONLY
    scope: str = field(
        default="token",
        metadata={
            "help": "token (Su's original: one delta row per vocabulary entry, one norm over the "
            "whole matrix) or example (per-example delta, normalised over its non-padding "
            "positions)",
            "choices": SCOPES,
        },
    )
    adversarial_only: bool = field(
        default=False,
        metadata={
            "help": "train on the adversarial loss only (Su's original Keras behaviour); "
            "otherwise clean + adversarial gradients accumulate (the common PyTorch recipe)"
        },
    )
    epsilon_unit: str = field(
        default="absolute",
        metadata={
            "help": "absolute (an L2 length in embedding space, Su's original) or relative (a "
            "fraction of the embedding's own size: 0.1 = a tenth of a typical row or example)",
            "choices": EPSILON_UNITS,
        },
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)
        self.scope = check_choice("scope", self.scope, SCOPES)
        self.adversarial_only = bool(self.adversarial_only)
        self.epsilon_unit = check_choice("epsilon_unit", self.epsilon_unit, EPSILON_UNITS)


class FGM(AdversarialMethod):
    """Fast Gradient Method on the token embedding.

    Step: g = d loss / d E; delta = epsilon * g / (||g|| + 1e-8); train on the loss at E + delta.
    Costs one extra forward and backward pass (about 2x a plain step).

    Token scope is Su's: delta is a per-vocabulary-row shift built from the matrix gradient,
    one norm over the whole matrix, every occurrence of token v moved by delta[v]. With
    ``epsilon_unit="relative"`` epsilon is a fraction of the RMS norm of the batch's perturbed
    matrix rows (token scope; the global norm of delta is then epsilon x that RMS) or of each
    example's embedding-output norm over its non-padding positions (example scope): 0.1 = a
    tenth of a typical row or of the example, the same value for any model.

    Args:
        model: the model the closure runs.
        epsilon, scope, adversarial_only, epsilon_unit: the hyperparameters, see
            :class:`FGMConfig` (or pass ``config=FGMConfig(...)``).
        target: name, dotted suffix or regex of the token embedding (see ``find_embedding``).
        scaler: the ``torch.amp.GradScaler`` in use, if any (keeps fp16 gradients from
            underflowing when ``adversarial_only=True``).

    Dropout draws different masks in the clean and the adversarial pass (as in Su's original).
    A non-finite gradient of the embedding output (e.g. fp16 overflow) skips the perturbation
    with a RuntimeWarning: ``.grad`` is then left exactly as a plain step leaves it.

    Example:
        >>> adv = advnlp.FGM(model, epsilon=0.5)
        >>> loss = adv.backward(lambda: model(**batch).loss)  # instead of loss.backward()
    """

    name = "fgm"
    config_class = FGMConfig
    config: FGMConfig

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        with self._no_gradient_sync():  # builds delta only: no DDP all-reduce here
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
