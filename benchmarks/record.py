"""What every benchmark writes beside its numbers: the machine and the moment it ran on.

Timings mean little without their context: ``context()`` records the command, the date, the CPU
count, torch's thread count and version, and the load average when the run started (a machine
shared with other jobs makes absolute times pessimistic; ratios measured side by side in one run
are what carries over). ``write()`` puts a benchmark's results and that context in one JSON file,
which ``scripts/update_readme.py`` renders into the README.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def context(note: str | None = None) -> dict:
    """The machine and the command, taken when the benchmark starts (call it first)."""
    return {
        "command": shlex.join(["python", _relative(sys.argv[0]), *sys.argv[1:]]),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "nice": os.nice(0),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "note": note,
    }


def add_arguments(parser) -> None:
    """``--output FILE`` and ``--note TEXT``, the same in every benchmark."""
    parser.add_argument("--output", type=Path, help="write the results and context here (JSON)")
    parser.add_argument(
        "--note", help="what the JSON should say about the machine, e.g. 'shared with 5 jobs'"
    )


def write(path: Path | None, name: str, run_context: dict, results: dict) -> None:
    """Write ``{"benchmark", "context", **results}`` to ``path`` (nothing when it is None)."""
    if path is None:
        return
    run_context = {**run_context, "load_average_end": [round(x, 2) for x in os.getloadavg()]}
    data = {"benchmark": name, "context": run_context, **results}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _relative(script: str) -> str:
    try:
        return str(Path(script).resolve().relative_to(ROOT))
    except ValueError:
        return script


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None
