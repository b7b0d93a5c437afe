"""Survivors of scripts/mutation_report.py that no test can or should kill, with the reason.

mutant name -> (status, a fragment of the mutated line, reason). The fragment guards against a
stale note: when the source changes, mutmut renumbers its mutants and a note whose fragment is
no longer in its mutant's diff is reported as out of date. Status "equivalent": the mutant
behaves like the original for every input; "open": a real gap, left with the reason.
"""

from __future__ import annotations

NOTES: dict[str, tuple[str, str, str]] = {}
