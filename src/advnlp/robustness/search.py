"""Greedy search by word importance (TextAttack's ``greedy-wir`` with leave-one-out).

1. Importance of each editable unit: the drop in the true-class probability when the unit is
   deleted (one batch of all the deletions).
2. Units in that order, most important first; at each, all candidates go through the model in
   one batch and the one that lowers the true-class probability most is kept, if it lowers it
   at all. Stop as soon as the prediction changes (success).

Constraints: at most ``max(1, floor(budget * units))`` units edited, each at most once (a
unit is visited once); at most ``max_queries`` model queries for the example, the first
prediction included (a batch that would go past the limit is cut); edits only where the
transformation allows them, which never includes special tokens.
"""

from __future__ import annotations

import math
import random

from torch import Tensor

from .metrics import ExampleResult
from .transformations import Transformation
from .victim import Example, QueryCounter, Victim


def edit_budget(budget: float, units: int) -> int:
    """Units that may change: a fraction of them, at least one."""
    return max(1, math.floor(budget * units + 1e-9))


def greedy(
    victim: Victim,
    transformation: Transformation,
    example: Example,
    clean: Tensor,
    *,
    index: int,
    budget: float,
    max_queries: int,
    rng: random.Random,
) -> ExampleResult:
    """Attack one example whose clean probabilities ``clean`` (C,) cost one query already."""
    labels = victim.labels
    gold = example.label
    counter = QueryCounter(victim, max_queries, example.text_pair)
    counter.used = 1  # the clean prediction
    units = transformation.units(example.text, victim.special_spans(example.text))
    current: dict[int, str] = {}
    probabilities = clean

    if int(clean.argmax()) == gold and units.editable and counter.left > 0:
        allowed = edit_budget(budget, units.size)
        deleted = counter.score([units.text({i: ""}) for i in units.editable])
        drops = [float(clean[gold] - p[gold]) for p in deleted]
        # positions the query limit left unscored come last
        scored = list(zip(units.editable, drops, strict=False))
        order = [i for i, _ in sorted(scored, key=lambda item: -item[1])]
        order += [i for i in units.editable[len(drops) :]]
        for position in order:
            if len(current) >= allowed or counter.left <= 0:
                break
            candidates = transformation.candidates(units, position, rng)
            if not candidates:
                continue
            tried = counter.score([units.text({**current, position: c}) for c in candidates])
            if len(tried) == 0:
                break
            best = int(tried[:, gold].argmin())
            if tried[best, gold] < probabilities[gold]:
                current[position] = candidates[best]
                probabilities = tried[best]
                if int(probabilities.argmax()) != gold:
                    break

    predicted = int(probabilities.argmax())
    if int(clean.argmax()) != gold:
        outcome = "skipped"
    elif predicted != gold:
        outcome = "successful"
    else:
        outcome = "failed"
    return ExampleResult(
        index=index,
        text=example.text,
        adversarial_text=units.text(current),
        gold=labels[gold],
        original_prediction=labels[int(clean.argmax())],
        adversarial_prediction=labels[predicted],
        original_probabilities=[round(float(p), 6) for p in clean],
        adversarial_probabilities=[round(float(p), 6) for p in probabilities],
        outcome=outcome,
        edits=len(current),
        units=units.size,
        queries=counter.used,
        text_pair=example.text_pair,
    )
