"""Write summary.json / summary.md / the two plots for a set of finished runs into a folder.

Used where the runs of one comparison live in two sweep folders: a relative-epsilon sweep's
FGM runs and the ``none`` runs (same model, data, seeds) of the absolute sweep or the demo,
so that the summary pairs Δ by seed with ``none`` as the baseline. Also re-summarizes runs
made before the collapse guard (their results.json keep the dev predictions, from which
``collapsed_seeds`` is computed now).

    python experiments/relative_epsilon/resummarize.py OUT_DIR RUN_DIR [RUN_DIR ...]
"""

import sys
from pathlib import Path

from advnlp.experiment.report import write_report
from advnlp.experiment.results import RunResult


def main(argv: list[str]) -> int:
    out, *run_dirs = argv
    runs = [RunResult.load(Path(run) / "results.json") for run in run_dirs]
    Path(out).mkdir(parents=True, exist_ok=True)
    summary = write_report(runs, out)
    for group in summary["groups"]:
        accuracy = 100 * group["dev_accuracy_mean"]
        sys.stdout.write(
            f"{group['method']} {group['epsilon']}: {group['n']} seeds, dev {accuracy:.2f}%, "
            f"collapsed seeds {group['collapsed_seeds']}\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
