"""Method names -> classes and their hyperparameters; ``build`` is what the CLI calls.

Everything about a hyperparameter (its name, default, check and help text) lives in the
method's config dataclass (``FGM.config_class`` is ``FGMConfig``); this module only reads it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from .base import AdversarialMethod, check_start_step
from .errors import ConfigError
from .methods import (
    AWP,
    FGM,
    PGD,
    R3F,
    SMART,
    VAT,
    Baseline,
    FreeFGM,
    FreeLB,
    GradientPenalty,
    NEFTune,
)

METHODS: dict[str, type[AdversarialMethod]] = {
    cls.name: cls
    for cls in (Baseline, FGM, GradientPenalty, PGD, FreeLB, NEFTune, R3F, FreeFGM, AWP, SMART, VAT)
}
ALIASES = {"baseline": "none", "plain": "none", "gradient_penalty": "gp", "gradientpenalty": "gp"}
# What a method that perturbs an embedding takes besides its config: plumbing, not settings
# (start_step, the warm-up: AWP, which perturbs no embedding, has it in its config).
PLUMBING = ("target", "scaler", "data_parallel_group", "start_step")


def method_names() -> list[str]:
    """The registered method names, e.g. ``['none', 'fgm', 'gp', 'pgd', 'freelb']``."""
    return list(METHODS)


def resolve(name: str) -> type[AdversarialMethod]:
    """The class registered under ``name`` (case-insensitive; aliases allowed)."""
    key = str(name).strip().lower().replace("-", "_")
    key = ALIASES.get(key, key)
    if key not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known methods: {', '.join(METHODS)}")
    return METHODS[key]


def config_fields(name: str) -> tuple[dataclasses.Field, ...]:
    """The fields of the method's config: one per hyperparameter, with ``metadata["help"]``."""
    return dataclasses.fields(resolve(name).config_class)


def hyperparameters(name: str) -> dict[str, Any]:
    """``{argument: default}`` of the method's hyperparameters, from its config."""
    return {field.name: _default(field) for field in config_fields(name)}


def arguments(name: str) -> list[str]:
    """Every keyword argument ``build(name, model, ...)`` takes: hyperparameters and plumbing."""
    plumbing = PLUMBING if resolve(name).perturbs else ()
    return [*hyperparameters(name), *plumbing]


def accepted(name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The part of ``values`` that method ``name`` takes (e.g. a sweep's shared settings)."""
    known = arguments(name)
    return {key: value for key, value in values.items() if key in known}


def build(name: str, model: nn.Module, **kwargs: Any) -> AdversarialMethod:
    """Make method ``name`` for ``model``: ``build("fgm", model, epsilon=0.5)``.

    ``target``, ``scaler``, ``data_parallel_group`` and ``start_step`` (the warm-up) are
    accepted by every method that perturbs an embedding.
    Unknown keyword arguments are an error naming the ones the method takes.
    """
    cls = resolve(name)
    _reject_unknown(cls.name, kwargs)
    return cls(model, **kwargs)


def check(name: str, **kwargs: Any) -> None:
    """Validate a method's name and hyperparameter values before any model exists.

    The values go through the method's config, whose checks are the method's own; ``target``
    and ``scaler`` are ignored (they need a model); ``start_step`` is checked.
    """
    cls = resolve(name)
    own = hyperparameters(cls.name)
    values = {key: value for key, value in kwargs.items() if key not in PLUMBING or key in own}
    _reject_unknown(cls.name, values)
    cls.config_class(**values)
    if cls.perturbs and "start_step" in kwargs and "start_step" not in own:
        check_start_step(kwargs["start_step"])


def _reject_unknown(name: str, kwargs: dict[str, Any]) -> None:
    known = arguments(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown and not known:
        raise ConfigError(f"method {name!r} takes no hyperparameters, got {', '.join(unknown)}")
    if unknown:
        raise ConfigError(
            f"method {name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(sorted(known))}"
        )


def _default(field: dataclasses.Field) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default
