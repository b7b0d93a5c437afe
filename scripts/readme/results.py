"""The README's Results section (``generated:results``): the summaries of issue 14's sweeps,
task by task (RESULTS), with what their PLAN.md plans and is not committed yet."""

from __future__ import annotations

import json
import math
from pathlib import Path

from advnlp.experiment.environment import hardware_label
from advnlp.experiment.report import BASELINE, _delta, _p, _percent
from advnlp.robustness.compare import result_label

from . import common, gains
from .committed import baseline_runs, check_baselines, shown_groups, task_summaries
from .common import _attack_delta, markdown
from .findings import (
    BEAT,
    P_LIMIT,
    grid_headline,
    grid_lines,
    grid_sentences,
    headline_part,
    kept_sentence,
    method_gains,
    results_findings,
)
from .labels import epsilon_text, method_label, seed_text

# Issue 14's sweeps, shown in the README's "Results" section (generated:results): experiment
# folder -> its task. The compare folders each one plans come from its PLAN.md (the table whose
# first column is "compare folder"), so a planned folder with no committed summary is listed as
# pending; `bash experiments/collect.sh NAME` copies a finished folder's summary in.
RESULTS = {
    "experiments/tnews_e5": "TNEWS",
    "experiments/sst2_minilm": "SST-2",
    "experiments/epsilon_grid": "SST-2, epsilon grid",
}
HEADLINE = tuple(RESULTS)  # the tasks the README opens with
# Grids over epsilon: their compare plots against epsilon (where the gain peaks, where it
# collapses) are shown in the section, not only linked
CURVES = {"experiments/epsilon_grid": ("accuracy_vs_epsilon.png", "attack_vs_epsilon.png")}
DEVELOPMENT_TASKS = "TNEWS, SST-2 and the demo's reviews"  # issue 14: say which, for the reader


def _mcnemar(versus: dict) -> str:
    """ "b/c, p" of a vs_baseline's McNemar test, "—" without one."""
    test = versus.get("mcnemar") or {}
    return "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"


def results_table(found: dict[str, tuple[dict, dict]]) -> str:
    """Clean dev accuracy per method, with its paired comparison to none."""
    rows = []
    for name, group, settings in shown_groups(found):
        versus = group["vs_baseline"] or {}
        rows.append(
            [
                group["method"],
                epsilon_text(group, settings),
                seed_text(group["seeds"]),
                _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
                _delta(group["vs_baseline"]),
                _p(versus.get("paired_t_p")),
                _mcnemar(versus),
                seed_text(group.get("collapsed_seeds") or []) or "—",
                f"`{name}`",
            ]
        )
    headers = ["method", "ε", "seeds", "dev accuracy %", f"Δ vs {BASELINE} (points)"]
    headers += ["paired t p", "McNemar b/c, p", "collapsed seeds", "folder"]
    return markdown(headers, rows)


