"""Loading the project's scripts as modules, for the tests that check their parts: a benchmark
of benchmarks/, or a section module of scripts/readme/ (the README's generated sections)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = ROOT / "scripts"
EXPERIMENTS = ROOT / "experiments"


def benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` as a module. It imports its sibling ``record`` the way a script
    does (from its own folder), so that folder is on sys.path while it loads."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def experiment(name: str) -> ModuleType:
    """``experiments/<name>.py`` (a sweep's helper script) as a module."""
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme(name: str) -> ModuleType:
    """``scripts/readme/<name>.py`` (or ``scripts/update_readme.py`` for ``"update"``), imported
    as update_readme.py imports it: with scripts/ on sys.path."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module("update_readme" if name == "update" else f"readme.{name}")
