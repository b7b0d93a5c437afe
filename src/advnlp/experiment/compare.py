"""A paired comparison: methods x epsilons x seeds on the same data, then a report.

Paired: every run with seed s starts from the same initial weights and sees the data in the
same order, whatever the method, so differences between methods are not differences of luck.
The sweep is resumable: finished runs (``results.json`` present) are skipped, interrupted ones
resume from their last checkpoint. Layout::

    .lock                        held while a process writes here (holds its pid)
    compare.json                 the comparison's configuration
    tokenizer/                   shared by all runs (scratch-small trains it once)
    runs/<method>[-eps<e>]-seed<s>/   one ``advnlp train`` output folder per run
    summary.json, summary.md, accuracy_vs_epsilon.png, training_curves.png
"""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from ..registry import accepted, check, hyperparameters, resolve
from .environment import process_state
from .io import LOCK_NAME, check_writable, folder_lock, make_folder, write_json_atomic
from .results import RunResult
from .run_config import RunConfig
from .run_folder import OutputFolder, RunFolder
from .train import Prepared, make_tokenizer, prepare_data, run

COMPARE_NAME = "compare.json"  # the comparison's settings: marks the folder as one


@dataclass
class CompareConfig:
    """``base`` holds the data, model and training settings shared by every run."""

    base: RunConfig
    methods: list[str]
    epsilons: list[float]
    seeds: list[int]
    hyperparameters: dict[str, Any] = field(default_factory=dict)  # alpha, steps, ... if taken

    def plan(self) -> list[RunConfig]:
        """One RunConfig per (method, epsilon, seed); methods without epsilon run once per seed."""
        runs = []
        for method in self.methods:
            kwargs = accepted(method, self.hyperparameters)
            epsilons = self.epsilons if "epsilon" in hyperparameters(method) else [None]
            for epsilon in epsilons:
                for seed in self.seeds:
                    name = resolve(method).name
                    method_kwargs = dict(kwargs)
                    if epsilon is not None:
                        method_kwargs["epsilon"] = epsilon
                    label = name if epsilon is None else f"{name}-eps{epsilon:g}"
                    output = Path(self.base.output) / "runs" / f"{label}-seed{seed}"
                    runs.append(
                        replace(
                            self.base,
                            method=name,
                            method_kwargs=method_kwargs,
                            seed=seed,
                            output=str(output),
                        )
                    )
        return runs

    def validate(self) -> None:
        """Raise UsageError naming the flag of the first bad value; writes nothing."""
        if not self.methods:
            raise UsageError("--methods: give at least one method, e.g. none,fgm,gp")
        names = [_method(method) for method in self.methods]
        if len(set(names)) != len(names):
            raise UsageError(f"--methods: {', '.join(self.methods)} names a method twice")
        if not self.seeds:
            raise UsageError("--seeds: give at least one seed, e.g. 0,1,2")
        if len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"--seeds: {self.seeds} repeats a seed")
        if any(not 0 <= seed < 2**32 for seed in self.seeds):
            raise UsageError(f"--seeds: {self.seeds}: seeds go from 0 to 2**32 - 1")
        if any(e < 0 for e in self.epsilons):
            raise UsageError(f"--epsilon: {self.epsilons} has a negative value")
        if len(set(self.epsilons)) != len(self.epsilons):
            raise UsageError(f"--epsilon: {self.epsilons} repeats a value")
        takers = [m for m in names if "epsilon" in hyperparameters(m)]
        if takers and not self.epsilons:
            raise UsageError(f"--epsilon: {', '.join(takers)} need at least one epsilon")
        values = [("epsilon", e) for e in self.epsilons] + list(self.hyperparameters.items())
        for key, value in values:
            flag = "--" + key.replace("_", "-")
            users = [m for m in names if key in hyperparameters(m)]
            if not users:
                raise UsageError(f"{flag}: none of {', '.join(self.methods)} takes it")
            for method in users:  # each value on its own, so the error names its flag
                try:
                    check(method, **{key: value})
                except ConfigError as error:
                    raise UsageError(f"{flag}: {error}") from None
        for config in self.plan():
            config.validate()

    def shared_settings(self) -> dict[str, Any]:
        """What must not change when a sweep is resumed (more methods or seeds may be added)."""
        settings = self.base.to_json()
        for key in ("method", "method_kwargs", "seed", "output", "keep_checkpoints"):
            settings.pop(key)
        settings["hyperparameters"] = self.hyperparameters
        return settings


