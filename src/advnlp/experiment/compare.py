"""A paired comparison: methods x epsilons x seeds on the same data, then a report.

Paired: every run with seed s starts from the same initial weights and sees the data in the
same order, whatever the method, so differences between methods are not differences of luck.
The sweep is resumable: finished runs (``results.json`` present) are skipped, interrupted ones
resume from their last checkpoint. Layout::

    compare.json                 the comparison's configuration
    tokenizer/                   shared by all runs (scratch-small trains it once)
    runs/<method>[-eps<e>]-seed<s>/   one ``advnlp train`` output folder per run
    summary.json, summary.md, accuracy_vs_epsilon.png, training_curves.png
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import hyperparameters, resolve
from .io import write_json_atomic
from .train import RunConfig, make_tokenizer, prepare_data, process_state, run


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
            accepted = hyperparameters(method)
            kwargs = {k: v for k, v in self.hyperparameters.items() if k in accepted}
            epsilons = self.epsilons if "epsilon" in accepted else [None]
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
        if not self.methods:
            raise UsageError("--methods: give at least one method, e.g. none,fgm,gp")
        for method in self.methods:
            resolve(method)
        if not self.seeds:
            raise UsageError("--seeds: give at least one seed, e.g. 0,1,2")
        if len(set(self.seeds)) != len(self.seeds):
            raise UsageError(f"--seeds: {self.seeds} repeats a seed")
        if any(e < 0 for e in self.epsilons):
            raise UsageError(f"--epsilon: {self.epsilons} has a negative value")
        takers = [m for m in self.methods if "epsilon" in hyperparameters(m)]
        if takers and not self.epsilons:
            raise UsageError(f"--epsilon: {', '.join(takers)} need at least one epsilon")
        for key in self.hyperparameters:
            if not any(key in hyperparameters(m) for m in self.methods):
                raise UsageError(f"--{key.replace('_', '-')}: none of {self.methods} takes it")
        for config in self.plan():
            config.validate()

    def shared_settings(self) -> dict[str, Any]:
        """What must not change when a sweep is resumed (more methods or seeds may be added)."""
        settings = self.base.to_json()
        for key in ("method", "method_kwargs", "seed", "output", "keep_checkpoints"):
            settings.pop(key)
        settings["hyperparameters"] = self.hyperparameters
        return settings


def prepare_folder(out: Path, config: CompareConfig, *, overwrite: bool) -> None:
    marker = out / "compare.json"
    if out.exists() and not out.is_dir():
        raise UsageError(f"--output {out}: exists and is not a folder")
    if marker.exists():
        saved = json.loads(marker.read_text(encoding="utf-8"))["shared"]
        changed = [k for k, v in config.shared_settings().items() if saved.get(k) != v]
        if changed and not overwrite:
            key = changed[0]
            raise UsageError(
                f"--output {out}: a comparison with {key}={saved.get(key)!r} is there, not "
                f"{config.shared_settings()[key]!r}; pass --overwrite to start it again, or "
                "choose another folder"
            )
        if changed:
            shutil.rmtree(out)
    elif out.is_dir() and any(out.iterdir()):
        raise UsageError(
            f"--output {out}: the folder is not empty and holds no advnlp comparison; "
            "choose another folder"
        )
    elif overwrite and out.is_dir():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        marker,
        {
            "shared": config.shared_settings(),
            "methods": config.methods,
            "epsilons": config.epsilons,
            "seeds": config.seeds,
        },
    )


def compare(config: CompareConfig, *, overwrite: bool = False, progress: bool = True) -> dict:
    """Run (or finish) the sweep and write the report; returns the summary."""
    from tqdm.auto import tqdm

    from .report import write_report

    config.validate()
    out = Path(config.base.output)
    processes = process_state()
    main = processes.is_main_process
    if main:
        prepare_folder(out, config, overwrite=overwrite)
    processes.wait_for_everyone()
    plan = config.plan()
    prepared = None
    results = []
    bar = tqdm(plan, desc="runs", unit="run", disable=not (progress and main), dynamic_ncols=True)
    for run_config in bar:
        folder = Path(run_config.output)
        bar.set_postfix_str(folder.name)
        if (folder / "results.json").exists():
            results.append(json.loads((folder / "results.json").read_text(encoding="utf-8")))
            continue
        if prepared is None:  # load data and make the tokenizer once, only if a run needs them
            prepared = prepare_data(config.base)
            if main:  # trains (scratch models) and saves it
                prepared.tokenizer = make_tokenizer(config.base, prepared, out / "tokenizer")
            processes.wait_for_everyone()
            if not main:  # loads what rank 0 saved
                prepared.tokenizer = make_tokenizer(config.base, prepared, out / "tokenizer")
        resume = (folder / "run.json").exists()
        results.append(run(run_config, resume=resume, prepared=prepared, progress=False))
        if main:
            bar.write(_one_line(results[-1]))
    summary = write_report(results, out) if main else {}
    processes.wait_for_everyone()
    return summary


def _one_line(results: dict[str, Any]) -> str:
    config = results["config"]
    kwargs = ", ".join(
        f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
        for k, v in config["method_kwargs"].items()
    )
    return (
        f"{config['method']}({kwargs}) seed {config['seed']}: dev accuracy "
        f"{100 * results['dev']['accuracy']:.2f}% (best epoch {results['best_epoch']})"
    )
