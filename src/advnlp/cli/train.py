"""``advnlp train``: one run of one method; writes the best model and results.json.

``--task causal-lm`` fine-tunes a causal language model on prompt/response pairs instead of a
classifier (cli/causal_lm.py): the same run folder, method flags, --resume and results.json,
without the flags that only mean something to a classifier."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..errors import UsageError
from ..experiment.report import markdown
from ..experiment.results import RunResult
from ..experiment.run_folder import RunFolder
from ..registry import hyperparameters, method_names
from . import common

TASKS = ("classification", "causal-lm")
# dest -> flag of the options only a text classifier has
CLASSIFICATION_ONLY = {
    "text_column": "--text-column",
    "label_column": "--label-column",
    "vocab_size": "--vocab-size",
    "layers": "--layers",
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="train one model with one method",
        description="Train a text classifier with one adversarial-training method; "
        "save the best-on-dev model and results.json in --output.",
    )
    common.add_data_and_model_flags(p)
    p.add_argument(
        "--task",
        choices=TASKS,
        default="classification",
        help="classification (text -> label; default) or causal-lm: fine-tune a causal language "
        'model (--model, a Hugging Face name or folder) on JSON lines of {"prompt", "response"}, '
        "the loss on the response tokens only; dev loss, perplexity and token accuracy",
    )
    p.add_argument("--test", metavar="FILE", help="test data, scored with the best model")
    p.add_argument(
        "--method", default="fgm", help=f"one of {', '.join(method_names())} (default: fgm)"
    )
    p.add_argument("--epsilon", type=common.number, help="perturbation size / penalty weight")
    common.add_hyperparameter_flags(p)
    p.add_argument("--seed", type=common.integer, default=0)
    p.add_argument("--output", required=True, metavar="DIR")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in --output from its last checkpoint",
    )
    mode.add_argument("--overwrite", action="store_true", help="replace the run in --output")
    p.add_argument("--keep-checkpoints", action="store_true")
    # --task causal-lm refuses the classifier's flags, so run() must see which were given: they
    # default to None here, and a classification run gives them their real defaults.
    defaults = {dest: p.get_default(dest) for dest in (*CLASSIFICATION_ONLY, "model")}
    p.set_defaults(**dict.fromkeys(defaults), classification_defaults=defaults, run=run)


def method_kwargs(args: argparse.Namespace) -> dict:
    method = common.method_name(args.method)
    given = common.hyperparameters_from(args)
    if args.epsilon is not None:
        given["epsilon"] = args.epsilon
    accepted = hyperparameters(method)
    for key in given:
        if key not in accepted:
            takes = ", ".join(f"--{k.replace('_', '-')}" for k in accepted) or "no hyperparameters"
            raise UsageError(f"{common.flag(key)}: method {method} takes {takes}")
    common.check_method_values(method, given)
    return given


def check_seed(args: argparse.Namespace) -> None:
    if not 0 <= args.seed < 2**32:  # numpy's range; set_seed would fail with a traceback
        raise UsageError(f"--seed: {args.seed} is out of range (0 to 2**32 - 1)")


def run(args: argparse.Namespace) -> int:
    from ..experiment.train import run as train_run

    if args.task == "causal-lm":
        from . import causal_lm

        return causal_lm.run(args)
    for dest, default in args.classification_defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, default)
    check_seed(args)
    return train_and_report(args, common.run_settings(args), train_run, summary)


def train_and_report(
    args: argparse.Namespace,
    settings: dict[str, Any],
    train: Callable[..., RunResult],
    report: Callable[[RunResult], str],
) -> int:
    """The run both tasks share: a RunConfig of ``settings`` (the data and model fields) and the
    method, seed and output flags, checked; ``train(config, resume=, overwrite=)``; the
    ``report`` of its result printed."""
    from ..experiment.run_config import RunConfig

    config = RunConfig(
        **settings,
        method=common.method_name(args.method),
        method_kwargs=method_kwargs(args),
        seed=args.seed,
        output=args.output,
        keep_checkpoints=args.keep_checkpoints,
    )
    config.validate()
    common.quiet_libraries()
    result = train(config, resume=args.resume, overwrite=args.overwrite)
    common.say(report(result))
    return 0


def method_label(result: RunResult) -> str:
    """The run's method with every hyperparameter, defaults included: ``fgm(epsilon=1.0, ...)``."""
    config = result.config
    settings = {**hyperparameters(config.method), **config.method_kwargs}
    return f"{config.method}({', '.join(f'{k}={v}' for k, v in settings.items())})"


def summary(result: RunResult) -> str:
    config, dev, test = result.config, result.dev, result.test
    rows = [
        [
            str(e.epoch),
            f"{e.train_loss:.4f}" if e.train_loss is not None else "—",
            common.percent(e.dev_accuracy),
            common.percent(e.dev_macro_f1),
            f"{e.step_time_s:.3f}" if e.step_time_s is not None else "—",
        ]
        for e in result.epochs
    ]
    table = markdown(
        ["epoch", "train loss", "dev accuracy %", "dev macro-F1 %", "step time (s)"], rows
    )
    folder = RunFolder(config.output)
    lines = [
        f"advnlp train: {method_label(result)} on {config.model}, seed {config.seed}",
        table,
        f"best epoch {result.best_epoch}: dev accuracy {common.percent(dev.accuracy)}%,"
        f" macro-F1 {common.percent(dev.macro_f1)}%"
        + (f"; test accuracy {common.percent(test.accuracy)}%" if test else ""),
    ]
    if result.collapsed:
        lines.append(
            f"collapsed: the best model predicts one class for "
            f"{100 * result.dev_majority_share:.0f}% of the dev examples"
        )
    lines.append(f"saved: {folder.model} (best model), {folder.results}")
    return "\n".join(lines)
