"""Under DDP: step time and communication per method, 1 process vs 2 (torchrun, gloo, CPU).

    python benchmarks/ddp_cost.py                  # BERT 4 x 256, vocab 21128, 16 x 64 per rank
    python benchmarks/ddp_cost.py --steps 10 --output benchmarks/results/ddp_cost.json

Each process runs every method on its own batch (fixed per process), DDP-wrapped, methods
interleaved step after step; rank 0 reports median step time, DDP gradient all-reduces per
step (counted by a DDP comm hook, one per bucket), and advnlp's own exchange for token scope
(all_gather calls and bytes). On a 2-core machine 2 processes share the cores (1 thread each),
so the time ratio shows communication and contention, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import record

METHODS = {
    "none": ("none", {}),
    "fgm (token)": ("fgm", {"epsilon": 0.5}),
    "fgm (example)": ("fgm", {"epsilon": 0.5, "scope": "example"}),
    "gp": ("gp", {"epsilon": 1.0}),
    "pgd-3 (example)": ("pgd", {"epsilon": 1.0, "alpha": 0.3, "steps": 3}),
    "pgd-3 (token)": ("pgd", {"epsilon": 1.0, "alpha": 0.3, "steps": 3, "scope": "token"}),
    "freelb-3": ("freelb", {"epsilon": 1.0, "alpha": 0.1, "steps": 3}),
}


def worker(out: Path, steps: int) -> None:
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
    from torch.nn.parallel import DistributedDataParallel
    from transformers import BertConfig, BertForSequenceClassification

    import advnlp

    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    counts = {"all_reduce": 0, "all_reduce_bytes": 0, "all_gather": 0, "all_gather_bytes": 0}

    def counting_hook(state, bucket):
        counts["all_reduce"] += 1
        counts["all_reduce_bytes"] += bucket.buffer().numel() * bucket.buffer().element_size()
        return default_hooks.allreduce_hook(None, bucket)

    all_gather = dist.all_gather

    def counting_all_gather(outputs, tensor, *args, **kwargs):
        counts["all_gather"] += 1
        counts["all_gather_bytes"] += tensor.numel() * tensor.element_size() * len(outputs)
        return all_gather(outputs, tensor, *args, **kwargs)

    dist.all_gather = counting_all_gather
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=21128,
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=1024,
        num_labels=15,
    )
    model = DistributedDataParallel(BertForSequenceClassification(config))
    model.register_comm_hook(None, counting_hook)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    generator = torch.Generator().manual_seed(rank)
    zipf = torch.arange(1, 20128, dtype=torch.float64).pow(-1.0)
    ids = 1000 + torch.multinomial(zipf / zipf.sum(), 16 * 64, True, generator=generator)
    batch = {
        "input_ids": ids.view(16, 64),
        "labels": torch.randint(0, 15, (16,), generator=generator),
    }
    methods = {name: advnlp.build(m, model, **kw) for name, (m, kw) in METHODS.items()}
    times = {name: [] for name in METHODS}
    comm = {name: [] for name in METHODS}
    for step in range(steps + 1):
        for name, adv in methods.items():
            before = dict(counts)
            dist.barrier()
            start = time.perf_counter()
            adv.backward(lambda: model(**batch).loss)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            elapsed = time.perf_counter() - start
            if step > 0:  # the first round warms up
                times[name].append(elapsed)
                comm[name].append({k: counts[k] - before[k] for k in counts})
    if rank == 0:
        result = {
            name: {"median_step_s": statistics.median(times[name]), **comm[name][-1]}
            for name in METHODS
        }
        (out / f"world{world}.json").write_text(json.dumps(result))
    dist.destroy_process_group()


def launch(processes: int, out: Path, steps: int) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // processes)),
        "PYTHONWARNINGS": "ignore",
    }
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            str(processes),
            __file__,
            "--worker",
            str(out),
            "--steps",
            str(steps),
        ],
        check=True,
        env=env,
    )
    return json.loads((out / f"world{processes}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=6, help="timed steps per method")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    record.add_arguments(parser)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker), args.steps)
        return
    run_context = {**record.context(args.note), "processes_threads": _threads_per_process()}
    out = Path(tempfile.mkdtemp(prefix="advnlp-ddp-"))
    one, two = launch(1, out, args.steps), launch(2, out, args.steps)
    base1, base2 = one["none"]["median_step_s"], two["none"]["median_step_s"]
    print(f"BERT 4 x 256, vocab 21128, 16 x 64 per process, {args.steps} steps, gloo on CPU")
    print(
        "| method | 1 proc (s) | x none | 2 procs (s) | x none | all-reduces/step "
        "| all-reduced MiB | advnlp all_gathers | gathered KiB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name in METHODS:
        a, b = one[name], two[name]
        print(
            f"| {name} | {a['median_step_s']:.3f} | {a['median_step_s'] / base1:.2f} "
            f"| {b['median_step_s']:.3f} | {b['median_step_s'] / base2:.2f} | {b['all_reduce']} "
            f"| {b['all_reduce_bytes'] / 2**20:.1f} | {b['all_gather']} "
            f"| {b['all_gather_bytes'] / 2**10:.0f} |"
        )
    settings = {
        "model": "BERT 4 x 256, vocab 21128",
        "batch_per_process": "16 x 64",
        "backend": "gloo",
        "steps": args.steps,
        "methods": {name: {"method": m, **kw} for name, (m, kw) in METHODS.items()},
    }
    results = {"settings": settings, "processes": {"1": one, "2": two}}
    record.write(args.output, "ddp_cost", run_context, results)


def _threads_per_process() -> dict[str, int]:
    """OMP_NUM_THREADS that launch() gives each process, per number of processes."""
    return {str(n): max(1, (os.cpu_count() or 2) // n) for n in (1, 2)}


if __name__ == "__main__":
    main()
