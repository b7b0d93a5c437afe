"""A perturbation of the token-embedding output, stored in the space where it is measured.

Two scopes (``scope=`` of FGM / PGD / FreeLB):

- ``"token"``: one row per vocabulary entry present in the batch, shape (U, H). Every
  occurrence of token v is shifted by the same row; ONE L2 norm over all rows, as Su's
  original (bert4keras) perturbs the embedding matrix. Rows are built from the per-position
  output gradients: the gradient of matrix row v is the sum of the output gradients at the
  positions holding v.
  Only the batch's U unique rows are kept: a dense (vocab, H) buffer costs what a clone does.
- ``"example"``: one (B, T, H) tensor per embedding call, zero at padding positions, with
  an L2 norm per example over its non-padding positions (Miyato et al. 2017, FreeLB).

Two units for lengths and radii (``epsilon_unit=`` of FGM / PGD / FreeLB): ``"absolute"`` (an
L2 length in embedding space, Su's original semantics) or ``"relative"`` (a fraction of the
embedding's own size, so that one epsilon means the same push on models whose embedding rows
have norm 0.2 or 1.6):

- token scope: the RMS norm of the perturbed matrix rows (the batch's distinct non-padding
  rows, read from the weight). The one global norm of delta is epsilon x that RMS, so the
  conversion is exact (absolute epsilon = relative epsilon x RMS) and, however delta spreads
  over the rows, no row moves by more than epsilon x a typical row: epsilon=0.1 concentrated
  on one token moves it by a tenth of a typical row. (Scaling by sqrt(U) instead would make
  the push grow with the batch's vocabulary.)
- example scope: each example's norm of the embedding output over its non-padding
  positions, so delta is that fraction of the example's own embedding.

Arithmetic runs in float32 at least (float64 stays float64), whatever the model's dtype:
squaring fp16 gradients overflows long before the gradients themselves do.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

SCOPES = ("token", "example")
EPSILON_UNITS = ("absolute", "relative")
NORM_FLOOR = 1e-8  # delta = epsilon * g / (||g|| + 1e-8), as in Su's original


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


class Perturbation:
    """Tensors in one scope, with the norm, scaling and projection that scope defines."""

    def __init__(
        self,
        scope: str,
        parts: list[Tensor],
        keys: Tensor | None = None,
        unit: list[Tensor] | None = None,
    ) -> None:
        self.scope = scope
        self.parts = parts  # token: [rows (U, H)]; example: one (B, T, H) per embedding call
        self.keys = keys  # token scope: sorted unique token ids, one per row
        # What lengths and radii are measured in, broadcastable like norms(); None: absolute.
        self.unit = unit

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_gradients(
        cls,
        scope: str,
        ids: Sequence[Tensor],
        grads: Sequence[Tensor | None],
        padding_idx: int | None,
    ) -> Perturbation:
        """Gather the gradients of the embedding outputs of each call into ``scope``'s space."""
        dtype = work_dtype(next(g.dtype for g in grads if g is not None))
        full = [
            torch.zeros(*i.shape, _width(grads), dtype=dtype, device=i.device)
            if g is None
            else g.to(dtype)
            for i, g in zip(ids, grads, strict=True)
        ]
        if scope == "example":
            return cls(
                scope, [g * _mask(i, padding_idx, g) for i, g in zip(ids, full, strict=True)]
            )
        flat_ids = torch.cat([i.reshape(-1) for i in ids])
        flat_grads = torch.cat([g.reshape(-1, g.shape[-1]) for g in full])
        keys, inverse = torch.unique(flat_ids, sorted=True, return_inverse=True)
        rows = flat_grads.new_zeros(len(keys), flat_grads.shape[-1])
        rows.index_add_(0, inverse, flat_grads)  # (U, H): gradient of each present matrix row
        if padding_idx is not None:
            rows[keys == padding_idx] = 0  # nn.Embedding never updates its padding row
        return cls(scope, [rows], keys)

    @staticmethod
    def random_start(
        ids: Tensor, like: Tensor, padding_idx: int | None, magnitude: float | Tensor
    ) -> Tensor:
        """FreeLB's start for one embedding call, per example (B, T, H): U(-1, 1) on each
        non-padding coordinate, times magnitude / sqrt(its example's non-padding coordinates).
        ``magnitude`` may be per example, (B, 1, 1) (relative unit)."""
        noise = torch.empty_like(like, dtype=work_dtype(like.dtype)).uniform_(-1, 1)
        mask = _mask(ids, padding_idx, noise)
        dims = (_example_sum(mask) * like.shape[-1]).clamp_min(1)
        return noise * mask * (magnitude / dims.sqrt())

    # -- units (epsilon_unit="relative") ------------------------------------------------------
    @staticmethod
    def example_unit(ids: Tensor, output: Tensor, padding_idx: int | None) -> Tensor:
        """Each example's L2 norm of the embedding ``output`` over its non-padding positions,
        (B, 1, 1), detached, in float32 at least."""
        output = output.detach().to(work_dtype(output.dtype))
        return _example_norm(output * _mask(ids, padding_idx, output))

    @staticmethod
    def token_unit(weight: Tensor, keys: Tensor, padding_idx: int | None) -> Tensor:
        """RMS L2 norm of the matrix rows ``keys`` (the padding row, never perturbed, left
        out); 0 if no row is left. Reads only those U rows: no vocabulary-sized buffer."""
        if padding_idx is not None:
            keys = keys[keys != padding_idx]
        rows = weight.detach()[keys].to(work_dtype(weight.dtype))
        if len(rows) == 0:
            return rows.new_zeros(())
        return torch.linalg.vector_norm(rows, dim=1).square().mean().sqrt()

    # -- arithmetic ---------------------------------------------------------------------------
    def norms(self) -> list[Tensor]:
        """L2 norm(s), broadcastable against each part: a scalar (token) or (B, 1, 1) (example)."""
        if self.scope == "token":
            return [torch.linalg.vector_norm(self.parts[0])]
        return [_example_norm(p) for p in self.parts]

    def is_finite(self) -> bool:
        return all(bool(torch.isfinite(n).all()) for n in self.norms())

    def normalized(self, length: float, unit: list[Tensor] | None = None) -> Perturbation:
        """``length * self / (||self|| + 1e-8)`` per norm group, ``length`` measured in
        ``unit`` (default: this perturbation's); the result keeps that unit."""
        unit = self.unit if unit is None else unit
        sizes = _sizes(length, unit, self)
        parts = [
            p * (size / (n + NORM_FLOOR))
            for p, n, size in zip(self.parts, self.norms(), sizes, strict=True)
        ]
        return Perturbation(self.scope, parts, self.keys, unit)

    def clipped(self, radius: float) -> Perturbation:
        """Projection onto the L2 ball of ``radius`` in this perturbation's unit (per group)."""
        sizes = _sizes(radius, self.unit, self)
        parts = [
            p * torch.clamp(size / (n + NORM_FLOOR), max=1.0)
            for p, n, size in zip(self.parts, self.norms(), sizes, strict=True)
        ]
        return Perturbation(self.scope, parts, self.keys, self.unit)

    def __add__(self, other: Perturbation) -> Perturbation:
        if self.keys is not None and not torch.equal(self.keys, other.keys):
            raise RuntimeError("token-scope perturbations of different batches cannot be added")
        parts = [a + b for a, b in zip(self.parts, other.parts, strict=True)]
        unit = self.unit if self.unit is not None else other.unit
        return Perturbation(self.scope, parts, self.keys, unit)

    # -- application --------------------------------------------------------------------------
    def offset(self, index: int, ids: Tensor, output: Tensor | None = None) -> Tensor:
        """What to add to the output of embedding call number ``index`` (fed ``ids``)."""
        if self.scope == "token":
            rows = torch.searchsorted(self.keys, ids.reshape(-1))
            rows = rows.clamp_max(len(self.keys) - 1)
            if not torch.equal(self.keys[rows], ids.reshape(-1)):
                raise RuntimeError(
                    "the closure fed the embedding other token ids than in the first pass; "
                    "it must run the same batch every time it is called"
                )
            return self.parts[0][rows].view(*ids.shape, -1)
        if index >= len(self.parts) or self.parts[index].shape[:-1] != ids.shape:
            raise RuntimeError(
                "the closure called the embedding with other shapes than in the first pass; "
                "it must run the same batch every time it is called"
            )
        return self.parts[index]


