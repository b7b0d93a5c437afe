"""``advnlp train --task causal-lm``: fine-tune a causal language model on prompt/response pairs
with one method; writes the best-on-dev model (lowest dev loss) and results.json.

It shares ``advnlp train``'s parser and the end of its run (cli/train.py), so the run folder,
the method flags, --resume and --overwrite work the same; the flags that only a text classifier
has are refused."""

from __future__ import annotations

import argparse

from ..errors import UsageError
from ..experiment.report import markdown
from ..experiment.results import RunResult
from ..experiment.run_folder import RunFolder
from . import common
from .train import CLASSIFICATION_ONLY, check_seed, method_label, train_and_report


def check_flags(args: argparse.Namespace) -> None:
    """UsageError naming the first classifier flag given, or a missing --model."""
    for dest, flag in CLASSIFICATION_ONLY.items():
        if getattr(args, dest) is not None:
            raise UsageError(
                f'{flag}: a text-classification flag; --task causal-lm reads "prompt" and '
                '"response" from each line and trains the whole model given by --model'
            )
    if args.model is None:
        raise UsageError(
            "--model: --task causal-lm needs a causal language model (a Hugging Face name or "
            "a folder saved with save_pretrained)"
        )


def run(args: argparse.Namespace) -> int:
    from ..experiment.causal import run as causal_run

    check_flags(args)
    check_seed(args)
    settings = common.run_settings(args)  # the flags train shares, so none is forgotten here
    for field in ("text_columns", "label_column", "vocab_size", "layers"):
        del settings[field]  # a classifier's (refused above): RunConfig's defaults
    return train_and_report(args, {**settings, "task": "causal-lm"}, causal_run, summary)


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def summary(result: RunResult) -> str:
    config, dev, test = result.config, result.dev, result.test
    rows = [
        [
            str(e.epoch),
            _number(e.train_loss, 4),
            _number(e.dev_loss, 4),
            "—" if e.dev_loss is None else f"{_perplexity(e.dev_loss):.2f}",
            common.percent(e.dev_accuracy),
            _number(e.step_time_s, 3),
        ]
        for e in result.epochs
    ]
    table = markdown(
        [
            "epoch",
            "train loss",
            "dev loss",
            "dev perplexity",
            "dev token accuracy %",
            "step time (s)",
        ],
        rows,
    )
    folder = RunFolder(config.output)
    lines = [
        f"advnlp train --task causal-lm: {method_label(result)} on {config.model}, "
        f"seed {config.seed}",
        table,
        f"best epoch {result.best_epoch}: dev loss {_number(dev.loss, 4)} "
        f"({dev.tokens} response tokens), perplexity {_number(dev.perplexity, 2)}, "
        f"token accuracy {common.percent(dev.accuracy)}%"
        + (
            f"; test loss {_number(test.loss, 4)}, perplexity {_number(test.perplexity, 2)}"
            if test
            else ""
        ),
        f"saved: {folder.model} (best model), {folder.results}",
    ]
    return "\n".join(lines)


def _perplexity(loss: float) -> float:
    import math

    return math.exp(min(loss, 700.0))
