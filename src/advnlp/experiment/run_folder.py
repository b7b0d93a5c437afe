"""The output folders advnlp writes: where each file goes, what state a run's folder is in, its
checkpoints, and the rank-0 hand-off of the tokenizer under torchrun / accelerate launch.

A run's folder, as the run fills it::

    run.json          the configuration (written first: marks the folder as an advnlp run)
    tokenizer/        the tokenizer (scratch-small trains it; saved before training starts)
    checkpoints/      the Trainer's per-epoch checkpoints (for --resume; removed at the end)
    model/            the best-on-dev model + tokenizer (save_pretrained; complete or absent)
    results.json      written last: the run is complete exactly when this file exists
"""

from __future__ import annotations

import enum
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .environment import process_state
from .io import LOCK_NAME, check_writable, make_folder, write_folder_atomic, write_json_atomic
from .results import RESULTS_NAME, RunResult
from .run_config import RunConfig

log = logging.getLogger(__name__)


class RunState(enum.Enum):
    """What ``advnlp train`` does with a run's folder."""

    NEW = "new"  # start the run (in an empty folder, or one --overwrite empties)
    RESUME = "resume"  # go on from the last complete checkpoint
    DONE = "done"  # finished: read its results, train nothing


def open_run(
    config: RunConfig, *, resume: bool, overwrite: bool
) -> tuple[RunFolder, Any, RunState]:
    """A run's folder, its processes (accelerate's state) and the folder's state for this run,
    the config checked first; every rank has looked at the folder before rank 0 writes in it."""
    config.validate()
    folder = RunFolder(config.output)
    processes = process_state()
    processes.wait_for_everyone()  # every rank checks the folder before rank 0 writes in it
    state = folder.state(config, resume=resume, overwrite=overwrite)
    processes.wait_for_everyone()
    return folder, processes, state


class OutputFolder:
    """A folder advnlp writes in (a run's or a comparison's): its lock and its tokenizer."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    @property
    def tokenizer(self) -> Path:
        return self.path / "tokenizer"

    def saved_tokenizer(self) -> Path | None:
        """The tokenizer folder, if a complete tokenizer was saved there."""
        return self.tokenizer if (self.tokenizer / "tokenizer_config.json").exists() else None

    def share_tokenizer(self, tokenizer: Any, processes: Any) -> Any:
        """The rank-0 hand-off: rank 0, passing the tokenizer it made (or loaded), saves it here
        unless one is saved already; every rank waits; a rank that passes None loads what rank
        0 saved. Without this, each rank would train its own scratch tokenizer."""
        if processes.is_main_process and not self.tokenizer.exists():
            write_folder_atomic(self.tokenizer, tokenizer.save_pretrained)
        processes.wait_for_everyone()
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer)
        return tokenizer


class RunFolder(OutputFolder):
    """The output folder of one run (``advnlp train --output``, or one of compare's runs)."""

    @property
    def config_file(self) -> Path:
        return self.path / "run.json"

    @property
    def results(self) -> Path:
        return self.path / RESULTS_NAME

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def started(self) -> bool:
        return self.config_file.exists()

    @property
    def finished(self) -> bool:
        return self.results.exists()

    def state(self, config: RunConfig, *, resume: bool, overwrite: bool) -> RunState:
        """Check the folder against the flags, writing nothing."""
        out = self.path
        check_writable(out)  # a file in the way, or a folder we may not write in
        if resume and overwrite:
            raise UsageError("--resume and --overwrite contradict each other; pass one")
        if resume:
            if not self.started:
                raise UsageError(
                    f"--resume: {out} holds no advnlp run to resume (no run.json); "
                    "start the run without --resume"
                )
            saved = self.saved_config()
            for key, value in config.to_json().items():
                if key not in ("output", "keep_checkpoints") and saved.get(key) != value:
                    raise UsageError(
                        f"--resume: {out} was started with {key}={saved.get(key)!r}, not "
                        f"{value!r}; resume with the flags it was started with"
                    )
            return RunState.DONE if self.finished else RunState.RESUME
        if out.is_dir() and any(out.iterdir()):
            if not overwrite:
                raise UsageError(
                    f"--output {out}: the folder is not empty; pass --overwrite to replace the "
                    "run in it, --resume to continue it, or choose another folder"
                )
            if not self.started and not self.finished:
                raise UsageError(
                    f"--overwrite: {out} does not hold an advnlp run (no run.json), so its files "
                    "are kept; choose another --output"
                )
        return RunState.NEW

    def saved_config(self) -> dict[str, Any]:
        """The config in run.json (fields it predates at their defaults)."""
        return RunConfig.with_defaults(
            json.loads(self.config_file.read_text(encoding="utf-8"))["config"]
        )

    def start(self, config: RunConfig) -> None:
        """Empty (an advnlp run's) folder and mark it with run.json."""
        if self.path.is_dir():
            shutil.rmtree(self.path)
        make_folder(self.path)
        write_json_atomic(self.config_file, {"config": config.to_json()})

    def read_result(self) -> RunResult:
        """The saved results; ``config.output`` names this folder if the run was moved since
        (readers of the run's other files, e.g. its attack results, look there)."""
        result = RunResult.load(self.results)
        saved = result.config.output
        if not saved or Path(saved).resolve() != self.path.resolve():  # a link keeps its target
            result.config.output = str(self.path)
        return result

    def finish(
        self, result: RunResult, save_model: Callable[[Path], None], *, keep_checkpoints: bool
    ) -> None:
        """Save the best model, then results.json (last: it marks the run complete), then
        remove the checkpoints unless asked to keep them. Rank 0 only."""
        write_folder_atomic(self.model, save_model)
        result.save(self.results)
        if not keep_checkpoints:
            shutil.rmtree(self.checkpoints, ignore_errors=True)

    def last_checkpoint(self, *, prune: bool = True) -> Path | None:
        """The newest checkpoint whose files are all whole (see ``checkpoint_problem``).

        A run killed while writing a checkpoint, or a disk that lost part of one, leaves a
        partial folder: it is skipped for the one before it, with a warning (and removed if
        ``prune``: rank 0 says it once and clears the way for the checkpoint saved again).
        """
        if not self.checkpoints.is_dir():
            return None
        found = sorted(
            (p for p in self.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
            key=lambda p: int(p.name.split("-")[-1]),
            reverse=True,
        )
        for path in found:
            problem = checkpoint_problem(path)
            if problem is None:
                return path
            if prune:
                later = "; trying the one before it" if path != found[-1] else ""
                log.warning("--resume: skipping %s: %s%s", path, problem, later)
                shutil.rmtree(path, ignore_errors=True)
        if found and prune:
            log.warning(
                "--resume: no complete checkpoint is left; the run starts from the beginning"
            )
        return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None if it can.

    Reads every file the Trainer wrote, cheaply: JSON files parse; a safetensors file is as
    long as its header says; torch files (zip archives) pass their CRC check.
    """
    import zipfile

    if not (path / "trainer_state.json").is_file():  # the Trainer writes it last
        return "no trainer_state.json (the checkpoint was not finished)"
    for file in sorted(path.iterdir()):
        try:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
            elif file.suffix == ".safetensors":
                with file.open("rb") as f:
                    size = int.from_bytes(f.read(8), "little")
                    header = json.loads(f.read(size))
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
                if file.stat().st_size != 8 + size + max(ends, default=0):
                    return f"{file.name} is truncated"
            elif file.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(file) as archive:
                    if archive.testzip() is not None:
                        return f"{file.name} is corrupt"
        except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile):
            return f"{file.name} is truncated or corrupt"
    return None
