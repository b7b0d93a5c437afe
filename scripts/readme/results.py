"""The README's Results section (``generated:results``): the summaries of issue 14's sweeps,
task by task (RESULTS), with what their PLAN.md plans and is not committed yet."""

from __future__ import annotations

import json
import math
from pathlib import Path

from advnlp.experiment.environment import hardware_label
from advnlp.experiment.report import BASELINE, COLLAPSE_SHARE, _delta, _p, _percent

from . import common, gains
from .common import _attack_delta, markdown

# Issue 14's sweeps, shown in the README's "Results" section (generated:results): experiment
# folder -> its task. The compare folders each one plans come from its PLAN.md (the table whose
# first column is "compare folder"), so a planned folder with no committed summary is listed as
# pending; `bash experiments/collect.sh NAME` copies a finished folder's summary in.
RESULTS = {
    "experiments/tnews_e5": "TNEWS",
    "experiments/sst2_minilm": "SST-2",
    "experiments/epsilon_grid": "SST-2, epsilon grid",
}
HEADLINE = ("experiments/tnews_e5", "experiments/sst2_minilm")  # the tasks the README opens with
DEVELOPMENT_TASKS = "TNEWS, SST-2 and the demo's reviews"  # issue 14: say which, for the reader
P_LIMIT = 0.05  # the paired t-test's level in the verdict rule (``verdict``)
BEAT = f"beat {BASELINE}"  # ``verdict``'s outcome for a method that gained
# compare.json's shared settings that make a regime: the folders of one task must agree on them
# (their none runs are linked from one folder, so a pair is only a pair if they do)
REGIME = (
    "train",
    "dev",
    "model",
    "layers",
    "max_train_examples",
    "max_dev_examples",
    "epochs",
    "batch_size",
    "gradient_accumulation",
    "max_length",
    "lr",
    "warmup_ratio",
    "weight_decay",
    "precision",
)


def verdict(delta: float | None, spread: float | None, p: float | None) -> str:
    """The rule behind the Results section's sentences: a method "beat none" when its mean Δ
    (points) is above none's std over the same seeds (points, the seed spread) and the paired
    t-test over those seeds gives p < P_LIMIT; it was worse when both hold the other way; any
    other case "did not help". Without a spread or a p (one seed) nothing can be said."""
    if delta is None or spread is None or p is None:
        return "cannot be judged (fewer than two paired seeds)"
    if p < P_LIMIT and abs(delta) > spread:
        return BEAT if delta > 0 else "did not help: worse than none"
    return "did not help"


def planned_folders(plan: Path) -> dict[str, list[int] | None]:
    """The compare folders of PLAN.md's "compare folder" table, in its order, with their planned
    seeds where the table has a seeds column ("0-4"), else None."""
    lines = plan.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| compare folder |")), None)
    if start is None:
        raise SystemExit(
            f"{plan.relative_to(common.ROOT)}: no table with a 'compare folder' column"
        )
    header = [cell.strip() for cell in lines[start].strip().strip("|").split("|")]
    planned: dict[str, list[int] | None] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        seeds = cells[header.index("seeds")] if "seeds" in header else None
        planned[cells[0].strip("`")] = None if seeds is None else _seed_list(seeds)
    return planned


def _seed_list(text: str) -> list[int]:
    """ "0-4" -> [0, 1, 2, 3, 4]; "0, 1, 2" -> [0, 1, 2]."""
    if "-" in text:
        first, last = text.split("-")
        return list(range(int(first), int(last) + 1))
    return [int(seed) for seed in text.split(",")]


def _committed(folder: str) -> tuple[dict[str, list[int] | None], dict[str, tuple[dict, dict]]]:
    """The task's planned compare folders, and those with a committed summary: name -> (summary,
    compare.json's settings). The regime must be the same in every one of them."""
    path = common.ROOT / folder
    planned = planned_folders(path / "PLAN.md")
    unplanned = [p.parent.name for p in path.glob("*/summary.json") if p.parent.name not in planned]
    if unplanned:
        raise SystemExit(
            f"{folder}: {', '.join(sorted(unplanned))} has a summary that PLAN.md's table does "
            "not plan: add it there (the Results section shows the planned folders)"
        )
    found = {}
    for name in planned:
        if (path / name / "summary.json").exists():
            summary = json.loads((path / name / "summary.json").read_text(encoding="utf-8"))
            settings = json.loads((path / name / "compare.json").read_text(encoding="utf-8"))
            found[name] = (summary, settings)
    _check_regime(folder, found)
    return planned, found