def results_attack_table(found: dict[str, tuple[dict, dict]]) -> str | None:
    """Accuracy under each attack setting per method, with its paired comparison to none; None
    when no summary of the task was attacked."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for result in (summary.get("robustness") or {}).get("results") or []:
            for group in result["groups"]:
                if group["method"] == BASELINE:
                    key = (result_label(result), baseline_runs(summary, group["seeds"]))
                    if key in shown:
                        continue
                    shown.add(key)
                versus = group["vs_baseline"] or {}
                rows.append(
                    [
                        result_label(result),
                        group["method"],
                        epsilon_text(group, settings),
                        seed_text(group["seeds"]),
                        str(group["n_examples"]),
                        _percent(group["clean_accuracy_mean"], group["clean_accuracy_std"]),
                        _percent(
                            group["accuracy_under_attack_mean"], group["accuracy_under_attack_std"]
                        ),
                        _attack_delta(group["vs_baseline"]),
                        _p(versus.get("paired_t_p")),
                        _mcnemar(versus),
                        f"`{name}`",
                    ]
                )
    if not rows:
        return None
    headers = ["attack", "method", "ε", "seeds", "examples", "clean %", "under attack %"]
    headers += [f"Δ vs {BASELINE} (points)", "paired t p", "McNemar b/c, p", "folder"]
    return markdown(headers, rows)


def gain_data(found: dict[str, tuple[dict, dict]]) -> dict:
    """What a task's figure (gains.py) draws: per method compared with none, in table order,
    its ``method_gains`` rounded as the tables show them; collapsed groups are left out (their Δ
    would set the scale) and named in "left_out"."""
    groups, left_out = [], []
    for name, group, settings in shown_groups(found):
        if (
            group["vs_baseline"] is None
            or group["vs_baseline"]["dev_accuracy_diff_points_mean"] is None
        ):
            continue
        label = method_label(group, settings)
        if group.get("collapsed_seeds"):
            left_out.append(f"{label} (`{name}`)")
            continue
        summary = found[name][0]
        gains = {
            where: [round(mean, 2), None if std is None else round(std, 2), outcome == BEAT]
            for where, (mean, std, outcome) in method_gains(summary, group).items()
        }
        groups.append({"label": label, "folder": name, "seeds": group["seeds"], "gains": gains})
    return {"groups": groups, "left_out": left_out}


def _figure(folder: str, task: str, found: dict[str, tuple[dict, dict]]) -> str:
    """The markdown of the task's figure, and what it shows; the figure itself is written by
    ``write_figures`` (update_readme.py) and checked by ``stale_figures``."""
    data = gain_data(found)
    caption = (
        f"Figure ([`{folder}/{gains.FIGURE}`]({folder}/{gains.FIGURE}), drawn from the summaries "
        f"above): Δ against `{BASELINE}` in points, mean ± std of the paired differences over "
        f"seeds, clean and under each attack; solid bars beat `{BASELINE}` by the rule above, "
        "pale ones did not"
    )
    if data["left_out"]:
        caption += f"; left out, collapsed: {', '.join(data['left_out'])}"
    return f"![{task}: Δ against {BASELINE} per method]({folder}/{gains.FIGURE})\n\n{caption}."


def write_figures() -> list[Path]:
    """Draw every task's figure from its committed summaries; returns the files written."""
    written = []
    for folder, task in RESULTS.items():
        _, found = task_summaries(folder)
        if found:
            path = common.ROOT / folder / gains.FIGURE
            gains.draw(gain_data(found), f"{task}: Δ against {BASELINE}", path)
            written.append(path)
    return written


def stale_figures() -> list[str]:
    """The tasks' figures that are missing or were drawn from other numbers than the committed
    summaries (the data stored in the PNG differs)."""
    stale = []
    for folder in RESULTS:
        _, found = task_summaries(folder)
        path = common.ROOT / folder / gains.FIGURE
        if found and gains.read(path) != json.loads(json.dumps(gain_data(found))):
            stale.append(str(path.relative_to(common.ROOT)))
    return stale


def _model(shared: dict) -> str:
    """compare.json's model, with the layers kept where a run cut them."""
    model = f"`{shared['model']}`"
    if shared.get("layers") is not None:
        model += f" (its first {shared['layers']} layers)"
    return model


def regime_line(settings: dict) -> str:
    """The task's regime, from compare.json (the same in all its folders: ``task_summaries``)."""
    shared = settings["shared"]
    model = _model(shared)
    train, dev = shared["max_train_examples"], shared["max_dev_examples"]
    return (
        f"Regime (`compare.json`): {model}; "
        + ("all the training examples" if train is None else f"{train:,} training examples")
        + "; "
        + ("all of dev" if dev is None else f"{dev:,} dev examples")
        + " (a subset is a fixed random sample, the same for every run; dev serves both to "
        f"choose the best epoch and for the accuracy reported); {shared['epochs']} "
        f"epochs, batch {shared['batch_size']}, max length {shared['max_length']}, lr "
        f"{shared['lr']:g}, warm-up ratio {shared['warmup_ratio']:g}, weight decay "
        f"{shared['weight_decay']:g}, {shared['precision']}."
    )


