"""Robustness: accuracy under attack, the way TextAttack measures it, all offline.

An attack is a transformation (candidate edits of one position: ``homophone``, ``variant``,
``typo``, ``neighbour``), constraints (edit budget, query limit, no special token) and a
greedy search by leave-one-out importance; or ``embedding``, a white-box PGD on the
token-embedding output at a relative L2 radius.

    from advnlp.robustness import attack_all, load_examples, load_victim

    victim = load_victim("runs/fgm/model")
    examples = load_examples("dev.json", victim, max_examples=500)
    report = attack_all(victim, examples, ["homophone", "embedding"])
    for result in report.results:
        print(result.attack, result.metrics.accuracy_under_attack)

``import advnlp`` does not import this package; it loads transformers, pypinyin, OpenCC and
jieba's dictionary (``pip install advnlp[cli]``) when an attack needs them.
"""

from .attack import (
    ATTACKS,
    DEFAULT_RADII,
    AttackResult,
    Report,
    attack,
    attack_all,
    attack_run,
    check_settings,
    load_examples,
)
from .metrics import ExampleResult, Metrics, summarize
from .transformations import TRANSFORMATIONS, Units
from .victim import Example, Victim, load_victim

__all__ = [
    "ATTACKS",
    "DEFAULT_RADII",
    "AttackResult",
    "Example",
    "ExampleResult",
    "Metrics",
    "Report",
    "TRANSFORMATIONS",
    "Units",
    "Victim",
    "attack",
    "attack_all",
    "attack_run",
    "check_settings",
    "load_examples",
    "load_victim",
    "summarize",
]