def _check_regime(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """Every compare folder of a task has the first one's REGIME settings (its compare.json)."""
    if not found:
        return
    first, (_, reference) = next(iter(found.items()))
    for name, (_, settings) in found.items():
        for key in REGIME:
            if settings["shared"].get(key) != reference["shared"].get(key):
                raise SystemExit(
                    f"{folder}: {name}/compare.json has {key}={settings['shared'].get(key)!r}, "
                    f"{first}/compare.json {reference['shared'].get(key)!r}: not one regime"
                )


def _check_baselines(folder: str, found: dict[str, tuple[dict, dict]]) -> None:
    """The none runs linked into several compare folders must be the same runs: per seed the
    same run folder, and where two folders have the same seeds, the same numbers (clean and
    under each attack). Fails loudly, naming the two folders, where they disagree."""
    runs: dict[int, tuple[str, dict]] = {}
    groups: dict[tuple, tuple[str, dict]] = {}
    for name, (summary, _) in found.items():
        for run in summary.get("runs", []):
            if run["method"] != BASELINE:
                continue
            record = {k: run.get(k) for k in ("path", "dev_majority_share")}
            seen = runs.setdefault(run["seed"], (name, record))
            if seen[1] != record:
                raise SystemExit(
                    f"{folder}: {BASELINE} seed {run['seed']} differs between {seen[0]} "
                    f"({seen[1]}) and {name} ({record}): not the same run"
                )
        robustness = (summary.get("robustness") or {}).get("results") or []
        labels = [(None, summary["groups"])] + [(_label(r), r["groups"]) for r in robustness]
        for label, members in labels:
            for group in members:
                if group["method"] != BASELINE:
                    continue
                key = (label, tuple(group["seeds"]))
                seen = groups.setdefault(key, (name, group))
                if seen[1] != group:
                    where = "clean" if label is None else f"under {label}"
                    raise SystemExit(
                        f"{folder}: {BASELINE} on seeds {list(key[1])} ({where}) differs "
                        f"between {seen[0]} and {name}: not the same runs"
                    )


def _label(result: dict) -> str:
    from advnlp.robustness.compare import result_label

    return result_label(result)


def _epsilon(group: dict, settings: dict) -> str:
    """ε with its unit and scope for the methods that take ``epsilon_unit`` / ``scope`` (from
    compare.json, else the method's default): PGD in example and in token scope are two
    different strengths at the same number."""
    if group["epsilon"] is None:
        return "—"
    chosen = _hyperparameters(group, settings)
    text = f"{group['epsilon']:g}"
    if "epsilon_unit" in chosen:
        text += f" {chosen['epsilon_unit']}"
    if "scope" in chosen:
        text += f", {chosen['scope']} scope"
    return text


def _hyperparameters(group: dict, settings: dict) -> dict:
    """The group's method's hyperparameters: compare.json's choices over the method's defaults
    (only those the method takes)."""
    from advnlp.registry import hyperparameters

    defaults = hyperparameters(group["method"])
    chosen = settings["shared"].get("hyperparameters") or {}
    return {key: chosen.get(key, value) for key, value in defaults.items()}


def _method_label(group: dict, settings: dict) -> str:
    """ "fgm ε 0.5 absolute, token scope": the method with its ``_epsilon`` (none: the name)."""
    epsilon = _epsilon(group, settings)
    return group["method"] + ("" if epsilon == "—" else f" ε {epsilon}")


def _mcnemar(versus: dict) -> str:
    """ "b/c, p" of a vs_baseline's McNemar test, "—" without one."""
    test = versus.get("mcnemar") or {}
    return "—" if test.get("b") is None else f"{test['b']}/{test['c']}, {_p(test['p'])}"


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)


def _rows(found: dict[str, tuple[dict, dict]]) -> list[tuple[str, dict, dict]]:
    """(compare folder, group, settings) of every group to show, in plan order; a none group
    once per set of seeds (``_check_baselines`` made sure the copies agree)."""
    rows, shown = [], set()
    for name, (summary, settings) in found.items():
        for group in summary["groups"]:
            if group["method"] == BASELINE:
                if tuple(group["seeds"]) in shown:
                    continue
                shown.add(tuple(group["seeds"]))
            rows.append((name, group, settings))
    return rows


