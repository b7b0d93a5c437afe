"""NEFTune: uniform noise on the embedding output while training (Jain et al. 2023,
"NEFTune: Noisy Embeddings Improve Instruction Finetuning"; the reference: the authors'
neelsjain/NEFTune and transformers' ``neftune_noise_alpha``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_number
from ..perturbation import Perturbation


@dataclass
class NEFTuneConfig:
    """NEFTune's hyperparameters: ``NEFTune(model, config=NEFTuneConfig(alpha=5.0))``."""

    alpha: float = field(
        default=5.0,
        metadata={
            "help": "noise size: U(-1, 1) * alpha / sqrt(L * d) per coordinate, L the example's "
            "real length, d the hidden size (the paper's alpha: 5, 10 or 15; 0 = a plain step)"
        },
    )

    def __post_init__(self) -> None:
        self.alpha = check_number("alpha", self.alpha)


class NEFTune(AdversarialMethod):
    """Noisy embeddings: one pass at E[ids] + noise, noise ~ U(-1, 1) * alpha / sqrt(L * d).

    L is each example's real length: the positions whose id is not the padding id (the
    embedding's ``padding_idx``, else the model config's ``pad_token_id``; no padding id: every
    position is real), the same rule as the example scope of the other methods. Padding gets
    no noise. Deliberate deviation from transformers' hook, which scales by the *padded* length
    and adds noise to padding too; on a batch without padding the two are the same formula
    (tests/test_neftune.py checks it against transformers' own hook).

    Training only, as in the paper: when the embedding is in eval mode the step is plain.
    The noise is drawn from torch's global generator (as transformers and FreeLB's random
    start do), so ``torch.manual_seed`` fixes it. One forward and one backward pass, about the
    cost of a plain step; ``backward`` returns the loss of the noisy pass (there is no clean one).

    Args:
        model: the model the closure runs.
        alpha: the hyperparameter, see :class:`NEFTuneConfig` (or ``config=NEFTuneConfig(...)``).
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any (unused: no gradient is read).

    Example:
        >>> adv = advnlp.NEFTune(model, alpha=5.0)
        >>> loss = adv.backward(lambda: model(**batch).loss)
    """

    name = "neftune"
    config_class = NEFTuneConfig
    config: NEFTuneConfig

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward

        def noise(index: int, ids: Tensor, output: Tensor) -> Tensor:
            return Perturbation.random_start(ids, output, self.padding_idx, self.alpha)

        noisy = self.embedding.training and self.alpha > 0
        loss = self._forward(closure, noise if noisy else None).loss
        backward(loss)
        return loss.detach()
