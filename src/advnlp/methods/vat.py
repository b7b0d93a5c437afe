"""VAT: virtual adversarial training on the embedding output (Miyato et al. 2018, "Virtual
Adversarial Training: A Regularization Method for Supervised and Semi-Supervised Learning";
for text, Miyato et al. 2017, "Adversarial Training Methods for Semi-Supervised Text
Classification"). SMART's loop (:mod:`advnlp.methods.smart`) with VAT's one-sided KL."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..passes import kl_divergence
from .smart import SMART, SMARTConfig


@dataclass
class VATConfig(SMARTConfig):
    """VAT's hyperparameters: ``VAT(model, config=VATConfig(epsilon=1.0, steps=1))``."""

    init_std: float = field(
        default=1e-6,
        metadata={
            "help": "random start: N(0, init_std^2) per non-padding coordinate (VAT's "
            "xi sets the start's length instead)"
        },
    )
    kl_weight: float = field(
        default=1.0,
        metadata={
            "help": "lambda, the weight of the KL regulariser (VAT's alpha); 0 = a plain step"
        },
    )


class VAT(SMART):
    """Virtual adversarial regulariser: loss(E) + kl_weight * KL(sg(f(E)) || f(E + delta)).

    The clean prediction is a fixed target (stop-gradient, as Miyato et al.'s theta-hat): only
    the perturbed pass carries the regulariser's gradient. The KL is over the last dimension
    of the logits, summed over the others and divided by the batch size (a batch mean). delta
    comes from SMART's loop: a random start N(0, init_std^2) on the non-padding coordinates,
    then K ascent steps delta <- Proj_{||delta|| <= epsilon}(delta + alpha * g / ||g||) on
    that KL, norms per example. K + 2 forward passes, one backward; ``backward`` returns the
    clean loss; plain in eval mode, at epsilon 0 or at kl_weight 0.

    Deliberate deviations from VAT's power iteration: there, the start is xi * d / ||d||
    (d Gaussian, xi = 1e-6), each of K iterations takes the gradient at radius xi and
    renormalises, and only the last direction is scaled to epsilon. Here the K steps climb
    inside a real epsilon ball. With the defaults (K = 1, alpha = epsilon, a start of about
    1e-6 * sqrt(coordinates)) the one step is VAT's r_adv = epsilon * g / ||g|| up to the
    start's share, taken at the start as VAT takes it at xi * d.

    Args:
        model: the model the closure runs.
        epsilon, alpha, steps, init_std, kl_weight: the hyperparameters, see
            :class:`VATConfig` (or pass ``config=VATConfig(...)``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any.

    Example:
        >>> adv = advnlp.VAT(model, epsilon=1.0, kl_weight=1.0)
        >>> loss = adv.backward(lambda: model(**batch))
    """

    name = "vat"
    config_class = VATConfig
    config: VATConfig

    def divergence(self, clean: Tensor, perturbed: Tensor) -> Tensor:
        """KL(clean || perturbed), a batch mean, the clean prediction a fixed target."""
        return kl_divergence(clean.detach(), perturbed)
