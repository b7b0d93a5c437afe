"""FGM at the cost of a plain step: the perturbation of each token comes from the gradient of
an earlier step, in the spirit of "free" adversarial training (Shafahi et al. 2019, "Adversarial
Training for Free!"; Zhu et al. 2020's FreeLB reuses gradients the same way)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..base import AdversarialMethod, Backward, Closure, default_backward
from ..errors import check_number


@dataclass
class FreeFGMConfig:
    """FreeFGM's hyperparameters: ``FreeFGM(model, config=FreeFGMConfig(epsilon=0.5))``."""

    epsilon: float = field(
        default=1.0,
        metadata={"help": "L2 length of each step's token-scope perturbation, as FGM's"},
    )

    def __post_init__(self) -> None:
        self.epsilon = check_number("epsilon", self.epsilon)


class FreeFGM(AdversarialMethod):
    """FGM (token scope, adversarial only) with a gradient one step old: one pass a step.

    Each step runs one forward and one backward pass at E + delta, where delta[v] is the row
    of token v kept from the last step whose batch held v (zero for a token never seen), and
    trains on that loss only. The gradient of that same pass gives the next rows: delta =
    epsilon * g / ||g||, one norm over the batch's rows as FGM's token scope, replacing the
    cached rows of those tokens. About the cost of a plain step (no second pass).

    What it approximates: FGM with ``adversarial_only=True`` takes g at the current weights
    and the clean input; here g was taken one step earlier, at the weights before the last
    optimizer step and at the then-perturbed input, and is stale for tokens last seen further
    back. With small steps the direction is close (the "free" argument); the first step and
    tokens never seen are not perturbed. The cache holds at most one row per vocabulary entry
    (float32 at least), never the embedding matrix itself, and is not saved with the model.

    Args:
        model: the model the closure runs.
        epsilon: the hyperparameter, see :class:`FreeFGMConfig`.
        target: name, dotted suffix or regex of the token embedding.
        scaler: the ``torch.amp.GradScaler`` in use, if any (the direction is normalised, so
            the loss scale does not matter).

    Example:
        >>> adv = advnlp.FreeFGM(model, epsilon=0.5)
        >>> loss = adv.backward(lambda: model(**batch).loss)  # perturbed by the last step's rows
    """

    name = "fgm_free"
    config_class = FreeFGMConfig
    config: FreeFGMConfig
    scope = "token"  # rows per vocabulary entry: the only scope that outlives a batch
    _keys: Tensor | None = None  # sorted token ids with a cached row
    _rows: Tensor | None = None  # (len(_keys), H)

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        backward = backward or default_backward
        run = self._forward(closure, self._cached if self._keys is not None else None)
        grads = self._backward_capturing(run, backward)
        delta = self._direction(self.scope, run, grads, self.epsilon)
        if delta is not None:  # a non-finite gradient keeps the cache as it was
            self._remember(delta.keys, delta.parts[0].detach())
        return run.loss.detach()

    def _cached(self, index: int, ids: Tensor, output: Tensor) -> Tensor:
        flat = ids.reshape(-1)
        at = torch.searchsorted(self._keys, flat).clamp_max(len(self._keys) - 1)
        found = (self._keys[at] == flat).unsqueeze(-1)
        return torch.where(found, self._rows[at], 0).view(*ids.shape, -1)

    def _remember(self, keys: Tensor, rows: Tensor) -> None:
        if self._keys is not None:  # keep the old rows of tokens this batch did not hold
            old = ~torch.isin(self._keys, keys)
            keys, rows = torch.cat([self._keys[old], keys]), torch.cat([self._rows[old], rows])
        order = torch.argsort(keys)
        self._keys, self._rows = keys[order], rows[order]
