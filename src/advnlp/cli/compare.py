"""``advnlp compare``: methods x epsilons x seeds on the same data; table, JSON and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..registry import method_names
from . import common


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(
        name,
        help="compare methods over epsilons and seeds (paired runs)",
        description="Train every method x epsilon x seed on the same data (same "
        "seeds, same data order per seed) and summarise: mean ± std per method, "
        "difference to none with paired tests, plots. Finished runs are skipped.",
    )
    common.add_data_and_model_flags(p)
    add_sweep_flags(p)
    add_attack_flags(p)
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start again if --output holds a comparison with other settings",
    )
    p.set_defaults(run=run)


def add_sweep_flags(
    p: argparse.ArgumentParser,
    *,
    methods: str = "none,fgm,gp",
    epsilons: str = "0.1,0.5,1",
    seeds: str = "0,1,2",
) -> None:
    sweep = p.add_argument_group("sweep")
    sweep.add_argument(
        "--methods",
        default=methods,
        help=f"comma-separated, from {', '.join(method_names())} (default: {methods})",
    )
    sweep.add_argument(
        "--epsilon",
        metavar="E1,E2,...",
        help=f"epsilons for every method that takes one (default: {epsilons})",
    )
    p.set_defaults(epsilon_default=epsilons)  # applies where a method takes an epsilon
    sweep.add_argument("--seeds", default=seeds, metavar="S1,S2,...", help=f"default: {seeds}")
    common.add_hyperparameter_flags(p)


def add_attack_flags(p: argparse.ArgumentParser, defaults: dict[str, str] | None = None) -> None:
    """The --attack flags; ``defaults`` replaces the "(default: ...)" text of the flags it
    names (by dest), for a command whose defaults differ (the demo's)."""
    from ..robustness.attack import BUDGET
    from ..robustness.compare import RADII

    said = {
        "attack": "default: no attack",
        "attack_examples": "default: the whole dev set",
        "attack_budget": f"default: {BUDGET:g}",
        "attack_radius": f"default: {','.join(f'{r:g}' for r in RADII)}",
        **(defaults or {}),
    }
    group = p.add_argument_group("robustness (advnlp attack on every run's best model)")
    group.add_argument(
        "--attack",
        metavar="NAME[,NAME]",
        help="attack every run's best model on the dev set, from homophone, variant, typo, "
        f"neighbour, embedding; saved in the run's attack/ (reused on a rerun) ({said['attack']})",
    )
    group.add_argument(
        "--attack-examples",
        type=common.integer,
        metavar="N",
        help=f"a seeded sample of N, the same for every run ({said['attack_examples']})",
    )
    group.add_argument(
        "--attack-budget", metavar="B[,B2]", help=f"as attack's --budget ({said['attack_budget']})"
    )
    group.add_argument(
        "--attack-radius", metavar="R[,R2]", help=f"as attack's --radius ({said['attack_radius']})"
    )


def attack_from(args: argparse.Namespace):
    """The AttackSweep of the --attack flags, or None without --attack."""
    if args.attack is None:
        for flag in ("attack_examples", "attack_budget", "attack_radius"):
            if getattr(args, flag) is not None:
                raise UsageError(f"{common.flag(flag)}: only with --attack NAME[,NAME]")
        return None
    from ..robustness.compare import AttackSweep

    lists = {}  # the values given; AttackSweep's defaults otherwise
    if args.attack_budget is not None:
        lists["budgets"] = common.number_list(args.attack_budget, "--attack-budget")
    if args.attack_radius is not None:
        lists["radii"] = common.number_list(args.attack_radius, "--attack-radius")
    attacks = [a.strip() for a in args.attack.split(",") if a.strip()]
    return AttackSweep(attacks=attacks, examples=args.attack_examples, **lists)


def config_from(args: argparse.Namespace, **overrides):
    from ..experiment.compare import CompareConfig
    from ..experiment.run_config import RunConfig

    settings = common.run_settings(args) | overrides
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.epsilon is None and not _takes_epsilon(methods):
        epsilons = []  # e.g. --methods none alone: the default epsilons are no one's
    else:
        given = args.epsilon if args.epsilon is not None else args.epsilon_default
        epsilons = common.number_list(given, "--epsilon")
    return CompareConfig(
        base=RunConfig(**settings, output=args.output),
        methods=methods,
        epsilons=epsilons,
        seeds=common.number_list(args.seeds, "--seeds", int),
        hyperparameters=common.hyperparameters_from(args),
    )


def _takes_epsilon(methods: list[str]) -> bool:
    from ..errors import ConfigError
    from ..registry import hyperparameters

    try:
        return any("epsilon" in hyperparameters(method) for method in methods)
    except ConfigError:  # an unknown name: CompareConfig.validate says which
        return True


def run(args: argparse.Namespace) -> int:
    from ..experiment.compare import compare

    config = config_from(args)
    config.validate()
    attack = attack_from(args)
    common.quiet_libraries()
    compare(config, overwrite=args.overwrite, attack=attack)
    common.say(report_text(Path(args.output)))
    return 0


def report_text(output: Path) -> str:
    table = (output / "summary.md").read_text(encoding="utf-8")
    names = ("accuracy_vs_epsilon.png", "training_curves.png", "attack_vs_epsilon.png")
    plots = ", ".join(str(output / f) for f in names if (output / f).exists())
    return f"{table.rstrip()}\n\nsummary: {output / 'summary.json'}\nplots: {plots}"
