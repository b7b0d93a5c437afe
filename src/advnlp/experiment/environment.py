"""Which process this is, and what a run ran on: package versions, device, CPU, threads, and
the hashes of its tokenizer and data (recorded in results.json; ``advnlp env`` prints the
versions). Heavy libraries are imported inside the functions."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

# What results.json records, and what `advnlp env` prints (with the optional extras).
RUN_PACKAGES = (
    "advnlp",
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "tokenizers",
    "numpy",
    "scikit-learn",
)


def process_state() -> Any:
    """accelerate's PartialState: rank and barriers under torchrun / accelerate launch (a no-op
    in one process). The Trainer later reuses the same state."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main_process() -> bool:
    """Rank 0 of a job started by torchrun or accelerate launch, or a single process.

    Asked of accelerate (the state the Trainer uses), not of ``$RANK`` alone: accelerate also
    reads the ranks MPI launchers set (``accelerate launch`` on several CPU machines).
    """
    return bool(process_state().is_main_process)


def use_deterministic_algorithms() -> None:
    """PyTorch's deterministic kernels, so that a seeded run gives the same numbers every time
    on one machine (same device kind, thread count and library versions).

    On CPU no cost could be told from noise (benchmarks/determinism_cost.py). cuBLAS is
    reproducible only with a fixed workspace, read when it first starts, hence the variable;
    an operation without a deterministic kernel warns instead of stopping the run.
    """
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def package_versions(packages: tuple[str, ...] = RUN_PACKAGES) -> dict[str, str]:
    """Python's and each package's version ("not installed" where it is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def environment() -> dict[str, Any]:
    """What else changes a run's numbers: the device, the CPU and the thread count."""
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return {
        "device": device,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "advnlp_source": source_commit(),
    }


def hardware_label(environment: dict[str, Any] | None) -> str | None:
    """What a run's step times depend on, in words: "cpu (AMD EPYC, 2 threads)"; None for a run
    recorded before advnlp wrote its environment."""
    if not environment:
        return None
    threads = environment.get("torch_threads")
    unit = "thread" if threads == 1 else "threads"
    return f"{environment.get('device')} ({environment.get('cpu')}, {threads} {unit})"


def source_commit(root: Path | None = None) -> str | None:
    """The git commit of the advnlp code in use when it runs from a git checkout (an editable
    install: a sweep that spans sessions may run several), with "+modified" if src/ differs
    from it; None for an installed package. ``root``: the checkout (default: this file's)."""
    import subprocess

    root = root or Path(__file__).resolve().parents[3]  # src/advnlp/experiment/ -> checkout
    if not (root / ".git").exists() or not (root / "src" / "advnlp").is_dir():
        return None
    git = ["git", "-C", str(root)]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return f"{commit}+modified" if changes else commit or None


def _cpu_name() -> str | None:
    """The CPU model (Linux's /proc/cpuinfo; platform.processor() is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def tokenizer_hash(tokenizer: Any) -> str | None:
    """sha256 of the tokenizer's definition: its tokenizer.json with the truncation and padding
    state cleared (encoding sets them, so files saved after use differ only there)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    definition = json.loads(backend.to_str())
    definition["truncation"] = definition["padding"] = None
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_hash(spec: str | None) -> str | None:
    """sha256 of a data file (``sha256sum FILE``), or of a save_to_disk folder's files (paths
    and contents, in path order); None for a Hub dataset or no file."""
    if spec is None or spec.startswith("hf:"):
        return None
    path = Path(spec)
    if not path.exists():
        head, _, _ = spec.rpartition(":")  # DIR:SPLIT
        path = Path(head)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()
