"""White-box attack: PGD on the token-embedding output, inside an L2 ball of relative radius.

The radius is relative: an example's perturbation delta obeys ||delta|| <= r * ||e||, where
e is that example's token-embedding output over the positions that may move (real tokens:
neither padding nor special tokens) and the norms are L2 over all those positions. So r = 0.1
means "10% of the input's own size" on every model, whatever the scale of its embeddings (rows
of norm ~0.25 in a fresh BERT, ~1.6 in multilingual-e5-small).

It reuses the core: the forward hook of :class:`advnlp.AdversarialMethod` adds delta to the
embedding output, ``autograd.grad`` gives the gradient w.r.t. it, and
:class:`advnlp.perturbation.Perturbation` (``"example"`` scope) normalizes and projects it.
Ascent on the summed cross-entropy of the gold labels, from delta = 0, ``steps`` steps of
length 2.5 r ||e|| / steps (Madry et al.'s rule); an example counts as broken if any iterate
(all inside the ball) is misclassified.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..base import AdversarialMethod
from ..perturbation import Perturbation
from .victim import Victim


@dataclass
class EmbeddingOutcome:
    """One batch: probabilities before and after, which examples broke, passes run."""

    clean: Tensor  # (B, C)
    adversarial: Tensor  # (B, C): at the first misclassified iterate, else at the last
    broken: Tensor  # (B,) bool
    passes: int  # forward passes (each but the last also ran a backward pass)


class EmbeddingPGD(AdversarialMethod):
    """PGD on the embedding output of ``victim``'s model at relative L2 radius ``radius``."""

    name = "embedding"

    def __init__(self, victim: Victim, steps: int = 10) -> None:
        super().__init__(victim.model)
        self.victim = victim
        self.steps = steps

    def settings(self) -> dict:
        return {"steps": self.steps}

    def attack(self, batch: dict[str, Tensor], labels: Tensor, radius: float) -> EmbeddingOutcome:
        """Attack one encoded batch; ``batch["special_tokens_mask"]`` marks special tokens."""
        special = batch.pop("special_tokens_mask").bool()
        movable = ~special & (batch["attention_mask"] > 0)
        mask = movable.unsqueeze(-1)  # (B, T, 1)
        logits: list[Tensor] = []

        def closure() -> Tensor:
            out = self.victim.logits(batch)
            logits.append(out.detach().float())
            return F.cross_entropy(out.float(), labels, reduction="sum")

        with torch.enable_grad():
            run = self._forward(closure)
            clean = logits[-1].softmax(-1)
            size = torch.linalg.vector_norm((run.outputs[0].detach() * mask).flatten(1), dim=1)
            allowed = (radius * size).view(-1, 1, 1)  # (B, 1, 1): each example's own ball
            step = 2.5 * allowed / self.steps
            adversarial, broken = clean.clone(), torch.zeros_like(labels, dtype=torch.bool)
            delta: Perturbation | None = None
            for _ in range(self.steps):
                grads = [g * mask if g is not None else None for g in self._input_gradients(run)]
                ascent = self._direction("example", run, grads, step)  # tensor lengths: per row
                delta = ascent if delta is None else (delta + ascent)
                delta = delta.clipped(allowed)
                run = self._forward(closure, delta.offset)
                now = logits[-1].softmax(-1)
                newly = (now.argmax(-1) != labels) & ~broken
                adversarial[newly] = now[newly]
                broken |= newly
                adversarial[~broken] = now[~broken]
                if bool(broken.all()):
                    break
        self.victim.queries += len(labels) * len(logits)
        return EmbeddingOutcome(clean.cpu(), adversarial.cpu(), broken.cpu(), len(logits))
