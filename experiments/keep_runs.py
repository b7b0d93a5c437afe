"""Keep a sweep's finished runs in git, so that a sweep spread over several machines goes on where
it stopped: the sweep folder (/work/sweeps/NAME) lives outside git and does not outlive the
machine; models and checkpoints are too big for git, but a finished and attacked run needs
neither to be skipped and summarized by ``advnlp compare``.

    python experiments/keep_runs.py save NAME [OUT]     # OUT/*/runs/* -> experiments/NAME/*/runs/
    python experiments/keep_runs.py restore NAME [OUT]  # the reverse, where OUT lacks the run

OUT defaults to /work/sweeps/NAME.

A run is kept once it is finished and attacked (results.json and attack/attack.json present), and
with it its compare folder's compare.json (compare wants it in a folder that holds runs). What
is kept of a run is what compare reads from it: run.json, results.json (label ids, no text),
attack/attack.json, and attack/examples.jsonl cut down to the fields that pair its outcomes (the
attack, its budget or radius, the gold label and the prediction under attack): the dev texts and
their adversarial versions are data from ../shared/data and stay out of git.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEPT_FIELDS = ("attack", "budget", "radius", "gold", "adversarial_prediction")
COPIED = ("run.json", "results.json", "attack/attack.json")
EXAMPLES = "attack/examples.jsonl"


def finished(run: Path) -> bool:
    """Whether ``run`` is a finished and attacked run (what a restored copy must be)."""
    return (run / "results.json").is_file() and (run / "attack" / "attack.json").is_file()


def keep(run: Path, target: Path) -> None:
    """Copy what compare reads from ``run`` into ``target`` (written whole, then renamed). Two
    drivers of one sweep (one per compare folder) may keep the same run at once: each writes its
    own partial copy, and the one that finds ``target`` there when it renames drops its copy."""
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    for name in COPIED:
        (partial / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / name, partial / name)
    with (run / EXAMPLES).open(encoding="utf-8") as source:
        rows = [json.loads(line) for line in source if line.strip()]
    (partial / EXAMPLES).write_text(
        "".join(json.dumps({k: row.get(k) for k in KEPT_FIELDS}) + "\n" for row in rows),
        encoding="utf-8",
    )
    try:
        partial.rename(target)
    except OSError:
        if not target.is_dir():
            raise
        shutil.rmtree(partial)


def save(kept: Path, out: Path) -> int:
    """Keep every finished run of the sweep folder ``out`` in ``kept`` (experiments/NAME) that
    is not kept yet; returns how many were kept. A linked run (a baseline reused by several
    compare folders) is kept as the same relative link: the README checks that the folders'
    baselines are one run, in one place."""
    count = 0
    for run in sorted(out.glob("*/runs/*")):
        folder = kept / run.parent.parent.name
        target = folder / "runs" / run.name
        if not finished(run) or target.exists() or target.is_symlink():
            continue
        if not (run.parent.parent / "compare.json").is_file():  # not a compare folder (yet)
            print(f"not kept {run}: {run.parent.parent} holds no compare.json")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if not (folder / "compare.json").exists():  # collect.sh's copy, when there, is newer
            shutil.copyfile(run.parent.parent / "compare.json", folder / "compare.json")
        if run.is_symlink():
            try:
                target.symlink_to(os.path.relpath(run.resolve(), run.parent))
            except FileExistsError:  # the other driver of this sweep kept it just now
                continue
        else:
            keep(run, target)
        print(f"kept {run} -> {target}")
        count += 1
    return count


def restore(kept: Path, out: Path) -> int:
    """Copy the runs kept in ``kept`` into the sweep folder ``out`` where it lacks them (runs
    first, then the links to them, each where its run is there)."""
    count = 0
    found = [r for r in sorted(kept.glob("*/runs/*")) if not r.name.endswith(".partial")]
    for run_kept in sorted(found, key=Path.is_symlink):
        folder = out / run_kept.parent.parent.name
        run = folder / "runs" / run_kept.name
        if run.exists() or run.is_symlink():
            continue
        link = os.readlink(run_kept) if run_kept.is_symlink() else None
        if link is not None and not Path(os.path.normpath(run.parent / link)).exists():
            print(f"not restored {run}: it links to {link}, which is not there")
            continue
        run.parent.mkdir(parents=True, exist_ok=True)
        if not (folder / "compare.json").exists():
            shutil.copyfile(run_kept.parent.parent / "compare.json", folder / "compare.json")
        if link is not None:
            run.symlink_to(link)
        else:
            shutil.copytree(run_kept, run)
        print(f"restored {run}")
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("verb", choices=("save", "restore"))
    parser.add_argument("name", help="the sweep: a folder of experiments/ (tnews_e5, ...)")
    parser.add_argument("out", nargs="?", help="the sweep's folder (default: /work/sweeps/NAME)")
    args = parser.parse_args(argv)
    if not (HERE / args.name).is_dir():
        parser.error(f"name: no folder experiments/{args.name}")
    out = Path(args.out or f"/work/sweeps/{args.name}")
    count = (save if args.verb == "save" else restore)(HERE / args.name, out)
    print(f"{args.verb}: {count} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
