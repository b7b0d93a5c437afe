"""Under FSDP2 (``fully_shard``): per-rank peak memory, step time and traffic of each method,
on a model whose token embedding dominates (BERT, vocab 128k, hidden 512, 2 layers).

    python benchmarks/fsdp_cost.py                      # 2 processes (torchrun, gloo on CPU)
    python benchmarks/fsdp_cost.py --rounds 5 --output benchmarks/results/fsdp_cost.json

Each rank holds half of every parameter (``fully_shard`` on each layer and the root) and its
own batch (Zipf-distributed ids, ragged lengths). Methods run interleaved, round after round.

Memory: the peak of live tensor bytes allocated during one ``adv.backward`` on each rank
(``PeakMemory`` of step_cost.py, a TorchDispatchMode that sees every allocation: FSDP's
all-gathered parameters and unsharded gradients included; the sharded parameters and optimizer
state exist before the step and are not counted; ``.grad`` is set to None before each step, so
the sharded gradients are). "extra" is that peak minus plain FSDP's ("none") on the same rank.
The target for FGM: extra <= the batch's rows plus one sharded gradient set, never a gathered
(vocab, H) matrix; both sizes are in the JSON.

Traffic per step, counted on rank 0: FSDP's parameter all-gathers and gradient reduce-scatters
(through FSDP's public comm overrides) and every other collective (advnlp's token-scope rows)
by a TorchDispatchMode.

Two rows are references, not methods: "2 plain passes" (the clean pass twice, nothing
perturbed: what any clean + adversarial method pays for a second pass) and "fgm, reduction
deferred": FGM whose clean pass runs under ``set_requires_gradient_sync(False)``, FSDP's
``no_sync``, so that its gradients are reduce-scattered with the second pass's. advnlp does not
defer under FSDP; this row measures why. The gradient penalty is refused under FSDP (its double
backward crashes the process), so it has no row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

METHODS = {
    "none": ("none", {}),
    "2 plain passes": ("2 plain passes", {}),
    "fgm (token)": ("fgm", {"epsilon": 0.5}),
    "fgm (token), reduction deferred": ("fgm deferred", {"epsilon": 0.5}),
    "fgm (token, adv-only)": ("fgm", {"epsilon": 0.5, "adversarial_only": True}),
    "fgm (example)": ("fgm", {"epsilon": 0.5, "scope": "example"}),
    "pgd-3 (example)": ("pgd", {"epsilon": 1.0, "alpha": 0.3, "steps": 3}),
    "pgd-3 (token)": ("pgd", {"epsilon": 1.0, "alpha": 0.3, "steps": 3, "scope": "token"}),
    "freelb-3": ("freelb", {"epsilon": 1.0, "alpha": 0.1, "steps": 3}),
    "neftune": ("neftune", {"alpha": 5.0}),
    "r3f": ("r3f", {"epsilon": 1e-5, "kl_weight": 1.0}),
    "fgm_free": ("fgm_free", {"epsilon": 0.5}),
    "awp": ("awp", {}),
}


def context(note: str | None) -> dict:
    """The machine and the command (the same fields as the other benchmarks' JSON)."""
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "command": shlex.join(["python", "benchmarks/fsdp_cost.py", *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "torch_threads": 1,  # each of the 2 processes (OMP_NUM_THREADS=1)
        "omp_num_threads": "1",
        "processes": 2,
        "nice": os.nice(0),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit or None,
        "note": note,
    }


def worker(out: Path, args: argparse.Namespace) -> None:
    import torch.distributed as dist
    from step_cost import PeakMemory, TwoPlainPasses, make_batch, make_model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import FSDPModule, fully_shard
    from torch.distributed.fsdp._fully_shard._fsdp_collectives import (
        DefaultAllGather,
        DefaultReduceScatter,
    )
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    import advnlp

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    traffic = {"inside": False, "reduce_scatter": [], "all_gather": [], "other": []}

    class CountingReduceScatter(DefaultReduceScatter):
        def __call__(self, output_tensor, input_tensor, group, op, async_op=False):
            traffic["reduce_scatter"].append(input_tensor.numel() * input_tensor.element_size())
            traffic["inside"] = True
            try:
                return super().__call__(output_tensor, input_tensor, group, op, async_op)
            finally:
                traffic["inside"] = False

    class CountingAllGather(DefaultAllGather):
        def __call__(self, output_tensor, input_tensor, group, async_op=False):
            traffic["all_gather"].append(output_tensor.numel() * output_tensor.element_size())
            traffic["inside"] = True
            try:
                return super().__call__(output_tensor, input_tensor, group, async_op)
            finally:
                traffic["inside"] = False

    class Collectives(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func.namespace in ("c10d", "_c10d_functional") and not traffic["inside"]:
                size = max(
                    sum(x.numel() * x.element_size() for x in tree_leaves(side) if _is_tensor(x))
                    for side in (args[:1], out)
                )
                traffic["other"].append(size)
            return out

    class ShardedPeakMemory(PeakMemory):
        """PeakMemory that skips storages without data: FSDP frees a gathered parameter by
        resizing its storage to 0, and a DTensor wrapper has none of its own (its local
        shard's allocation is seen when made)."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            held = {_storage_key(t) for t in tree_leaves((args, kwargs)) if _is_tensor(t)}
            for tensor in tree_leaves(out):
                if _is_tensor(tensor) and _storage_key(tensor) not in held | {0}:
                    self._track(tensor)
            return out

    class DeferredFGM(advnlp.FGM):
        """FGM with the clean pass's gradients reduce-scattered with the second pass's."""

        @contextlib.contextmanager
        def _no_gradient_sync(self):
            self.model.set_requires_gradient_sync(False)
            try:
                yield
            finally:
                self.model.set_requires_gradient_sync(True)

    torch.manual_seed(0)
    model = make_model(args)
    mesh = init_device_mesh("cpu", (world,))
    for layer in model.bert.encoder.layer:
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_custom_reduce_scatter(CountingReduceScatter())
            module.set_custom_all_gather(CountingAllGather())
    # this rank's slice of one global batch (make_batch draws the same ids on every rank)
    whole = make_batch(argparse.Namespace(**{**vars(args), "batch": args.batch * world}))
    mine = slice(rank * args.batch, (rank + 1) * args.batch)
    batch = {key: value[mine] for key, value in whole.items()}
    generator_batch = batch["input_ids"]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    names = [n.strip() for n in args.methods.split(";")]
    methods = {}
    for name in names:
        method, kwargs = METHODS[name]
        if method == "2 plain passes":
            methods[name] = TwoPlainPasses()
        elif method == "fgm deferred":
            methods[name] = DeferredFGM(model, **kwargs)
        else:
            methods[name] = advnlp.build(method, model, **kwargs)

    def closure() -> torch.Tensor:
        return model(**batch).loss

    def step(name: str) -> float:
        start = time.perf_counter()
        methods[name].backward(closure)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(args.warmup):  # FSDP's lazy init, the optimizer's state: before measuring
        for name in names:
            step(name)
    peaks, counts = {}, {}
    for name in names:  # one measured step each: memory and traffic (not timed)
        traffic.update(reduce_scatter=[], all_gather=[], other=[])
        tracker = ShardedPeakMemory()
        with tracker, Collectives():
            methods[name].backward(closure)
        optimizer.zero_grad(set_to_none=True)
        peaks[name] = tracker.peak
        counts[name] = {key: traffic.pop(key) for key in ("reduce_scatter", "all_gather", "other")}
        traffic.update(reduce_scatter=[], all_gather=[], other=[])  # the timed steps count here
    times = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            times[name].append(step(name))
    sharded_grads = sum(p.to_local().numel() * p.element_size() for p in model.parameters())
    distinct = len(torch.unique(generator_batch))
    result = {
        "rank": rank,
        "peak_bytes": peaks,
        "median_step_s": {name: statistics.median(t) for name, t in times.items()},
        "traffic": counts,
        "sharded_gradient_bytes": sharded_grads,
        "distinct_tokens": distinct,
        "positions": generator_batch.numel(),
    }
    (out / f"rank{rank}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def _is_tensor(value) -> bool:
    return isinstance(value, torch.Tensor)


def _storage_key(tensor: torch.Tensor) -> int:
    """The storage's address; 0 for a storage without data (freed by FSDP, or a DTensor)."""
    try:
        return tensor.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):
        return 0


def summarize(ranks: list[dict], args: argparse.Namespace) -> dict:
    mib = 2**20
    hidden, vocab = args.hidden, args.vocab
    rows = []
    for name in ranks[0]["peak_bytes"]:
        method, kwargs = METHODS[name]
        traffic = ranks[0]["traffic"][name]
        rows.append(
            {
                "method": name,
                "hyperparameters": kwargs,
                "median_step_s": max(r["median_step_s"][name] for r in ranks),
                "time_ratio": max(r["median_step_s"][name] for r in ranks)
                / max(r["median_step_s"]["none"] for r in ranks),
                "peak_mib_per_rank": [r["peak_bytes"][name] / mib for r in ranks],
                "extra_mib_per_rank": [
                    (r["peak_bytes"][name] - r["peak_bytes"]["none"]) / mib for r in ranks
                ],
                "reduce_scatters": len(traffic["reduce_scatter"]),
                "reduce_scattered_mib": sum(traffic["reduce_scatter"]) / mib,
                "fsdp_all_gathers": len(traffic["all_gather"]),
                "all_gathered_mib": sum(traffic["all_gather"]) / mib,
                "other_collectives": len(traffic["other"]),
                "other_collectives_kib": sum(traffic["other"]) / 1024,
                "largest_other_collective_kib": max(traffic["other"], default=0) / 1024,
            }
        )
    return {
        "settings": {
            "layers": args.layers,
            "hidden": hidden,
            "vocab": vocab,
            "batch_per_rank": args.batch,
            "length": args.length,
            "zipf": args.zipf,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "distinct_tokens_per_rank": [r["distinct_tokens"] for r in ranks],
        },
        "sizes_mib": {
            "embedding_matrix": vocab * hidden * 4 / mib,
            "sharded_gradient_set_per_rank": [r["sharded_gradient_bytes"] / mib for r in ranks],
            "batch_rows_per_rank": [r["distinct_tokens"] * hidden * 4 / mib for r in ranks],
            "batch_embedding_output_per_rank": args.batch * args.length * hidden * 4 / mib,
        },
        "refused": {
            "gp": "GradientPenalty raises a ConfigError under fully_shard: its double backward "
            "crashes the process (SIGSEGV) once FSDP frees the gathered parameters after the "
            "first backward"
        },
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--vocab", type=int, default=128000)
    parser.add_argument("--batch", type=int, default=8, help="examples per rank")
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of token ids")
    parser.add_argument("--rounds", type=int, default=5, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (>= 1)")
    parser.add_argument("--methods", default=";".join(METHODS), help="names separated by ;")
    parser.add_argument("--output", type=Path, help="write the results and context here (JSON)")
    parser.add_argument("--note", help="what the JSON should say about the machine")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        worker(args.worker, args)
        return
    run_context = context(args.note)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        command += ["--nproc_per_node", "2", __file__, "--worker", tmp, *sys.argv[1:]]
        subprocess.run(command, check=True, env=env)
        ranks = [json.loads((Path(tmp) / f"rank{r}.json").read_text()) for r in range(2)]
    results = summarize(ranks, args)
    print_table(results)
    if args.output is not None:
        run_context["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        data = {"benchmark": "fsdp_cost", "context": run_context, **results}
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def print_table(results: dict) -> None:
    sizes = results["sizes_mib"]
    print(
        f"embedding matrix {sizes['embedding_matrix']:.1f} MiB; sharded gradient set per rank "
        f"{sizes['sharded_gradient_set_per_rank'][0]:.1f} MiB; batch rows per rank "
        f"{sizes['batch_rows_per_rank'][0]:.2f} MiB"
    )
    print(
        "| method | step (s) | x none | peak MiB (rank 0 / 1) | extra MiB (rank 0 / 1) "
        "| reduce-scatters | all-gathers | other collectives (largest KiB) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        peak = " / ".join(f"{x:.0f}" for x in r["peak_mib_per_rank"])
        extra = " / ".join(f"{x:.0f}" for x in r["extra_mib_per_rank"])
        print(
            f"| {r['method']} | {r['median_step_s']:.2f} | {r['time_ratio']:.2f} | {peak} "
            f"| {extra} | {r['reduce_scatters']} | {r['fsdp_all_gathers']} "
            f"| {r['other_collectives']} ({r['largest_other_collective_kib']:.0f}) |"
        )


if __name__ == "__main__":
    main()
