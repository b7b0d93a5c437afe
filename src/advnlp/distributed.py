"""Data-parallel training (torchrun / accelerate launch): what the methods exchange, and why.

Under DistributedDataParallel each rank holds a slice of the global batch, and DDP averages
parameter gradients. A method matches single-process training on the global batch when:

- example scope: each example's delta depends on its own gradient only: nothing to exchange;
- token scope: delta[v] needs the gradient of matrix row v summed over *all* ranks (token v
  may occur on several) and ONE norm over all rows: the ranks exchange just the rows of their
  batch's distinct tokens (all_gather of (U, H) rows and U ids), never a (vocab, H) matrix;
- the gradient penalty: each rank's penalty is taken on its local mean loss, whose per-token
  gradients are group_size times those of the global mean loss, so it is divided by
  group_size (the penalty is quadratic in the loss scale).

The ranks that share one global batch are the data-parallel group: the DDP wrapper's
``process_group``, or ``data_parallel_group=`` given to the method (for setups advnlp cannot
see; FSDP's mesh is not read yet). A plain model has none and runs as a single process, even
in a multi-rank job (a reference or evaluation rank, tensor or pipeline parallel groups).

Passes that only build the perturbation run under the DDP wrapper's ``no_sync()`` when the
method was given the wrapper (pass the DDP model, not ``model.module``: it saves that
all-reduce, and the inner module alone needs ``data_parallel_group=``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed import ProcessGroup

from .perturbation import Perturbation


def data_parallel_group(model: nn.Module, given: ProcessGroup | None = None) -> ProcessGroup | None:
    """``given``, else the DDP wrapper's process group, else None (a single process).

    Never the world: ranks that are not data-parallel replicas of ``model`` must not be averaged.
    """
    if given is not None:
        return given
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.process_group
    return None


def group_size(group: ProcessGroup | None) -> int:
    """Ranks in ``group`` (1 for None: a single process)."""
    return 1 if group is None else dist.get_world_size(group)


def _gather(tensor: torch.Tensor, group: ProcessGroup) -> list[torch.Tensor]:
    parts = [torch.empty_like(tensor) for _ in range(group_size(group))]
    dist.all_gather(parts, tensor, group=group)
    return parts


def sum_rows_across_ranks(local: Perturbation, group: ProcessGroup | None) -> Perturbation:
    """The token-scope gradient rows of the global batch: every rank's rows, summed by token id.

    Each rank sends its U distinct ids and (U, H) rows, padded to the largest U; every rank
    gets the union, so all compute the same norm and the same delta.
    """
    if local.scope != "token" or group_size(group) == 1:
        return local
    keys, rows = local.keys, local.parts[0]
    count = torch.tensor([len(keys)], device=rows.device)
    size = int(torch.stack(_gather(count, group)).max())
    padded_keys = torch.full((size,), -1, dtype=keys.dtype, device=rows.device)
    padded_keys[: len(keys)] = keys
    padded_rows = rows.new_zeros(size, rows.shape[1])
    padded_rows[: len(keys)] = rows
    all_keys = torch.cat(_gather(padded_keys, group))
    all_rows = torch.cat(_gather(padded_rows, group))
    real = all_keys >= 0
    union, inverse = torch.unique(all_keys[real], sorted=True, return_inverse=True)
    summed = rows.new_zeros(len(union), rows.shape[1]).index_add_(0, inverse, all_rows[real])
    return Perturbation("token", [summed], union.to(keys.device))
