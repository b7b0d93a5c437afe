"""Data-parallel training (torchrun / accelerate launch): what the methods exchange, and why.

Under DistributedDataParallel each rank holds a slice of the global batch, and DDP averages
parameter gradients. A method matches single-process training on the global batch when:

- example scope: each example's delta depends on its own gradient only: nothing to exchange;
- token scope: delta[v] needs the gradient of matrix row v summed over *all* ranks (token v
  may occur on several) and ONE norm over all rows: the ranks exchange just the rows of their
  batch's distinct tokens (all_gather of (U, H) rows and U ids), never a (vocab, H) matrix;
- the gradient penalty: each rank's penalty is taken on its local mean loss, whose per-token
  gradients are world_size times those of the global mean loss, so it is divided by
  world_size (the penalty is quadratic in the loss scale).

"Under DDP" means: torch.distributed is initialised with more than one rank. Passes that only
build the perturbation run under the DDP wrapper's ``no_sync()`` when the method was given the
wrapper (pass the DDP model, not ``model.module``, to save that all-reduce).
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from .perturbation import Perturbation


def world_size() -> int:
    """Ranks in the default process group (1 when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _gather(tensor: torch.Tensor) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(world_size())]
    dist.all_gather(parts, tensor)
    return parts


def sum_rows_across_ranks(local: Perturbation) -> Perturbation:
    """The token-scope gradient rows of the global batch: every rank's rows, summed by token id.

    Each rank sends its U distinct ids and (U, H) rows, padded to the largest U; every rank
    gets the union, so all compute the same norm and the same delta.
    """
    if local.scope != "token" or world_size() == 1:
        return local
    keys, rows = local.keys, local.parts[0]
    count = torch.tensor([len(keys)], device=rows.device)
    size = int(torch.stack(_gather(count)).max())
    padded_keys = torch.full((size,), -1, dtype=keys.dtype, device=rows.device)
    padded_keys[: len(keys)] = keys
    padded_rows = rows.new_zeros(size, rows.shape[1])
    padded_rows[: len(keys)] = rows
    all_keys = torch.cat(_gather(padded_keys))
    all_rows = torch.cat(_gather(padded_rows))
    real = all_keys >= 0
    union, inverse = torch.unique(all_keys[real], sorted=True, return_inverse=True)
    summed = rows.new_zeros(len(union), rows.shape[1]).index_add_(0, inverse, all_rows[real])
    return Perturbation("token", [summed], union.to(keys.device))
