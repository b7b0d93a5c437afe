"""What an attack did to each example, and the summary metrics, with TextAttack's definitions.

Each attacked example ends in one of three outcomes (TextAttack's result classes):

- ``skipped``: the model already got it wrong, so there is nothing to attack;
- ``successful``: the attack found an input the model gets wrong;
- ``failed``: it did not (within the edit budget, the query limit or the radius).

Then, over ``n`` examples: clean accuracy = (n - skipped) / n; accuracy under attack =
failed / n; attack success rate = successful / (successful + failed); mean perturbed fraction
= mean over *successful* examples of edited units / units; mean queries = mean over the
examples that were attacked (not skipped), the first prediction included.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

OUTCOMES = ("successful", "failed", "skipped")


@dataclass
class ExampleResult:
    """One example under one attack: texts, labels, predictions and probabilities."""

    index: int  # position in the attacked data
    text: str
    adversarial_text: str  # = text when the attack failed or was skipped; see ``edits``
    gold: str
    original_prediction: str
    adversarial_prediction: str
    original_probabilities: list[float]
    adversarial_probabilities: list[float]
    outcome: str  # one of OUTCOMES
    edits: int  # units changed (0 for the embedding attack)
    units: int  # units the budget is a fraction of (0 for the embedding attack)
    queries: int  # inputs the model scored for this example (forward passes for embedding)
    text_pair: str | None = None

    @property
    def perturbed_fraction(self) -> float:
        return self.edits / self.units if self.units else 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Metrics:
    """TextAttack's summary of an attack (fractions, not percent); ``None`` where undefined."""

    n: int
    successful: int
    failed: int
    skipped: int
    clean_accuracy: float | None
    accuracy_under_attack: float | None
    success_rate: float | None
    mean_perturbed_fraction: float | None
    mean_queries: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def summarize(examples: list[ExampleResult]) -> Metrics:
    """The metrics of a list of example results (definitions in the module docstring)."""
    counts = {outcome: 0 for outcome in OUTCOMES}
    for example in examples:
        counts[example.outcome] += 1
    n = len(examples)
    attacked = [e for e in examples if e.outcome != "skipped"]
    successful = [e for e in examples if e.outcome == "successful"]
    edited = [e for e in successful if e.units]  # the embedding attack edits no unit
    return Metrics(
        n=n,
        successful=counts["successful"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        clean_accuracy=(n - counts["skipped"]) / n if n else None,
        accuracy_under_attack=counts["failed"] / n if n else None,
        success_rate=len(successful) / len(attacked) if attacked else None,
        mean_perturbed_fraction=(
            statistics.fmean(e.perturbed_fraction for e in edited) if edited else None
        ),
        mean_queries=statistics.fmean(e.queries for e in attacked) if attacked else None,
    )
