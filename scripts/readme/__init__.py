"""The README's generated sections, one module per kind (scripts/update_readme.py runs them):
experiments.py (an experiment's summary: the demo, the robustness tables), results.py (issue
14's sweeps, task by task: committed.py reads a task's summaries, findings.py judges them,
labels.py names what they show, gains.py draws a task's figure) and benchmarks.py
(benchmarks/results/*.json); common.py holds the checkout's root and what they share."""

from . import common  # noqa: F401  (first: it puts this checkout's src/ on sys.path)
