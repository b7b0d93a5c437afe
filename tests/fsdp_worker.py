"""Run by torchrun from tests/test_fsdp.py (2 processes, gloo on CPU): every method on this
rank's half of a global batch, the model sharded by FSDP2's ``fully_shard`` (each BERT layer
and the root, one 1-D mesh); saves the full gradients and every collective of the step.

    torchrun --standalone --nproc_per_node 2 tests/fsdp_worker.py OUT_DIR

FSDP's own traffic is counted through its public comm overrides (``set_custom_all_gather`` /
``set_custom_reduce_scatter``, which it calls for every parameter all-gather and gradient
reduce-scatter); every other collective (advnlp's, DTensor's) is seen by a TorchDispatchMode,
which every c10d op goes through. FSDP is also asked to reduce-scatter parameters that got
no gradient (``set_reduce_scatter_unused_params``), so a pass that should not reduce shows up.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.fsdp._fully_shard._fsdp_collectives import (
    DefaultAllGather,
    DefaultReduceScatter,
)
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import advnlp  # noqa: E402
from advnlp.errors import ConfigError  # noqa: E402
from tests.ddp_worker import skip_draws  # noqa: E402
from tests.models import PAD, SETTINGS, label, tiny_bert, variants  # noqa: E402

# (id, method, kwargs, calls of backward): every switch and choice of every method the
# registry holds but the gradient penalty (refused under FSDP: REFUSED below). Methods that
# draw noise draw it on: before each call, each rank skips the draws of the ranks before it
# (skip_draws, as under DDP), so its noise is the single process's on its rows. FreeFGM,
# whose perturbation comes from the step before, also runs two steps (the second perturbed
# by the cached global rows).
REFUSED = ("gp",)
CASES = [
    (label(name, kwargs), name, kwargs, 1)
    for name in advnlp.method_names()
    if name not in REFUSED
    for kwargs in variants(name)
] + [("fgm_free-2-steps", "fgm_free", SETTINGS["fgm_free"], 2)]
# Built on the model before fully_shard, as the Hugging Face Trainer's mixin is (Accelerate
# shards the model in place later): the data-parallel group is found when first needed.
BUILT_BEFORE_SHARDING = [
    (f"{name}-built-before-sharding", name, {**SETTINGS[name], "scope": "token"}, 1)
    for name in ("fgm", "pgd")
]
CASES += BUILT_BEFORE_SHARDING
GLOBAL_BATCH = 4


def batch_of(case, shard: slice) -> dict[str, torch.Tensor]:
    ids = case.ids[shard]
    labels = (torch.arange(GLOBAL_BATCH) % 3)[shard]
    return {"input_ids": ids, "attention_mask": (ids != PAD).long(), "labels": labels}


class Traffic:
    """FSDP's calls (counted by its comm overrides) and every other collective (by op)."""

    def __init__(self) -> None:
        self.reduce_scatter: list[int] = []  # elements reduce-scattered, per FSDP call
        self.all_gather: list[int] = []  # elements all-gathered (output), per FSDP call
        self.other: list[tuple[str, int]] = []  # (c10d op, elements it outputs)
        self.inside_fsdp = False


class CountingReduceScatter(DefaultReduceScatter):
    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def __call__(self, output_tensor, input_tensor, group, op, async_op=False):
        self.traffic.reduce_scatter.append(input_tensor.numel())
        self.traffic.inside_fsdp = True
        try:
            return super().__call__(output_tensor, input_tensor, group, op, async_op)
        finally:
            self.traffic.inside_fsdp = False


class CountingAllGather(DefaultAllGather):
    def __init__(self, traffic: Traffic) -> None:
        self.traffic = traffic

    def __call__(self, output_tensor, input_tensor, group, async_op=False):
        self.traffic.all_gather.append(output_tensor.numel())
        self.traffic.inside_fsdp = True
        try:
            return super().__call__(output_tensor, input_tensor, group, async_op)
        finally:
            self.traffic.inside_fsdp = False


class Collectives(TorchDispatchMode):
    """Every c10d op outside FSDP's own calls, with the elements it outputs (the largest of
    its first argument, where c10d ops write, and what it returns). Ops a tensor subclass
    issues inside another op's dispatch (DTensor arithmetic, e.g. AWP's norms) run with the
    mode off and are not seen; advnlp's own calls (dist.all_gather / all_reduce, DTensor's
    full_tensor) are."""

    def __init__(self, traffic: Traffic) -> None:
        super().__init__()
        self.traffic = traffic

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        namespace = func.namespace
        if namespace in ("c10d", "_c10d_functional") and not self.traffic.inside_fsdp:
            written = sum(_numel(x) for x in tree_leaves(args[:1]))
            returned = sum(_numel(x) for x in tree_leaves(out))
            self.traffic.other.append((func.__name__, max(written, returned)))
        return out


