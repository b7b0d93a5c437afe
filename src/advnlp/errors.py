"""Errors raised for user mistakes; each message repeats the value and says what to change."""

from __future__ import annotations


class ConfigError(ValueError):
    """A hyperparameter or option has a value the method cannot use (e.g. ``epsilon=-1``)."""


class EmbeddingNotFoundError(ValueError):
    """No token embedding could be chosen in the model; the message lists the candidates."""


class ClosureError(TypeError):
    """``closure()`` did not return a usable scalar loss, or did not run the model's embedding."""


def check_number(name: str, value: object, *, minimum: float = 0.0, strict: bool = False) -> float:
    """Return ``value`` as a float, or raise ConfigError naming ``name`` if it is out of range."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    ok = value > minimum if strict else value >= minimum
    if not ok or value != value or value == float("inf"):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ConfigError(f"{name} must be a finite number {bound}, got {value!r}")
    return value


def check_steps(name: str, value: object) -> int:
    """Return ``value`` as an int >= 1, or raise ConfigError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ConfigError listing them."""
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value  # type: ignore[return-value]


class DataError(ValueError):
    """Input data that cannot be used; the message names the file (and line) and what to fix."""


class UsageError(ValueError):
    """A command-line flag or output folder that cannot be used; the message names the flag."""
