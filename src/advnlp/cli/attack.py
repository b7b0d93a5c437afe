"""``advnlp attack``: accuracy under attack of a saved classifier on labelled data."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from . import common
from .common import integer

ATTACK_NAMES = ("homophone", "variant", "typo", "neighbour", "embedding")


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    from ..robustness.attack import BUDGET, DEFAULT_RADII, MAX_CANDIDATES, MAX_QUERIES, STEPS

    radii = ",".join(f"{r:g}" for r in DEFAULT_RADII)
    p = sub.add_parser(
        name,
        help="measure accuracy under attack of a saved model",
        description="Attack a saved classifier on labelled data (offline, TextAttack's "
        "metrics): write attack.json, attack.md, examples.jsonl and attack.png in --output.",
    )
    p.add_argument(
        "--model",
        required=True,
        metavar="DIR",
        help="an advnlp train output folder (its model/), a save_pretrained folder, or a "
        "Hugging Face sequence-classification model name",
    )
    p.add_argument("--data", required=True, metavar="FILE", help="labelled data (formats of train)")
    p.add_argument(
        "--text-column", metavar="NAME[,NAME2]", help="as in train (default: found by name)"
    )
    p.add_argument("--label-column", default="label", metavar="NAME")
    p.add_argument(
        "--attack",
        default="neighbour,embedding",
        metavar="NAME[,NAME]",
        help=f"comma-separated, from {', '.join(ATTACK_NAMES)} (default: neighbour,embedding)",
    )
    p.add_argument(
        "--max-examples", type=integer, metavar="N", help="a seeded sample of N examples"
    )
    p.add_argument(
        "--budget",
        default=f"{BUDGET:g}",
        metavar="B[,B2]",
        help="share of units (characters, words, tokens) an attack may edit, in (0, 1]; "
        f"several give a curve (default: {BUDGET:g})",
    )
    p.add_argument(
        "--radius",
        default=radii,
        metavar="R[,R2]",
        help=f"embedding attack: L2 radius relative to the input's embedding norm "
        f"(default: {radii})",
    )
    p.add_argument(
        "--max-queries",
        type=integer,
        default=MAX_QUERIES,
        help=f"per example (default: {MAX_QUERIES})",
    )
    p.add_argument(
        "--max-candidates",
        type=integer,
        default=MAX_CANDIDATES,
        help=f"per position (default: {MAX_CANDIDATES})",
    )
    p.add_argument(
        "--steps",
        type=integer,
        default=STEPS,
        help=f"embedding attack: PGD steps (default: {STEPS})",
    )
    p.add_argument("--max-length", type=integer, help="tokens per input (default: the run's)")
    p.add_argument("--batch-size", type=integer, default=64, help="inputs per forward pass")
    p.add_argument("--seed", type=integer, default=0)
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an earlier attack report in --output"
    )
    p.set_defaults(run=run)


def check_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "attack.json").exists():
            raise UsageError(
                f"--output {out}: the folder is not empty and holds no attack report; "
                "choose another folder"
            )
        if not overwrite:
            raise UsageError(f"--output {out}: holds an attack report; pass --overwrite")


def run(args: argparse.Namespace) -> int:
    from ..robustness import attack_all, check_settings, load_examples, load_victim

    attacks = [a.strip() for a in args.attack.split(",") if a.strip()]
    budgets = common.number_list(args.budget, "--budget")
    radii = common.number_list(args.radius, "--radius")
    check_settings(attacks, budgets, radii, args.max_queries, args.max_candidates, args.steps)
    for flag, value in (
        ("--max-examples", args.max_examples),
        ("--max-length", args.max_length),
        ("--batch-size", args.batch_size),
    ):
        if value is not None and value < 1:
            raise UsageError(f"{flag} {value}: must be >= 1")
    out = Path(args.output)
    check_output(out, args.overwrite)
    if not Path(args.model).expanduser().exists() and args.model.startswith((".", "/", "~")):
        raise UsageError(f"--model {args.model}: no such folder")

    common.quiet_libraries()
    victim = load_victim(args.model, max_length=args.max_length, batch_size=args.batch_size)
    examples = load_examples(
        args.data,
        victim,
        text_columns=common.text_columns(args),
        label_column=args.label_column,
        max_examples=args.max_examples,
        seed=args.seed,
    )
    report = attack_all(
        victim,
        examples,
        attacks,
        budgets=budgets,
        radii=radii,
        max_queries=args.max_queries,
        max_candidates=args.max_candidates,
        steps=args.steps,
        seed=args.seed,
        progress=True,
    )
    report.settings.update({"model": args.model, "data": args.data})

    from ..robustness.report import markdown_table, write_report

    paths = write_report(report, out)
    print(f"advnlp attack: {args.model} on {args.data} ({len(examples)} examples)")
    print(markdown_table(report))
    print(f"saved: {paths['json']}, {paths['table']}, {paths['examples']}, {paths['plot']}")
    return 0