def _numel(value) -> int:
    return value.numel() if isinstance(value, torch.Tensor) else 0


def shard(model: torch.nn.Module, mesh, traffic: Traffic | None = None) -> torch.nn.Module:
    for layer in model.bert.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    if traffic is not None:
        for module in model.modules():
            if isinstance(module, FSDPModule):
                module.set_custom_reduce_scatter(CountingReduceScatter(traffic))
                module.set_custom_all_gather(CountingAllGather(traffic))
                module.set_reduce_scatter_unused_params(True)
    return model


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    part = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    results = {}
    for name, method, kwargs, calls in CASES:
        case = tiny_bert(torch.float64)
        traffic = Traffic()
        before = (name, method, kwargs, calls) in BUILT_BEFORE_SHARDING
        adv = advnlp.build(method, case.model, **kwargs) if before else None
        model = shard(case.model, mesh, traffic)
        batch = batch_of(case, part)
        adv = adv or advnlp.build(method, model, **kwargs)
        for call in range(calls):
            if call:
                model.zero_grad(set_to_none=True)
            torch.manual_seed(123 + call)  # as the single-process reference (test_fsdp.py)
            skip_draws(rank, world, batch["input_ids"])
            with Collectives(traffic):
                loss = adv.backward(lambda model=model, batch=batch: model(**batch).loss)
        group = getattr(adv, "data_parallel_group", None)
        results[name] = {
            "grads": {n: p.grad.full_tensor() for n, p in model.named_parameters()},
            "loss": loss,
            "group_ranks": None if group is None else dist.get_process_group_ranks(group),
            "fsdp_groups": sum(isinstance(m, FSDPModule) for m in model.modules()),
            "reduce_scatter": traffic.reduce_scatter,
            "all_gather": traffic.all_gather,
            "other": traffic.other,
        }
    results["refused"] = refusals(mesh, part)
    results["accumulating"] = accumulating(mesh, part)
    results["uneven_rows"] = uneven_rows(mesh)
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def uneven_rows(mesh) -> list[bool]:
    """Whether the rows read from the shards of a vocabulary the ranks do not split evenly
    (51 rows: 26 + 25; 5 rows: 3 + 2) are the matrix's rows (the relative unit reads them)."""
    from advnlp.distributed import embedding_rows

    found = []
    for vocab in (51, 5):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Embedding(vocab, 4), torch.nn.Linear(4, 2))
        full = model[0].weight.detach().clone()
        fully_shard(model, mesh=mesh)
        keys = torch.tensor(sorted({0, 1, vocab // 2, vocab - 1}))
        found.append(torch.equal(embedding_rows(model[0].weight, keys), full[keys]))
    return found


def accumulating(mesh, part: slice) -> list[int]:
    """Reduce-scatters in a PGD step (adversarial only: its ascent passes pause the reduction
    themselves) while the user accumulates without communication
    (``set_requires_gradient_sync(False)``), then in a plain step with it back on: the pause
    must leave the user's setting as it found it."""
    case = tiny_bert(torch.float64)
    traffic = Traffic()
    model = shard(case.model, mesh, traffic)
    batch = batch_of(case, part)
    adv = advnlp.build("pgd", model, **{**SETTINGS["pgd"], "adversarial_only": True})
    counts = []
    model.set_requires_gradient_sync(False)
    adv.backward(lambda: model(**batch).loss)
    counts.append(len(traffic.reduce_scatter))
    model.set_requires_gradient_sync(True)
    model(**batch).loss.backward()
    counts.append(len(traffic.reduce_scatter) - counts[0])
    return counts


def refusals(mesh, part: slice) -> dict[str, str]:
    """What each rank got where advnlp refuses: the gradient penalty built on a sharded model,
    or on a model sharded after building (the error must come before its double backward),
    and a 2-D mesh (HSDP), whose data-parallel ranks advnlp cannot tell."""
    messages = {}
    case = tiny_bert(torch.float64)
    try:
        advnlp.build("gp", shard(case.model, mesh), epsilon=1.0)
    except ConfigError as error:
        messages["gp-built-sharded"] = str(error)
    case = tiny_bert(torch.float64)
    adv = advnlp.build("gp", case.model, epsilon=1.0)
    model = shard(case.model, mesh)
    batch = batch_of(case, part)
    try:
        adv.backward(lambda: model(**batch).loss)
    except ConfigError as error:
        messages["gp-sharded-later"] = str(error)
    hybrid = init_device_mesh("cpu", (1, dist.get_world_size()), mesh_dim_names=("dp", "shard"))
    case = tiny_bert(torch.float64)
    try:
        advnlp.build("fgm", shard(case.model, hybrid), epsilon=0.5)
    except ConfigError as error:
        messages["2-d-mesh"] = str(error)
    return messages


if __name__ == "__main__":
    main(Path(sys.argv[1]))
