"""What PyTorch's deterministic algorithms cost per training step, measured side by side.

    python benchmarks/determinism_cost.py                  # scratch-tiny, demo reviews, 32 x 64
    python benchmarks/determinism_cost.py --rounds 20 --model scratch-small
    python benchmarks/determinism_cost.py --output benchmarks/results/determinism_cost.json

``advnlp train`` turns on ``torch.use_deterministic_algorithms(True, warn_only=True)`` (see
``advnlp.experiment.train.use_deterministic_algorithms``). One "step" is ``adv.backward`` +
``optimizer.step()`` + ``zero_grad()`` on the scratch BERT the CLI builds, with its tokenizer
trained on the demo's reviews, for a batch of 32 reviews padded to 64 tokens. Each round runs
every method once with the setting off and once on, in alternating order, so machine noise hits
both alike; the table gives medians and their ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import record
import torch

import advnlp
from advnlp.data.demo import sentiment_corpus
from advnlp.experiment.models import scratch_model, train_tokenizer

METHODS = {
    "none": {},
    "fgm": {"epsilon": 0.1},
    "gp": {"epsilon": 0.1},
    "pgd": {"epsilon": 0.1, "steps": 2},
    "freelb": {"epsilon": 0.1, "steps": 2},
}


def step_time(method: str, model, batch, optimizer) -> float:
    adv = advnlp.build(method, model, **METHODS[method])
    started = time.perf_counter()
    adv.backward(lambda: model(**batch).loss)
    optimizer.step()
    optimizer.zero_grad()
    return time.perf_counter() - started


def main() -> None:
    run_context = record.context()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--model", default="scratch-tiny")
    record.add_arguments(parser)
    args = parser.parse_args()
    run_context["note"] = args.note

    rows = sentiment_corpus()[:2000]
    tokenizer = train_tokenizer([r["sentence"] for r in rows], max_length=64)
    batch = dict(
        tokenizer(
            [r["sentence"] for r in rows[:32]],
            padding="max_length",
            truncation=True,
            max_length=64,
            return_tensors="pt",
        )
    )
    batch["labels"] = torch.tensor([int(r["label"] == "pos") for r in rows[:32]])
    torch.manual_seed(0)
    model = scratch_model(tokenizer, ["neg", "pos"], 64, args.model).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)

    times: dict[tuple[str, bool], list[float]] = {}
    for round_ in range(args.rounds + 1):  # round 0 warms up
        for method in METHODS:
            order = (False, True) if round_ % 2 == 0 else (True, False)
            for deterministic in order:
                torch.use_deterministic_algorithms(deterministic, warn_only=True)
                seconds = step_time(method, model, batch, optimizer)
                if round_:
                    times.setdefault((method, deterministic), []).append(seconds)
    torch.use_deterministic_algorithms(False)

    rows = []
    for method in METHODS:
        off = statistics.median(times[method, False])
        on = statistics.median(times[method, True])
        rows.append(
            {
                "method": method,
                "hyperparameters": METHODS[method],
                "default_s": off,
                "deterministic_s": on,
                "ratio": on / off,
            }
        )
    print(f"{args.model}, batch 32 x 64, {torch.get_num_threads()} threads, {args.rounds} rounds")
    print("| method | median step, default (s) | median step, deterministic (s) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        off, on = r["default_s"], r["deterministic_s"]
        print(f"| {r['method']} | {off:.4f} | {on:.4f} | {r['ratio']:.3f} |")
    settings = {"model": args.model, "batch": 32, "length": 64, "rounds": args.rounds}
    record.write(args.output, "determinism_cost", run_context, {"settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
