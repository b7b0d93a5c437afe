"""Method names -> classes and their hyperparameters; ``build`` is what the CLI calls."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from .base import AdversarialMethod
from .errors import ConfigError
from .methods import FGM, PGD, Baseline, FreeLB, GradientPenalty

METHODS: dict[str, type[AdversarialMethod]] = {
    cls.name: cls for cls in (Baseline, FGM, GradientPenalty, PGD, FreeLB)
}
ALIASES = {"baseline": "none", "plain": "none", "gradient_penalty": "gp", "gradientpenalty": "gp"}
# Arguments of every constructor that are plumbing, not hyperparameters.
_NOT_HYPERPARAMETERS = {"self", "model", "target", "scaler"}


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


def hyperparameters(name: str) -> dict[str, Any]:
    """``{argument: default}`` of the method's hyperparameters (what ``build`` accepts)."""
    signature = inspect.signature(resolve(name).__init__)
    return {
        arg: param.default
        for arg, param in signature.parameters.items()
        if arg not in _NOT_HYPERPARAMETERS and param.kind is not param.VAR_KEYWORD
    }


def build(name: str, model: nn.Module, **kwargs: Any) -> AdversarialMethod:
    """Make method ``name`` for ``model``: ``build("fgm", model, epsilon=0.5)``.

    ``target`` and ``scaler`` are accepted by every method that perturbs an embedding.
    Unknown keyword arguments are an error naming the ones the method takes.
    """
    cls = resolve(name)
    known = set(hyperparameters(name))
    if cls is not Baseline:
        known |= {"target", "scaler"}
    unknown = sorted(set(kwargs) - known)
    if unknown and cls is Baseline:
        raise ConfigError(f"method 'none' takes no hyperparameters, got {', '.join(unknown)}")
    if unknown:
        raise ConfigError(
            f"method {cls.name!r} does not take {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(sorted(known))}"
        )
    return cls(model, **kwargs)


def check(name: str, **kwargs: Any) -> None:
    """Validate a method's name and hyperparameter values before any model exists.

    Builds the method on a stand-in embedding, so the checks are the constructor's own.
    """
    kwargs = {k: v for k, v in kwargs.items() if k not in ("target", "scaler")}
    build(name, nn.Embedding(2, 1), **kwargs)
