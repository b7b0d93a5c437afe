"""Run attacks on labelled data and collect the results: the entry points of the package.

- :func:`attack`: one attack at one budget (or radius) on a list of examples;
- :func:`attack_all`: several attacks, budgets and radii: a :class:`Report`;
- :func:`attack_run`: a finished ``advnlp train`` run folder, its saved model on its dev data.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError, UsageError
from .embedding import EmbeddingPGD
from .metrics import ExampleResult, Metrics, summarize
from .search import greedy
from .transformations import TRANSFORMATIONS, Transformation, make
from .victim import Example, Victim, load_victim

ATTACKS = (*TRANSFORMATIONS, "embedding")
# Defaults of the attack settings, shared by the library, `advnlp attack` and `compare --attack`.
BUDGET = 0.1  # share of the units an attack may edit
RADIUS = 0.1  # embedding attack: L2 radius relative to the input's embedding norm
DEFAULT_RADII = (0.0, 0.05, 0.1, 0.2, 0.4)  # advnlp attack's curve
MAX_QUERIES = 1000  # model queries per example
MAX_CANDIDATES = 20  # candidate edits per position
STEPS = 10  # embedding attack: PGD steps


@dataclass
class AttackResult:
    """One attack at one setting: its metrics, every example, and what it cost."""

    attack: str
    budget: float | None  # fraction of units (discrete attacks)
    radius: float | None  # relative L2 radius (embedding)
    metrics: Metrics
    examples: list[ExampleResult]
    seconds: float
    model_seconds: float  # inside the model's forward passes
    queries: int  # inputs scored (forward passes per example for embedding)

    @property
    def examples_per_second(self) -> float:
        return len(self.examples) / self.seconds if self.seconds > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        """Settings, metrics and costs (the examples go to their own file)."""
        return {
            "attack": self.attack,
            "budget": self.budget,
            "radius": self.radius,
            **self.metrics.to_json(),
            "seconds": round(self.seconds, 3),
            "model_seconds": round(self.model_seconds, 3),
            "queries": self.queries,
            "examples_per_s": round(self.examples_per_second, 3),
            "queries_per_s": round(self.queries / self.seconds, 3) if self.seconds else None,
        }


@dataclass
class Report:
    """Every result of one call of :func:`attack_all`, with the settings that made them."""

    results: list[AttackResult]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "results": [r.to_json() for r in self.results]}


def check_settings(
    attacks: Sequence[str],
    budgets: Sequence[float] = (BUDGET,),
    radii: Sequence[float] = DEFAULT_RADII,
    max_queries: int = MAX_QUERIES,
    max_candidates: int = MAX_CANDIDATES,
    steps: int = STEPS,
    *,
    prefix: str = "--",
) -> None:
    """Raise UsageError naming the flag of the first unusable setting (``prefix`` + its name:
    ``advnlp compare`` calls them ``--attack-budget``, ...)."""
    if not attacks:
        raise UsageError("--attack: name at least one attack")
    for name in attacks:
        if name not in ATTACKS:
            raise UsageError(f"--attack {name!r}: unknown attack; known: {', '.join(ATTACKS)}")
    for budget in budgets:
        if not 0 < budget <= 1:
            raise UsageError(
                f"{prefix}budget {budget:g}: must be in (0, 1] (a fraction of the units)"
            )
    for radius in radii:
        if not radius >= 0 or math.isinf(radius):
            raise UsageError(f"{prefix}radius {radius:g}: must be a finite number >= 0")
    for flag, value in (
        (f"{prefix}max-queries", max_queries),
        (f"{prefix}max-candidates", max_candidates),
        (f"{prefix}steps", steps),
    ):
        if value < 1:
            raise UsageError(f"{flag} {value}: must be >= 1")


def check_language(
    transformation: Transformation, victim: Victim | None, examples: list[Example]
) -> None:
    """Refuse an attack that cannot edit most of the data (e.g. ``homophone`` on English),
    instead of reporting 0% success. Without a victim (before training), special tokens are
    not known and not protected: the check is about the script of the text."""
    if not examples:
        return
    fit = sum(
        1
        for e in examples
        if transformation.units(e.text, victim.special_spans(e.text) if victim else ()).editable
    )
    if fit < len(examples) / 2:
        raise UsageError(
            f"--attack {transformation.name}: it edits {transformation.language} text, but only "
            f"{fit} of {len(examples)} examples hold any; choose an attack for this language "
            "(typo for English, homophone or variant for Chinese; neighbour or embedding for any)"
        )


def attack(
    victim: Victim,
    examples: list[Example],
    name: str,
    *,
    budget: float = BUDGET,
    radius: float = RADIUS,
    max_queries: int = MAX_QUERIES,
    max_candidates: int = MAX_CANDIDATES,
    steps: int = STEPS,
    seed: int = 0,
    progress: bool = False,
    transformation: Transformation | None = None,
) -> AttackResult:
    """Attack ``examples`` with the attack ``name`` (one of ATTACKS); deterministic for a seed.

    ``budget`` (fraction of units edited) applies to the discrete attacks, ``radius`` (relative
    L2 radius) and ``steps`` to ``embedding``.
    """
    check_settings([name], [budget], [radius], max_queries, max_candidates, steps)
    started = time.perf_counter()
    model_before, queries_before = victim.model_seconds, victim.queries
    setting = f"r={radius:g}" if name == "embedding" else f"budget={budget:g}"
    bar = _bar(len(examples), f"{name} {setting}", progress)
    if name == "embedding":
        results = _embedding(victim, examples, radius, steps, bar)
    else:
        transformation = transformation or make(name, victim, max_candidates)
        clean = victim.probabilities([e.text for e in examples], _pairs(examples))
        results = []
        for index, (example, probabilities) in enumerate(zip(examples, clean, strict=True)):
            rng = random.Random(f"{seed}/{index}")  # per example: independent of the order
            results.append(
                greedy(
                    victim,
                    transformation,
                    example,
                    probabilities,
                    index=index,
                    budget=budget,
                    max_queries=max_queries,
                    rng=rng,
                )
            )
            bar.update(1)
    bar.close()
    return AttackResult(
        attack=name,
        budget=None if name == "embedding" else budget,
        radius=radius if name == "embedding" else None,
        metrics=summarize(results),
        examples=results,
        seconds=time.perf_counter() - started,
        model_seconds=victim.model_seconds - model_before,
        queries=victim.queries - queries_before,
    )


def attack_all(
    victim: Victim,
    examples: list[Example],
    attacks: Sequence[str],
    *,
    budgets: Sequence[float] = (BUDGET,),
    radii: Sequence[float] = DEFAULT_RADII,
    max_queries: int = MAX_QUERIES,
    max_candidates: int = MAX_CANDIDATES,
    steps: int = STEPS,
    seed: int = 0,
    progress: bool = False,
) -> Report:
    """Every attack in ``attacks`` at every budget (discrete ones) or radius (embedding)."""
    check_settings(attacks, budgets, radii, max_queries, max_candidates, steps)
    transformations = {n: make(n, victim, max_candidates) for n in attacks if n != "embedding"}
    for transformation in transformations.values():
        check_language(transformation, victim, examples)
    results = []
    for name in attacks:
        for value in radii if name == "embedding" else budgets:
            results.append(
                attack(
                    victim,
                    examples,
                    name,
                    budget=value if name != "embedding" else BUDGET,
                    radius=value if name == "embedding" else 0.0,
                    max_queries=max_queries,
                    max_candidates=max_candidates,
                    steps=steps,
                    seed=seed,
                    progress=progress,
                    transformation=transformations.get(name),
                )
            )
    settings = {
        "attacks": list(attacks),
        "budgets": list(budgets),
        "radii": list(radii),
        "max_queries": max_queries,
        "max_candidates": max_candidates,
        "steps": steps,
        "seed": seed,
        "examples": len(examples),
        "device": str(victim.device),
        "labels": victim.labels,
    }
    return Report(results, settings)


def load_examples(
    spec: str,
    victim: Victim,
    *,
    text_columns: Sequence[str] | None = None,
    label_column: str = "label",
    max_examples: int | None = None,
    seed: int = 0,
    flag: str = "--data",
    limit: int | None = None,
) -> list[Example]:
    """Read labelled data (every format ``advnlp train`` reads) into the victim's label ids.

    ``limit`` first keeps the subset ``advnlp train --max-dev-examples`` evaluates on; then,
    with ``max_examples``, a sample drawn with ``seed`` (kept in the subset's order).
    """
    from ..data import load_split

    split = load_split(
        spec, flag=flag, text_columns=text_columns, label_column=label_column, limit=limit
    )
    ids = label_ids(victim.labels)
    dataset = split.dataset
    labels = dataset["label"]
    for row, label in enumerate(labels):
        if label not in ids:
            raise DataError(
                f"{split.where(row)}: label {label!r} is not one the model knows "
                f"(its labels: {', '.join(victim.labels[:20])}"
                f"{', ...' if len(victim.labels) > 20 else ''})"
            )
    rows = list(range(len(dataset)))
    if max_examples is not None and max_examples < len(rows):
        rows = sorted(random.Random(seed).sample(rows, max_examples))
    texts = dataset["text"]
    pairs = dataset["text_pair"] if "text_pair" in dataset.column_names else None
    return [Example(texts[i], ids[labels[i]], None if pairs is None else pairs[i]) for i in rows]


def label_ids(names: list[str]) -> dict[str, int]:
    """Data label -> class id: by name; a model with default names (LABEL_k) also takes k."""
    ids = {name: i for i, name in enumerate(names)}
    if all(name == f"LABEL_{i}" for i, name in enumerate(names)):
        ids.update({str(i): i for i in range(len(names))})
    return ids


def attack_run(
    run: str | Path,
    attacks: Sequence[str] = ("neighbour",),
    *,
    data: str | None = None,
    max_examples: int | None = None,
    progress: bool = False,
    **options: Any,
) -> Report:
    """Attack a finished ``advnlp train`` run: its best model (``model/``) on its dev data
    (the subset it was evaluated on, when it was trained with ``--max-dev-examples``).

    ``data`` replaces the dev file the run was trained with (a relative path in ``run.json``
    is read from the current folder); ``options`` go to :func:`attack_all`.
    """
    import json

    from ..experiment.run_folder import RunFolder

    folder = Path(run)
    marker = folder / "run.json"
    if not marker.exists() or not RunFolder(folder).finished:
        raise UsageError(f"{run}: not a finished advnlp run (run.json and results.json needed)")
    config = json.loads(marker.read_text(encoding="utf-8"))["config"]
    victim = load_victim(folder, max_length=config.get("max_length"), flag="run")
    examples = load_examples(
        data or config["dev"],
        victim,
        text_columns=config.get("text_columns"),
        label_column=config.get("label_column", "label"),
        max_examples=max_examples,
        seed=options.get("seed", 0),
        flag="--data" if data else "--dev",
        limit=None if data else config.get("max_dev_examples"),
    )
    report = attack_all(victim, examples, attacks, progress=progress, **options)
    report.settings.update({"model": str(folder / "model"), "data": data or config["dev"]})
    return report


def _pairs(examples: list[Example]) -> list[str | None] | None:
    if all(e.text_pair is None for e in examples):
        return None
    return [e.text_pair for e in examples]


def _embedding(
    victim: Victim, examples: list[Example], radius: float, steps: int, bar: Any
) -> list[ExampleResult]:
    """PGD on the examples the model gets right (a first batched pass finds them); the others
    are skipped at the cost of that one query, as in the discrete attacks."""
    pgd = EmbeddingPGD(victim, steps)
    labels = victim.labels
    first = victim.probabilities([e.text for e in examples], _pairs(examples))
    found: dict[int, tuple[Any, Any, bool, int]] = {}  # index -> clean, adversarial, broken, q
    correct = [i for i, e in enumerate(examples) if int(first[i].argmax()) == e.label]
    for index in set(range(len(examples))) - set(correct):
        found[index] = (first[index], first[index], False, 1)
    bar.update(len(examples) - len(correct))
    for start in range(0, len(correct), victim.batch_size):
        indices = correct[start : start + victim.batch_size]
        part = [examples[i] for i in indices]
        batch = victim.encode([e.text for e in part], _pairs(part), return_special_tokens_mask=True)
        gold = torch.tensor([e.label for e in part], device=victim.device)
        outcome = pgd.attack(batch, gold, radius)
        for offset, index in enumerate(indices):
            found[index] = (
                outcome.clean[offset],
                outcome.adversarial[offset],
                bool(outcome.broken[offset]),
                1 + outcome.passes,
            )
        bar.update(len(part))
    results = []
    for index, example in enumerate(examples):
        clean, adversarial, broken, queries = found[index]
        if int(clean.argmax()) != example.label:
            outcome_name = "skipped"
        else:
            outcome_name = "successful" if broken else "failed"
        results.append(
            ExampleResult(
                index=index,
                text=example.text,
                adversarial_text=example.text,  # the perturbation lives in embedding space
                gold=labels[example.label],
                original_prediction=labels[int(clean.argmax())],
                adversarial_prediction=labels[int(adversarial.argmax())],
                original_probabilities=[round(float(p), 6) for p in clean],
                adversarial_probabilities=[round(float(p), 6) for p in adversarial],
                outcome=outcome_name,
                edits=0,
                units=0,
                queries=queries,
                text_pair=example.text_pair,
            )
        )
    return results


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, description: str, show: bool) -> Any:
    """A tqdm bar over examples (it shows examples/s) on stderr, or nothing."""
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    # kept where it stands alone (advnlp attack); gone when done under compare's runs bar
    return tqdm(total=total, desc=description, unit="ex", dynamic_ncols=True, leave=None)
