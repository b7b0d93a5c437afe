"""Rewrite the README's generated sections from the committed experiment summaries.

A generated section sits between ``<!-- generated:NAME -->`` and ``<!-- /generated:NAME -->``
and is made from ``experiments/<folder>/summary.json`` (``advnlp compare``'s summary) and
``compare.json`` (its settings), never typed by hand. A new experiment plugs in with one entry
in SECTIONS and its two markers in the README. tests/test_readme_generated.py checks that the
README is what this script writes.

    python scripts/update_readme.py           # rewrite README.md
    python scripts/update_readme.py --check   # exit 1 if README.md is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))  # this checkout's advnlp, installed or not

from advnlp.experiment.report import BASELINE, _delta, _p, _percent  # noqa: E402

# section name in the README -> folder of the experiment it shows
SECTIONS = {"demo": "experiments/demo"}


def setting_line(settings: dict) -> str:
    """One sentence with the comparison's settings, from its compare.json."""
    shared = settings["shared"]
    examples = shared["max_train_examples"]
    seeds = ", ".join(str(s) for s in settings["seeds"])
    model = f"`{shared['model']}`"
    if shared.get("layers") is not None:
        model += f" (first {shared['layers']} layers)"
    lr = "" if shared.get("lr") is None else f", lr {shared['lr']:g}"
    return (
        f"{model}, {'all' if examples is None else f'{examples:,}'} training "
        f"examples, {shared['epochs']} epochs, batch {shared['batch_size']}, max length "
        f"{shared['max_length']}{lr}, {shared['precision']}, seeds {seeds}; dev accuracy in % "
        "(mean ± sample std over seeds), Δ in points against the same seeds' "
        f"`{BASELINE}` runs, McNemar's b/c on the pooled dev predictions "
        f"(b: `{BASELINE}` right, method wrong)."
    )


def table(summary: dict) -> str:
    """The summary's groups as a markdown table: accuracy and the paired tests, no timings
    (they vary from machine to machine; summary.md has them)."""
    lines = [
        f"| method | ε | dev accuracy % | Δ vs {BASELINE} (points) | paired t p | McNemar b/c, p |",
        "|---|---|---|---|---|---|",
    ]
    for group in summary["groups"]:
        versus = group["vs_baseline"] or {}
        test = versus.get("mcnemar") or {}
        mcnemar = "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"
        cells = [
            group["method"],
            "—" if group["epsilon"] is None else f"{group['epsilon']:g}",
            _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
            _delta(group["vs_baseline"]),
            _p(versus.get("paired_t_p")),
            mcnemar,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def section(folder: str) -> str:
    """The generated text of one section, from ``folder``'s summary.json and compare.json (a
    note saying how to make them while they are not committed yet)."""
    path = ROOT / folder
    stamp = f"<!-- written by scripts/update_readme.py from {folder}; do not edit by hand -->\n"
    if not (path / "summary.json").exists():
        return (
            f"{stamp}No summary is committed in `{folder}/` yet: copy `summary.json`, "
            "`summary.md` and `compare.json` of a finished `advnlp compare` (or `advnlp demo`) "
            "there and run `python scripts/update_readme.py`.\n"
        )
    summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    settings = json.loads((path / "compare.json").read_text(encoding="utf-8"))
    return f"{stamp}{setting_line(settings)}\n\n{table(summary)}\n"


def render(readme: str) -> str:
    """``readme`` with every generated section rewritten; each section's markers must be there."""
    for name, folder in SECTIONS.items():
        begin, end = f"<!-- generated:{name} -->\n", f"<!-- /generated:{name} -->"
        head, found_begin, rest = readme.partition(begin)
        _, found_end, tail = rest.partition(end)
        if not (found_begin and found_end):
            raise SystemExit(f"README.md: no {begin.strip()} ... {end} markers")
        readme = head + begin + section(folder) + end + tail
    return readme


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if README.md is out of date")
    args = parser.parse_args()
    readme_path = ROOT / "README.md"
    readme = readme_path.read_text(encoding="utf-8")
    updated = render(readme)
    if args.check:
        if updated != readme:
            sys.exit("README.md is out of date: run python scripts/update_readme.py")
        return 0
    readme_path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
