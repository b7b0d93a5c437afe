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
``process_group``, the 1-D mesh FSDP2's ``fully_shard`` sharded the model over, or
``data_parallel_group=`` given to the method (for setups advnlp cannot see, a 2-D mesh among
them). A plain model has none and runs as a single process, even in a multi-rank job (a
reference or evaluation rank, tensor or pipeline parallel groups).

Passes that only build the perturbation run under the DDP wrapper's ``no_sync()`` when the
method was given the wrapper (pass the DDP model, not ``model.module``: it saves that
all-reduce, and the inner module alone needs ``data_parallel_group=``).

Under FSDP (``fully_shard``, which shards the model in place) the parameters are DTensors,
each rank holding a slice of rows: token scope exchanges rows as under DDP, and the relative
unit reads the batch's rows from the shards (one all_reduce of (U, H)). A pass whose
gradients reach ``.grad`` is reduce-scattered at once (deferring it, FSDP's ``no_sync``, would
keep an unsharded gradient set on every rank through the next pass); a pass that only takes
``torch.autograd.grad`` of the embedding output reduces nothing. The gradient penalty is
refused: its double backward crashes the process (see ``refuse_sharded_double_backward``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.distributed import ProcessGroup

from .errors import ConfigError
from .perturbation import Perturbation


def data_parallel_group(model: nn.Module, given: ProcessGroup | None = None) -> ProcessGroup | None:
    """``given``, else the DDP wrapper's process group, else FSDP's (the 1-D device mesh that
    ``fully_shard`` sharded ``model`` over), else None (a single process).

    Never the world: ranks that are not data-parallel replicas of ``model`` must not be averaged.
    """
    if given is not None:
        return given
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model.process_group
    if fsdp_modules(model):
        return _fsdp_group(model)
    return None


def fsdp_modules(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` that ``fully_shard`` (FSDP2) manages, outermost first."""
    if not dist.is_available():
        return []
    from torch.distributed.fsdp import FSDPModule  # torch's own; imported when first needed

    return [module for module in model.modules() if isinstance(module, FSDPModule)]


def _fsdp_group(model: nn.Module) -> ProcessGroup:
    """The process group of the mesh ``fully_shard`` sharded the parameters over.

    Read from the sharded parameters (DTensors on that mesh). Only a 1-D mesh says which ranks
    hold slices of the batch: on a 2-D mesh (HSDP, or FSDP with tensor parallelism) some
    dimensions hold replicas of the same data, and advnlp cannot tell which.
    """
    from torch.distributed.tensor import DTensor

    meshes = {p.device_mesh for p in model.parameters() if isinstance(p, DTensor)}
    if len(meshes) == 1 and next(iter(meshes)).ndim == 1:
        return next(iter(meshes)).get_group()
    shapes = ", ".join(sorted(str(tuple(mesh.shape)) for mesh in meshes)) or "none"
    raise ConfigError(
        f"{type(model).__name__} is sharded by fully_shard over device meshes of shapes {shapes}; "
        "advnlp reads the data-parallel ranks only from a single 1-D mesh: pass "
        "data_parallel_group= (the ranks that each hold a slice of one global batch)"
    )


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


@contextlib.contextmanager
def fsdp_gradient_sync_paused(model: nn.Module) -> Iterator[None]:
    """No FSDP gradient reduction for a backward pass that leaves ``.grad`` untouched
    (``torch.autograd.grad`` on the embedding output): ``set_requires_gradient_sync(False)``.

    Without it FSDP reduce-scatters nothing by default, but zeros for every parameter once
    ``set_reduce_scatter_unused_params(True)`` is on. Each module's own setting is put back
    afterwards, so a user's gradient accumulation without communication keeps working.
    """
    modules = fsdp_modules(model)
    try:  # the public setter has no getter: read what it writes (one flag per parameter group)
        before = [
            [(group.reduce_grads, group.all_reduce_grads) for group in _param_groups(m)]
            for m in modules
        ]
    except AttributeError:  # another torch: leave the setting alone (FSDP's default reduces
        before, modules = [], []  # nothing here unless asked to reduce unused parameters)
    for module in modules:
        module.set_requires_gradient_sync(False, recurse=False)
    try:
        yield
    finally:
        for module, flags in zip(modules, before, strict=True):
            for group, (reduce, all_reduce) in zip(_param_groups(module), flags, strict=True):
                group.reduce_grads, group.all_reduce_grads = reduce, all_reduce


def _param_groups(module: nn.Module) -> list:
    return module._get_fsdp_state()._fsdp_param_groups


def refuse_sharded_double_backward(model: nn.Module, who: str) -> None:
    """A ConfigError if ``fully_shard`` manages part of ``model``: a double backward crashes.

    Measured with torch 2.13, 2 processes, gloo: the first backward (``create_graph=True``)
    ends with FSDP resharding, which frees the gathered parameters that the graph it built
    still holds; the second backward reads them and the process dies with SIGSEGV, no error.
    Keeping them gathered for the step (``unshard()``, no reshard after forward or backward)
    avoids the crash but the second backward's gradients never reach ``.grad``: FSDP's
    post-backward reduction runs once per forward and the first backward used it up.
    """
    if fsdp_modules(model):
        raise ConfigError(
            f"{who} needs a double backward, which crashes the process under FSDP's "
            "fully_shard (the first backward frees the gathered parameters its graph still "
            "reads); use DDP for the gradient penalty, or FGM / PGD under FSDP"
        )


def embedding_rows(weight: Tensor, keys: Tensor) -> Tensor:
    """``weight[keys]``, detached: the batch's rows of the token-embedding matrix.

    Under ``fully_shard`` the weight is a DTensor whose rows are split over the ranks (dim-0
    shards of ``ceil(vocab / ranks)`` rows): each rank fills in the rows it holds and one
    all_reduce of (U, H) completes them. Never the (vocab, H) matrix.
    """
    if not dist.is_available():
        return weight.detach()[keys]
    from torch.distributed.tensor import DTensor, Shard

    if not isinstance(weight, DTensor):
        return weight.detach()[keys]
    mesh = weight.device_mesh
    if mesh.ndim != 1 or tuple(weight.placements) != (Shard(0),):
        raise ConfigError(
            "epsilon_unit='relative' with token scope reads the batch's rows of the embedding "
            f"weight; advnlp reads them from a 1-D dim-0 shard (fully_shard), not from placements "
            f"{tuple(weight.placements)} on a mesh of shape {tuple(mesh.shape)}"
        )
    local = weight.to_local().detach()
    start = mesh.get_local_rank() * -(-weight.shape[0] // mesh.size())
    mine = (keys >= start) & (keys < start + len(local))
    rows = local.new_zeros(len(keys), weight.shape[1])
    rows[mine] = local[keys[mine] - start]
    dist.all_reduce(rows, group=mesh.get_group())  # each row is non-zero on one rank only
    return rows