def _sizes(value: float, unit: list[Tensor] | None, of: Perturbation) -> list[float | Tensor]:
    """``value`` in ``unit``, one per norm group of ``of`` (absolute when ``unit`` is None)."""
    if unit is None:
        return [value] * len(of.parts)
    return [value * u for u in unit]


def _width(grads: Sequence[Tensor | None]) -> int:
    return next(g.shape[-1] for g in grads if g is not None)


def _mask(ids: Tensor, padding_idx: int | None, like: Tensor) -> Tensor:
    """1 at positions holding a real token, 0 at padding; shape ids.shape + (1,)."""
    if padding_idx is None:
        return torch.ones(*ids.shape, 1, dtype=like.dtype, device=like.device)
    return (ids != padding_idx).unsqueeze(-1).to(like.dtype)


def _example_sum(part: Tensor) -> Tensor:
    """Per-example sum (B, 1, ..., 1); a call without a batch dimension is one example."""
    if part.dim() <= 2:
        return part.sum()
    return part.flatten(1).sum(1).view(-1, *[1] * (part.dim() - 1))


def _example_norm(part: Tensor) -> Tensor:
    """Per-example L2 norm (B, 1, ..., 1); a call without a batch dimension is one example."""
    if part.dim() <= 2:
        return torch.linalg.vector_norm(part)
    return torch.linalg.vector_norm(part.flatten(1), dim=1).view(-1, *[1] * (part.dim() - 1))