def compute_line(folder: str, found: dict[str, tuple[dict, dict]], counted: set[str]) -> str:
    """Training compute from the summaries: each run not counted before (a linked run counts
    once, where it was trained) adds its measured ``train_s`` (the time of its optimizer
    steps) or, for runs written before advnlp recorded it, an estimate (the steps of a run x
    its group's median step time). ``counted`` carries the runs counted by earlier tasks."""
    shared = next(iter(found.values()))[1]["shared"]
    plan = f"[`{folder}/PLAN.md`]({folder}/PLAN.md)"
    batch = shared["batch_size"] * (shared.get("gradient_accumulation") or 1)
    steps = None
    if shared["max_train_examples"] is not None:
        steps = shared["epochs"] * math.ceil(shared["max_train_examples"] / batch)
    measured, estimated, untimed = [], [], 0
    machines = set()
    for name, (summary, _) in found.items():
        groups = {(g["method"], g["epsilon"]): g for g in summary["groups"]}
        for run in summary.get("runs", []):
            path = run.get("path") or f"{folder}/{name}/{run['id']}"
            if path in counted:
                continue
            counted.add(path)
            if run.get("environment"):
                machines.add(hardware_label(run["environment"]))
            step = groups[(run["method"], run["epsilon"])]["median_step_time_s"]
            if run.get("train_s") is not None:
                measured.append(run["train_s"])
            elif steps is not None and step is not None:
                estimated.append(steps * step)
            else:
                untimed += 1
    parts = []
    if measured:
        parts.append(
            f"{len(measured)} runs measured: {sum(measured) / 3600:.1f} hours in their "
            "optimizer steps (wall time, on a machine shared with other work)"
        )
    if estimated:
        parts.append(
            f"{len(estimated)} runs from before advnlp recorded it, estimated as {steps:,} steps "
            f"x their group's median step time: {sum(estimated) / 3600:.1f} hours (low: the "
            "median discounts the stretches slowed by other jobs)"
        )
    if untimed:
        parts.append(f"{untimed} runs without a time")
    hardware = ", ".join(sorted(machines)) if machines else "not recorded in these summaries"
    return (
        f"Compute for this table (a run linked into several folders counted once; without the "
        f"dev evaluations and the attacks): {'; '.join(parts)}. Hardware: {hardware}; the "
        f"machine and its load are described in {plan}."
    )


def _command(folder: str) -> str:
    """The lines of PLAN.md's "Running" block that run the sweep and collect it."""
    text = (common.ROOT / folder / "PLAN.md").read_text(encoding="utf-8")
    lines = [line.split(" #")[0].strip() for line in text.splitlines()]
    commands = [line for line in lines if line.startswith("bash experiments/")]
    if not commands:
        raise SystemExit(f"{folder}/PLAN.md: no `bash experiments/...` command")
    return "\n".join(commands)


def _curves(folder: str, task: str, found: dict[str, tuple[dict, dict]]) -> str | None:
    """A grid's plots against epsilon (CURVES), one image per compare folder and plot; None
    for a task that is not a grid or has none of them committed."""
    images = [
        f"![{task}, {name}: {Path(png).stem.replace('_', ' ')}]({folder}/{name}/{png})"
        for name in found
        for png in CURVES.get(folder, ())
        if (common.ROOT / folder / name / png).exists()
    ]
    return "\n\n".join(images) or None


def _plots(folder: str, found: dict[str, tuple[dict, dict]]) -> str:
    links = [
        f"[{name}/{png.stem}]({folder}/{name}/{png.name})"
        for name in found
        for png in sorted((common.ROOT / folder / name).glob("*.png"))
    ]
    return "Plots: " + (", ".join(links) if links else "none committed") + "."


def _pending(planned: dict[str, list[int] | None], found: dict[str, tuple[dict, dict]]) -> str:
    """The planned folders with no summary, and the planned seeds a committed summary lacks."""
    absent = [f"`{name}`" for name in planned if name not in found]
    lacking = []
    for name, seeds in planned.items():
        if name in found:
            have = set(found[name][1]["seeds"])
            missing = [seed for seed in seeds or [] if seed not in have]
            if missing:
                lacking.append(f"seeds {seed_text(missing)} of `{name}`")
    waiting = []
    if absent:
        waiting.append(f"{', '.join(absent)} (no summary committed yet)")
    waiting += lacking
    return "Pending (planned in PLAN.md): " + ("; ".join(waiting) if waiting else "nothing") + "."


def task_results(folder: str, task: str, counted: set[str]) -> str:
    """One task's part of the Results section."""
    planned, found = task_summaries(folder)
    head = f"### {task} (`{folder}`)"
    command = f"Command (from the repository root):\n\n```bash\n{_command(folder)}\n```"
    if not found:
        return "\n\n".join([head, _pending(planned, found), command])
    check_baselines(folder, found)
    settings = next(iter(found.values()))[1]
    sentences = results_findings(task, found)
    kept = kept_sentence(task, found)
    if kept is not None:
        sentences.append(kept)
    if folder in CURVES:  # a grid: where the gain peaks and where it turns or collapses
        sentences += grid_sentences(task, found)
    parts = [head, regime_line(settings), results_table(found)]
    attacked = results_attack_table(found)
    if attacked is not None:
        parts.append(attacked)
    parts += ["\n".join(sentences), _figure(folder, task, found)]
    curves = _curves(folder, task, found)
    if curves is not None:
        parts.append(curves)
    parts += [
        compute_line(folder, found, counted),
        command,
        _plots(folder, found),
        _pending(planned, found),
    ]
    return "\n\n".join(parts)


