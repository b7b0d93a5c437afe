"""Run by torchrun from tests/test_ddp.py (2 processes, gloo on CPU): every method on this
rank's half of a global batch, DDP-wrapped; saves the gradients and what was communicated.

    torchrun --standalone --nproc_per_node 2 tests/ddp_worker.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import advnlp  # noqa: E402
from tests.models import HIDDEN, PAD, SETTINGS, label, tiny_bert, variants  # noqa: E402

# (id, method, kwargs, what advnlp is given: the DDP wrapper or the inner module), from the
# registry: every switch and choice of every method given the wrapper, and each method's small
# setting given the inner module with data_parallel_group= the world (no no_sync possible:
# every pass that reaches .grad reduces).
# Methods that draw noise draw it on: each rank first skips the draws of the ranks before it
# (skip_draws), so the ranks' noise is the single process's noise on the global batch.
CASES = [
    (label(name, kwargs), name, kwargs, "wrapper")
    for name in advnlp.method_names()
    for kwargs in variants(name)
] + [(f"{name}-inner", name, SETTINGS[name], "inner") for name in advnlp.method_names()]
# Calls of backward per case: FreeFGM's first call, from an empty cache, is plain; its second
# is perturbed by the rows the first cached (summed over the ranks: the global batch's).
STEPS = {"fgm_free": 2}
# A model with no data-parallel group advnlp can see (plain, or given a group of this rank
# alone) is a single process on its local half batch, whatever the job's world size.
LOCAL_CASES = [
    (f"{label(name, kwargs)}-{given}", name, kwargs, given)
    for name, kwargs in (("gp", {"epsilon": 1.0}), ("fgm", {"epsilon": 0.5, "scope": "token"}))
    for given in ("plain", "own-group")
]
GLOBAL_BATCH = 4


def skip_draws(rank: int, world: int, ids: torch.Tensor) -> None:
    """Draw what the ranks before ``rank`` draw for their rows of the global batch (one float64
    per embedding-output coordinate; torch's CPU generator fills a tensor in order), so that
    noise drawn now is the single process's noise for this rank's rows."""
    rows = rank * GLOBAL_BATCH // world
    torch.empty(rows * ids.shape[1] * HIDDEN, dtype=torch.float64).uniform_()


def count_all_reduce(state: dict, bucket):
    state["all_reduce"] += 1
    state["bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
    return default_hooks.allreduce_hook(None, bucket)


def main(out: Path) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    shard = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    gathers = {"all_gather": 0, "collective_all_reduce": 0}
    all_gather, all_reduce = dist.all_gather, dist.all_reduce

    def counting_all_gather(*args, **kwargs):
        gathers["all_gather"] += 1
        return all_gather(*args, **kwargs)

    def counting_all_reduce(*args, **kwargs):  # DDP's own reductions go through its comm hook
        gathers["collective_all_reduce"] += 1
        return all_reduce(*args, **kwargs)

    dist.all_gather, dist.all_reduce = counting_all_gather, counting_all_reduce
    # new_group is collective: every rank makes every rank's own group
    own_group = [dist.new_group([r]) for r in range(world)][rank]
    results = {}
    for name, method, kwargs, given in CASES:
        case = tiny_bert(torch.float64)
        ddp = DistributedDataParallel(case.model)
        comm = {"all_reduce": 0, "bytes": 0}
        ddp.register_comm_hook(comm, count_all_reduce)
        ids = case.ids[shard]
        mask = (ids != PAD).long()
        labels = (torch.arange(GLOBAL_BATCH) % 3)[shard]
        if given == "wrapper":
            adv = advnlp.build(method, ddp, **kwargs)
        elif not advnlp.registry.resolve(method).perturbs:  # the baseline takes no group
            adv = advnlp.build(method, case.model, **kwargs)
        else:
            adv = advnlp.build(method, case.model, data_parallel_group=dist.group.WORLD, **kwargs)
        batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
        for step in range(STEPS.get(method, 1)):
            ddp.zero_grad(set_to_none=True)
            comm["all_reduce"] = comm["bytes"] = 0  # what the last step communicated
            gathers["all_gather"] = gathers["collective_all_reduce"] = 0
            torch.manual_seed(123 + step)
            skip_draws(rank, world, ids)
            loss = adv.backward(lambda ddp=ddp, batch=batch: ddp(**batch).loss)
        results[name] = {
            "grads": {n: p.grad.detach().clone() for n, p in case.model.named_parameters()},
            "loss": loss,
            **comm,
            **gathers,
        }
    for name, method, kwargs, given in LOCAL_CASES:
        case = tiny_bert(torch.float64)
        batch = {
            "input_ids": case.ids[shard],
            "attention_mask": (case.ids[shard] != PAD).long(),
            "labels": (torch.arange(GLOBAL_BATCH) % 3)[shard],
        }
        group = own_group if given == "own-group" else None
        gathers["all_gather"] = gathers["collective_all_reduce"] = 0
        adv = advnlp.build(method, case.model, data_parallel_group=group, **kwargs)
        adv.backward(lambda model=case.model, batch=batch: model(**batch).loss)
        grads = {n: p.grad.detach().clone() for n, p in case.model.named_parameters()}
        results[name] = {"grads": grads, "batch": batch, **gathers}
    torch.save(results, out / f"rank{rank}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
