"""Rewrite the README's generated sections from committed results.

A generated section sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
and is never typed by hand. Each kind is made by its module in scripts/readme/:
experiments.py (an experiment's summary.json and compare.json; SECTIONS), results.py (the
Results section: issue 14's sweeps task by task, and what their PLAN.md plans and is not
committed yet; its summary at the README's top; each task's figure, drawn by gains.py beside
its summaries) and benchmarks.py (benchmarks/results/<name>.json; BENCHMARKS).
tests/test_readme_generated.py checks that the README is what this script writes.

    python scripts/update_readme.py           # rewrite README.md
    python scripts/update_readme.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import sys

from readme import common
from readme.benchmarks import BENCHMARKS, benchmark_section
from readme.experiments import SECTIONS, section
from readme.results import headline_section, results_section, stale_figures, write_figures


def render(readme: str) -> str:
    """``readme`` with every generated section rewritten; each section's markers must be there."""
    texts = {name: lambda folder=folder: section(folder) for name, folder in SECTIONS.items()}
    texts.update({name: lambda name=name: benchmark_section(name) for name in BENCHMARKS})
    texts["results"] = results_section
    texts["headline"] = headline_section
    for name, text in texts.items():
        begin, end = f"<!-- generated:{name} -->\n", f"<!-- /generated:{name} -->"
        head, found_begin, rest = readme.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found_begin and found_end):
            raise SystemExit(f"README.md: no {begin.strip()} ... {end} markers")
        readme = head + begin + text() + end + tail
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    readme_path = common.ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    updated = render(readme)
    if args.check:
        if updated != readme:
            sys.exit("README.md is out of date: run python scripts/update_readme.py")
        stale = stale_figures()
        if stale:
            sys.exit(f"{', '.join(stale)} out of date: run python scripts/update_readme.py")
        return 0
    readme_path.write_text(updated, encoding="utf-8")
    write_figures()
    return 0


if __name__ == "__main__":
    sys.exit(main())