def headline_section() -> str:
    """The README's summary of the Results near its top (``generated:headline``): per task, the
    seeds and model, and each method's ``headline_part`` (for a grid, each method's
    ``grid_headline``: where its gain peaks)."""
    stamp = (
        "<!-- written by scripts/update_readme.py from the Results' summaries; do not edit -->\n"
    )
    bullets = []
    for folder, task in RESULTS.items():
        if folder not in HEADLINE:
            continue
        _, found = task_summaries(folder)
        if not found:
            continue
        rows = shown_groups(found)
        seeds = sorted({s for _, group, _ in rows for s in group["seeds"]})
        parts, attacks = [], {}
        for name, group, settings in rows:
            summary = found[name][0]
            for result in (summary.get("robustness") or {}).get("results") or []:
                attacks[result_label(result)] = None
            if group["method"] != BASELINE and folder not in CURVES:
                parts.append(f"  - {headline_part(summary, settings, group, seeds)}")
        if folder in CURVES:  # a grid: where each method's gain peaks, not each epsilon
            parts = [f"  - {grid_headline(line)}" for line in grid_lines(found)]
        shared = next(iter(found.values()))[1]["shared"]
        train = shared["max_train_examples"]
        regime = _model(shared)
        regime += ", all training examples" if train is None else f", {train:,} training examples"
        regime += f", {shared['epochs']} epochs, seeds {seed_text(seeds)}"
        attacked = f"; attacks: {'; '.join(attacks)}" if attacks else ""
        bullets.append(f"- {task} ({regime}{attacked}):")
        bullets += parts
    if not bullets:
        return stamp + "No result committed yet (see Results).\n"
    intro = (
        "What it bought here, measured in a reduced CPU regime (Δ: accuracy points against "
        f"`{BASELINE}` on the same "
        f'seeds, mean over seeds; "{BEAT}" means above `{BASELINE}`\'s seed spread with a '
        f"paired t-test p < {P_LIMIT:g}; the tables, figures, commands and compute are under "
        "Results):"
    )
    return stamp + intro + "\n\n" + "\n".join(bullets) + "\n"


def results_section() -> str:
    """The README's Results section: issue 14's sweeps, task by task, from the committed
    summaries under RESULTS' folders."""
    folders = ", ".join(RESULTS)
    stamp = f"<!-- written by scripts/update_readme.py from {folders}; do not edit by hand -->\n"
    intro = (
        "Issue 14's sweeps, each through `advnlp compare` (paired seeds and data order, the "
        "best-dev checkpoint), in a reduced regime fixed before any result (each folder's "
        "PLAN.md says why, and names any setting changed after a result, with its reason). Dev "
        "accuracy in %: mean ± sample std over seeds; Δ: points against "
        f"the same seeds' `{BASELINE}` runs (± std of the paired differences), with the paired "
        "t-test over seeds and McNemar's b/c and p on the dev predictions pooled over seeds "
        f"(b: `{BASELINE}` right, method wrong). `{BASELINE}`'s runs are trained in one folder "
        "and linked into the task's others, except where a folder trained its own (its PLAN.md "
        "says why); each set of them is shown once. ε: with its unit "
        "and scope for the methods that take `epsilon_unit` or `scope`. Under attack: each "
        "run's best model attacked on a fixed dev sample, accuracy = share still right after "
        "the attack."
    )
    rule = (
        f'The sentences are decided by a rule in code: a method "beat none" when its mean Δ is '
        f"above `{BASELINE}`'s std over the same seeds (the seed spread) and the paired t-test "
        f'gives p < {P_LIMIT:g}; it "did not help" otherwise (and "did not help: worse than '
        f'none" when both hold the other way). The same rule under each attack, with '
        f"`{BASELINE}`'s accuracy under that attack."
    )
    development = (
        f"Tasks used while developing advnlp: {DEVELOPMENT_TASKS}; these results come from "
        "development tasks, so weigh them accordingly."
    )
    counted: set[str] = set()
    tasks = [task_results(folder, task, counted) for folder, task in RESULTS.items()]
    return stamp + "\n\n".join([intro, rule, development, *tasks]) + "\n"