def check_folder(out: Path, config: CompareConfig, *, overwrite: bool) -> bool:
    """Check ``--output`` against the flags, writing nothing; True if it must be emptied first."""
    check_writable(out)
    marker = out / COMPARE_NAME
    if marker.exists():
        saved = RunConfig.with_defaults(json.loads(marker.read_text(encoding="utf-8"))["shared"])
        changed = [k for k, v in config.shared_settings().items() if saved.get(k) != v]
        if changed and not overwrite:
            key = changed[0]
            raise UsageError(
                f"--output {out}: a comparison with {key}={saved.get(key)!r} is there, not "
                f"{config.shared_settings()[key]!r}; pass --overwrite to start it again, or "
                "choose another folder"
            )
        return bool(changed)
    if out.is_dir() and any(p.name != LOCK_NAME for p in out.iterdir()):
        raise UsageError(
            f"--output {out}: the folder is not empty and holds no advnlp comparison; "
            "choose another folder"
        )
    return False


def prepare_folder(out: Path, config: CompareConfig, *, overwrite: bool) -> None:
    """Check the folder, then (holding its lock) empty it if --overwrite asks, and write
    compare.json. The caller holds ``folder_lock(out)``."""
    if check_folder(out, config, overwrite=overwrite):
        for path in out.iterdir():
            if path.is_dir():
                shutil.rmtree(path)
            elif path.name != LOCK_NAME:
                path.unlink()
    make_folder(out)
    write_json_atomic(
        out / COMPARE_NAME,
        {
            "shared": config.shared_settings(),
            "methods": config.methods,
            "epsilons": config.epsilons,
            "seeds": config.seeds,
        },
    )


def compare(
    config: CompareConfig, *, overwrite: bool = False, progress: bool = True, attack: Any = None
) -> dict:
    """Run (or finish) the sweep and write the report; returns the summary.

    Flags, the folder and the data are checked before anything is written. Rank 0 then holds
    the folder's lock throughout: a second ``compare`` on the same folder stops with a
    UsageError instead of writing beside this one. ``attack`` (an
    ``advnlp.robustness.compare.AttackSweep``) attacks every finished run's best model.
    """
    config.validate()
    if attack is not None:
        attack.check(config.base)
    out = OutputFolder(config.base.output)
    processes = process_state()
    main = processes.is_main_process
    restart = check_folder(out.path, config, overwrite=overwrite)
    plan = config.plan()
    # finished runs are read now, so that a broken results.json stops the sweep before it trains
    finished = [] if restart else [RunFolder(c.output) for c in plan]
    done = {f.path: f.read_result() for f in finished if f.finished}
    pending = len(done) < len(plan)
    prepared = prepare_data(config.base) if pending else None  # data errors write nothing
    if prepared is not None and main:  # a model name that does not load also fails here
        saved = None if restart else out.saved_tokenizer()
        prepared.tokenizer = make_tokenizer(config.base, prepared, saved)
    processes.wait_for_everyone()  # every rank has looked before rank 0 writes
    with folder_lock(out.path) if main else nullcontext():
        if main:
            prepare_folder(out.path, config, overwrite=overwrite)
        if prepared is not None:  # every run uses the tokenizer rank 0 made (and trained)
            prepared.tokenizer = out.share_tokenizer(prepared.tokenizer, processes)
        processes.wait_for_everyone()
        return _run_all(config, plan, done, prepared, processes, progress, attack)


def _run_all(
    config: CompareConfig,
    plan: list[RunConfig],
    done: dict[Path, RunResult],
    prepared: Prepared | None,
    processes: Any,
    progress: bool,
    attack: Any = None,
) -> dict:
    """Train the runs that are not finished (resuming interrupted ones), then the report."""
    from tqdm.auto import tqdm

    from .report import write_report

    main = processes.is_main_process
    results = []
    bar = tqdm(plan, desc="runs", unit="run", disable=not (progress and main), dynamic_ncols=True)
    for run_config in bar:
        folder = RunFolder(run_config.output)
        bar.set_postfix_str(folder.path.name)
        if folder.path in done:  # finished: never trained again
            results.append(done[folder.path])
        else:
            assert prepared is not None, "compare() loads the data when a run is not finished"
            resumed = folder.started
            # the run's own step bar, under the runs bar: a run can take an hour on a CPU
            results.append(run(run_config, resume=resumed, prepared=prepared, progress=progress))
            if main:
                bar.write(_one_line(results[-1]))
        if attack is not None and main:  # skipped when the run's attack/ has the results
            # its bar under the runs bar, like training's: attacking a run can take minutes
            bar.write(attack.run(folder.path, progress=progress))
    summary = write_report(results, Path(config.base.output), attack) if main else {}
    processes.wait_for_everyone()
    return summary


def _method(name: str) -> str:
    try:
        return resolve(name).name
    except ConfigError as error:
        raise UsageError(f"--methods: {error}") from None


def _one_line(result: RunResult) -> str:
    config = result.config
    kwargs = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in config.method_kwargs.items()
    )
    line = (
        f"{config.method}({kwargs}) seed {config.seed}: dev accuracy "
        f"{100 * result.dev.accuracy:.2f}% (best epoch {result.best_epoch})"
    )
    if result.collapsed:
        line += f"; collapsed: {100 * result.dev_majority_share:.0f}% of dev predicted one class"
    return line
