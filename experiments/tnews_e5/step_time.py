"""Seconds per training step (CPU time and wall time) for the sweeps' models and methods.

Measures what one ``advnlp train`` step costs: forward + the method's backward + AdamW step,
on real batches of the task (batch 32, max length 64), grouped by length as the trainer's
bucketing does (a random sample of examples sorted by length, cut into batches). Every method
sees the same batches. CPU time is ``time.process_time()`` (all threads of this process), so
it stays meaningful when other processes load the machine; wall time is printed beside it.

    OMP_NUM_THREADS=2 python experiments/tnews_e5/step_time.py tnews --layers 12,6,4,2
    OMP_NUM_THREADS=2 python experiments/tnews_e5/step_time.py sst2

Prints one JSON line per (layers, method) and the per-dev-batch forward time (batch 64).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch

from advnlp.experiment.train import RunConfig, encode, make_tokenizer, prepare_data
from advnlp.registry import build

TASKS = {
    "tnews": ("/work/shared/data/tnews/train.json", "/work/shared/data/tnews/dev.json", "e5-small"),
    "sst2": ("/work/shared/data/sst2/train.tsv", "/work/shared/data/sst2/dev.tsv", "minilm"),
}
METHODS = ["none", "fgm", "gp", "pgd", "freelb"]  # library defaults except epsilon below
EPSILON = {"fgm": 0.5, "gp": 1.0, "pgd": 1.0, "freelb": 1.0}


def say(line: str) -> None:
    """One line on stdout (the scripts' output is their result)."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def batches(encoded: Any, size: int, count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """``count`` batches of ``size``, cut from a seeded random sample sorted by length."""
    sample = encoded.shuffle(seed=seed).select(range(size * count))
    rows = sorted(sample, key=lambda row: row["length"])
    out = []
    for start in range(0, len(rows), size):
        chunk = rows[start : start + size]
        width = max(len(row["input_ids"]) for row in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)  # pad id is overwritten below
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for i, row in enumerate(chunk):
            ids[i, : len(row["input_ids"])] = torch.tensor(row["input_ids"])
            mask[i, : len(row["input_ids"])] = 1
        labels = torch.tensor([row["labels"] for row in chunk])
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def time_method(model: Any, method_name: str, data: list[dict[str, torch.Tensor]]) -> dict:
    from transformers import set_seed

    set_seed(0)
    kwargs = {"epsilon": EPSILON[method_name]} if method_name in EPSILON else {}
    method = build(method_name, model, **kwargs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    model.train()
    cpu, wall = [], []
    for i, batch in enumerate([data[0], *data]):  # the first step warms up and is not counted
        c0, w0 = time.process_time(), time.perf_counter()
        method.backward(lambda b=batch: model(**b).loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
    return {
        "cpu_s_mean": round(statistics.fmean(cpu), 3),
        "cpu_s_median": round(statistics.median(cpu), 3),
        "wall_s_mean": round(statistics.fmean(wall), 3),
    }


def time_eval(model: Any, data: list[dict[str, torch.Tensor]]) -> float:
    """CPU seconds of one forward pass (no grad) per batch of 64."""
    model.eval()
    merged = []
    for a, b in zip(data[0::2], data[1::2], strict=False):
        width = max(a["input_ids"].shape[1], b["input_ids"].shape[1])
        merged.append(
            {
                k: torch.cat(
                    [
                        torch.nn.functional.pad(a[k], (0, width - a[k].shape[1])),
                        torch.nn.functional.pad(b[k], (0, width - b[k].shape[1])),
                    ]
                )
                if k != "labels"
                else torch.cat([a[k], b[k]])
                for k in a
            }
        )
    times = []
    with torch.no_grad():
        for batch in merged:
            c0 = time.process_time()
            model(**batch)
            times.append(time.process_time() - c0)
    return round(statistics.fmean(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--layers", default="", help="comma-separated; empty: all")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument(
        "--train-examples",
        type=int,
        default=None,
        help="trim the vocabulary to this many train lines (default: all)",
    )
    args = parser.parse_args()
    train, dev, model_name = TASKS[args.task]
    from advnlp.experiment.models import load_pretrained_model

    config = RunConfig(
        train=train,
        dev=dev,
        output="/tmp/unused",
        model=model_name,
        max_length=64,
        max_train_examples=args.train_examples,
    )
    prepared = prepare_data(config)
    prepared.tokenizer = make_tokenizer(config, prepared)
    encoded = encode(prepared.train, prepared.tokenizer, prepared.labels, 64)
    data = batches(encoded, 32, args.batches)
    tokens = statistics.fmean(b["input_ids"].numel() for b in data) / 32
    say(
        json.dumps(
            {
                "task": args.task,
                "threads": torch.get_num_threads(),
                "vocabulary": len(prepared.tokenizer),
                "padded_tokens_per_example": round(tokens, 1),
            }
        )
    )
    for layers in [int(k) for k in args.layers.split(",") if k] or [None]:
        for method_name in args.methods.split(","):
            torch.manual_seed(0)
            model = load_pretrained_model(
                model_name, prepared.labels, layers=layers, tokenizer=prepared.tokenizer
            )
            row = {"layers": layers, "method": method_name, **time_method(model, method_name, data)}
            say(json.dumps(row))
        row = {"layers": layers, "eval_cpu_s_per_64": time_eval(model, data)}
        say(json.dumps(row))


if __name__ == "__main__":
    main()