def results_table(found: dict[str, tuple[dict, dict]]) -> str:
    """Clean dev accuracy per method, with its paired comparison to none."""
    rows = []
    for name, group, settings in _rows(found):
        versus = group["vs_baseline"] or {}
        rows.append(
            [
                group["method"],
                _epsilon(group, settings),
                _seeds(group["seeds"]),
                _percent(group["dev_accuracy_mean"], group["dev_accuracy_std"]),
                _delta(group["vs_baseline"]),
                _p(versus.get("paired_t_p")),
                _mcnemar(versus),
                _seeds(group.get("collapsed_seeds") or []) or "—",
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
                    key = (_label(result), tuple(group["seeds"]))
                    if key in shown:
                        continue
                    shown.add(key)
                versus = group["vs_baseline"] or {}
                rows.append(
                    [
                        _label(result),
                        group["method"],
                        _epsilon(group, settings),
                        _seeds(group["seeds"]),
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


def _baseline(groups: list[dict]) -> dict | None:
    return next((g for g in groups if g["method"] == BASELINE and g["epsilon"] is None), None)


def _spread(group: dict | None, key: str) -> float | None:
    """none's std over its seeds, in points (None without none or with one seed)."""
    return None if group is None or group[key] is None else 100 * group[key]


def _judged(outcome: str, shown: str, spread: float | None, p: float | None) -> str:
    spread_text = "—" if spread is None else f"{spread:.2f}"
    return f"{outcome} (Δ {shown} points, {BASELINE}'s std {spread_text}, paired t p {_p(p)})"


def results_findings(task: str, found: dict[str, tuple[dict, dict]]) -> list[str]:
    """One sentence per method of the task: ``verdict`` on clean accuracy and under each attack."""
    sentences = []
    for name, (summary, settings) in found.items():
        spread = _spread(_baseline(summary["groups"]), "dev_accuracy_std")
        attacks = (summary.get("robustness") or {}).get("results") or []
        for group in summary["groups"]:
            versus = group["vs_baseline"]
            if versus is None:
                continue
            delta, p = versus["dev_accuracy_diff_points_mean"], versus["paired_t_p"]
            parts = [
                f"clean accuracy: {_judged(verdict(delta, spread, p), _delta(versus), spread, p)}"
            ]
            if len(versus["paired_seeds"] or []) < 2:  # say once that nothing can be judged
                parts = [_unjudged(summary, group)]
                attacks_judged = []
            else:
                attacks_judged = attacks
            for result in attacks_judged:
                attacked = _under(result, group)
                if attacked is None or attacked["vs_baseline"] is None:
                    continue
                at = attacked["vs_baseline"]
                delta = at["accuracy_under_attack_diff_points_mean"]
                at_spread = _spread(_baseline(result["groups"]), "accuracy_under_attack_std")
                outcome = verdict(delta, at_spread, at["paired_t_p"])
                judged = _judged(outcome, _attack_delta(at), at_spread, at["paired_t_p"])
                parts.append(f"under {_label(result)}: {judged}")
            if not attacks:
                parts.append("under attack: not measured yet")
            if group.get("collapsed_seeds"):  # say it in words, not only in the table's column
                share = summary.get("collapse_share", COLLAPSE_SHARE)
                parts.insert(
                    0,
                    f"collapsed on {len(group['collapsed_seeds'])} of {len(group['seeds'])} "
                    f"seeds ({_seeds(group['collapsed_seeds'])}): the best model predicts one "
                    f"class for >= {100 * share:.0f}% of dev",
                )
            label = _method_label(group, settings)
            sentences.append(
                f"- {task}, {label} (`{name}`, seeds {_seeds(group['seeds'])}): "
                + "; ".join(parts)
                + "."
            )
    return sentences


def _unjudged(summary: dict, group: dict) -> str:
    """The sentence part of a group paired with none on fewer than two seeds: its Δ, clean and
    under each attack, without a verdict (no spread, no test)."""
    shown = [
        f"{where} {mean:+.2f}"
        for where, (mean, _, _) in _gains(summary, group).items()
        if mean is not None
    ]
    if not shown:
        return f"no seed paired with {BASELINE}, not judged"
    return "one paired seed, not judged (no seed spread, no test): Δ " + ", ".join(shown)


def _under(result: dict, group: dict) -> dict | None:
    """The group of the same method and epsilon in one attack setting's result, if any."""
    key = (group["method"], group["epsilon"])
    return next((g for g in result["groups"] if (g["method"], g["epsilon"]) == key), None)


def _gains(summary: dict, group: dict) -> dict[str, tuple[float, float | None, str]]:
    """A group's mean Δ against none (points), the std of its paired differences and
    ``verdict``'s outcome, clean ("clean") and under each attack (by its label)."""
    versus = group["vs_baseline"]
    spread = _spread(_baseline(summary["groups"]), "dev_accuracy_std")
    delta = versus["dev_accuracy_diff_points_mean"]
    outcome = verdict(delta, spread, versus["paired_t_p"])
    gains = {"clean": (delta, versus["dev_accuracy_diff_points_std"], outcome)}
    for result in (summary.get("robustness") or {}).get("results") or []:
        attacked = _under(result, group)
        if attacked is None or attacked["vs_baseline"] is None:
            continue
        at = attacked["vs_baseline"]
        delta = at["accuracy_under_attack_diff_points_mean"]
        spread = _spread(_baseline(result["groups"]), "accuracy_under_attack_std")
        outcome = verdict(delta, spread, at["paired_t_p"])
        gains[f"under {_label(result)}"] = (
            delta,
            at["accuracy_under_attack_diff_points_std"],
            outcome,
        )
    return gains


def gain_data(found: dict[str, tuple[dict, dict]]) -> dict:
    """What a task's figure (gains.py) draws: per method compared with none, in table order, its
    ``_gains`` rounded as the tables show them; collapsed groups are left out (their Δ would set
    the scale) and named in "left_out"."""
    groups, left_out = [], []
    for name, group, settings in _rows(found):
        if (
            group["vs_baseline"] is None
            or group["vs_baseline"]["dev_accuracy_diff_points_mean"] is None
        ):
            continue
        label = _method_label(group, settings)
        if group.get("collapsed_seeds"):
            left_out.append(f"{label} (`{name}`)")
            continue
        summary = found[name][0]
        gains = {
            where: [round(mean, 2), None if std is None else round(std, 2), outcome == BEAT]
            for where, (mean, std, outcome) in _gains(summary, group).items()
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
        _, found = _committed(folder)
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
        _, found = _committed(folder)
        path = common.ROOT / folder / gains.FIGURE
        if found and gains.read(path) != json.loads(json.dumps(gain_data(found))):
            stale.append(str(path.relative_to(common.ROOT)))
    return stale


def kept_sentence(task: str, found: dict[str, tuple[dict, dict]]) -> str | None:
    """Issue 14, item 3: what the ~1x-cost FreeFGM keeps of FGM's gain at the same epsilon (FGM
    in its absolute unit and token scope, FreeFGM's only semantics): both mean Δ, clean and
    under each attack, and their ratio where FGM's own gain beat none (elsewhere a ratio of two
    noisy numbers would say nothing) and both ran on the same seeds. None without both in the
    task's summaries."""
    paired = [
        (name, summary, settings, group)
        for name, (summary, settings) in found.items()
        for group in summary["groups"]
        if group["vs_baseline"] is not None and group["vs_baseline"]["paired_seeds"] is not None
    ]
    cheap_found = next((p for p in paired if p[3]["method"] == "fgm_free"), None)
    if cheap_found is None:
        return None
    cheap_name, cheap_summary, _, cheap = cheap_found
    fgm_found = next(
        (
            p
            for p in paired
            if p[3]["method"] == "fgm"
            and p[3]["epsilon"] == cheap["epsilon"]
            and _hyperparameters(p[3], p[2]).get("scope") == "token"
            and _hyperparameters(p[3], p[2]).get("epsilon_unit") == "absolute"
        ),
        None,
    )
    if fgm_found is None:
        return None
    fgm_name, fgm_summary, _, fgm = fgm_found
    kept, full = _gains(cheap_summary, cheap), _gains(fgm_summary, fgm)
    same_seeds = cheap["seeds"] == fgm["seeds"]  # else two means over other seeds: no ratio
    parts = []
    for where, (delta, _, _) in kept.items():
        if where not in full:
            continue
        fgm_delta, _, fgm_outcome = full[where]
        if not same_seeds:
            share = " (no ratio: other seeds)"
        elif fgm_outcome == BEAT:
            share = f" ({100 * delta / fgm_delta:.0f}%)"
        else:
            share = " (FGM did not beat none)"
        parts.append(f"{where} {delta:+.2f} of {fgm_delta:+.2f}{share}")
    return (
        f"- {task}, what the ~1x-cost fgm_free ε {cheap['epsilon']:g} (`{cheap_name}`, seeds "
        f"{_seeds(cheap['seeds'])}) keeps of fgm ε {fgm['epsilon']:g}'s gain (`{fgm_name}`, "
        f"seeds {_seeds(fgm['seeds'])}), mean Δ against none in points: " + "; ".join(parts) + "."
    )


def _model(shared: dict) -> str:
    """compare.json's model, with the layers kept where a run cut them."""
    model = f"`{shared['model']}`"
    if shared.get("layers") is not None:
        model += f" (its first {shared['layers']} layers)"
    return model


def regime_line(settings: dict) -> str:
    """The task's regime, from compare.json (the same in all its folders: ``_committed``)."""
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
                lacking.append(f"seeds {_seeds(missing)} of `{name}`")
    waiting = []
    if absent:
        waiting.append(f"{', '.join(absent)} (no summary committed yet)")
    waiting += lacking
    return "Pending (planned in PLAN.md): " + ("; ".join(waiting) if waiting else "nothing") + "."


def task_results(folder: str, task: str, counted: set[str]) -> str:
    """One task's part of the Results section."""
    planned, found = _committed(folder)
    head = f"### {task} (`{folder}`)"
    command = f"Command (from the repository root):\n\n```bash\n{_command(folder)}\n```"
    if not found:
        return "\n\n".join([head, _pending(planned, found), command])
    _check_baselines(folder, found)
    settings = next(iter(found.values()))[1]
    sentences = results_findings(task, found)
    kept = kept_sentence(task, found)
    if kept is not None:
        sentences.append(kept)
    parts = [head, regime_line(settings), results_table(found)]
    attacked = results_attack_table(found)
    if attacked is not None:
        parts.append(attacked)
    parts += [
        "\n".join(sentences),
        _figure(folder, task, found),
        compute_line(folder, found, counted),
        command,
        _plots(folder, found),
        _pending(planned, found),
    ]
    return "\n\n".join(parts)


def _headline_part(summary: dict, settings: dict, group: dict, seeds: list[int]) -> str:
    """One method's part of a task's headline: clean Δ and verdict, then the range of its Δ
    under attack and in how many attack settings it beat none (its seeds named where they are
    not the task's ``seeds``)."""
    label = _method_label(group, settings)
    if group["seeds"] != seeds:
        label += f" (seeds {_seeds(group['seeds'])})"
    if group.get("collapsed_seeds"):
        collapsed = group["collapsed_seeds"]
        return f"{label}: collapsed on {len(collapsed)} of {len(group['seeds'])} seeds"
    if len(group["vs_baseline"]["paired_seeds"] or []) < 2:
        return f"{label}: one seed, not judged"
    gains = _gains(summary, group)
    clean, _, outcome = gains.pop("clean")
    text = f"{label}: {clean:+.2f} clean ({outcome})"
    attacked = [(mean, verdict) for mean, _, verdict in gains.values() if mean is not None]
    if attacked:
        low, high = min(m for m, _ in attacked), max(m for m, _ in attacked)
        beat = sum(verdict == BEAT for _, verdict in attacked)
        text += (
            f", {low:+.2f} to {high:+.2f} under attack ({BEAT} in {beat} of {len(attacked)} "
            "settings)"
        )
    return text


def headline_section() -> str:
    """The README's summary of the Results near its top (``generated:headline``): per task, the
    seeds and model, and each method's ``_headline_part``."""
    stamp = (
        "<!-- written by scripts/update_readme.py from the Results' summaries; do not edit -->\n"
    )
    bullets = []
    for folder, task in RESULTS.items():
        if folder not in HEADLINE:
            continue
        _, found = _committed(folder)
        if not found:
            continue
        rows = _rows(found)
        seeds = sorted({s for _, group, _ in rows for s in group["seeds"]})
        parts, attacks = [], {}
        for name, group, settings in rows:
            if group["method"] == BASELINE:
                continue
            summary = found[name][0]
            parts.append(f"  - {_headline_part(summary, settings, group, seeds)}")
            for result in (summary.get("robustness") or {}).get("results") or []:
                attacks[_label(result)] = None
        shared = next(iter(found.values()))[1]["shared"]
        train = shared["max_train_examples"]
        regime = _model(shared)
        regime += ", all training examples" if train is None else f", {train:,} training examples"
        regime += f", {shared['epochs']} epochs, seeds {_seeds(seeds)}"
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
        f"(b: `{BASELINE}` right, method wrong). `{BASELINE}` is trained once per task and "
        "linked into the other folders; it is shown once per set of seeds. ε: with its unit "
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
