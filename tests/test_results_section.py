"""The README's Results section (``generated:results`` in scripts/update_readme.py): its rules,
on small summaries made here by ``advnlp compare``'s own ``summarize`` from runs of 20 dev
examples, in a temporary copy of the experiments' layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import scripts

ROOT = Path(__file__).resolve().parents[1]
PLAN = """# plan

| compare folder | methods | epsilon | seeds |
|---|---|---|---|
| `fgm_abs` | none, FGM | 0.5 | 0-2 |
| `gp` | GP (none linked) | 1 | 0-2 |
| `pgd_freelb` | PGD, FreeLB (none linked) | 1 | 0-2 |

## Running

    bash experiments/task/run.sh                 # OUT=/somewhere
    bash experiments/collect.sh task
"""
SHARED = {
    "train": "train.tsv",
    "dev": "dev.tsv",
    "model": "minilm",
    "layers": None,
    "max_train_examples": 100,
    "max_dev_examples": None,
    "epochs": 2,
    "batch_size": 32,
    "gradient_accumulation": 1,
    "max_length": 64,
    "lr": 2e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.01,
    "precision": "fp32",
    "hyperparameters": {},
}


@pytest.fixture
def script(tmp_path, monkeypatch):
    """update_readme.py reading experiments/task/ under tmp_path."""
    pytest.importorskip("scipy")  # summarize's paired t-test
    module = scripts.readme("results")
    monkeypatch.setattr(scripts.readme("common"), "ROOT", tmp_path)
    monkeypatch.setattr(module, "RESULTS", {"experiments/task": "Task"})
    (tmp_path / "experiments/task").mkdir(parents=True)
    (tmp_path / "experiments/task/PLAN.md").write_text(PLAN, encoding="utf-8")
    return module


def _run(
    method: str, epsilon: float | None, seed: int, correct: int, step_s: float, train_s=None
) -> dict:
    """A run's results.json: ``correct`` of 20 dev examples right, trained in fgm_abs (none) or
    in the folder named after its method; with ``train_s``, two epochs that recorded their
    training time (as advnlp does since 2026-11-30) and the machine."""
    labels = [i % 2 for i in range(20)]
    predictions = [y if i < correct else 1 - y for i, y in enumerate(labels)]
    folder = "fgm_abs" if method in ("none", "fgm") else method
    name = f"{method}{'' if epsilon is None else f'-eps{epsilon:g}'}-seed{seed}"
    return {
        "config": {
            "method": method,
            "method_kwargs": {} if epsilon is None else {"epsilon": epsilon},
            "seed": seed,
            "output": f"/sweeps/task/{folder}/runs/{name}",
        },
        "dev": {"accuracy": correct / 20, "macro_f1": correct / 20},
        "dev_labels": labels,
        "dev_predictions": predictions,
        "median_step_time_s": step_s,
        **(
            {}
            if train_s is None
            else {
                "epochs": [
                    {"epoch": 1, "train_s": train_s / 2},
                    {"epoch": 2, "train_s": train_s / 2},
                ],
                "environment": {"device": "cpu", "cpu": "AMD EPYC", "torch_threads": 2},
            }
        ),
    }


NONE = [_run("none", None, s, c, 100.0) for s, c in ((0, 14), (1, 15), (2, 16))]  # std 5 points
FGM = [_run("fgm", 0.5, s, c, 200.0) for s, c in ((0, 17), (1, 18), (2, 20))]  # Δ 15, 15, 20
GP = [_run("gp", 1.0, s, c, 300.0) for s, c in ((0, 15), (1, 15), (2, 17))]  # Δ 5, 0, 5


def _collapsed(run: dict) -> dict:
    """``run`` with its best model predicting one class for all of dev."""
    return {**run, "dev_predictions": [0] * 20, "dev": {"accuracy": 0.5, "macro_f1": 0.33}}


def _plan_fgm_free(root: Path) -> None:
    """The task's PLAN.md with an fgm_free folder planned before gp."""
    plan = root / "experiments/task/PLAN.md"
    plan.write_text(PLAN.replace("| `gp` |", "| `fgm_free` | FreeFGM | 0.5 | 0-2 |\n| `gp` |"))


def _write(root: Path, name: str, runs: list[dict], robustness: dict | None = None, **shared):
    """A compare folder as collect.sh copies it: summary.json and compare.json."""
    from advnlp.experiment.report import _run_entry, summarize
    from advnlp.experiment.stats import as_result

    summary = summarize(runs)
    summary["runs"] = [_run_entry(as_result(r)) for r in runs]
    if robustness is not None:
        summary["robustness"] = robustness
    folder = root / "experiments/task" / name
    folder.mkdir()
    (folder / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    settings = {"shared": {**SHARED, **shared}, "seeds": [0, 1, 2]}
    (folder / "compare.json").write_text(json.dumps(settings), encoding="utf-8")


def _attacked(method: str, epsilon: float | None, under: float, delta: float, p: float) -> dict:
    """A group of a robustness result (compare --attack) with the fields the section reads."""
    versus = {
        "accuracy_under_attack_diff_points_mean": delta,
        "accuracy_under_attack_diff_points_std": 1.0,
        "paired_t_p": p,
        "mcnemar": {"b": 1, "c": 9, "p": 0.02},
    }
    return {
        "method": method,
        "epsilon": epsilon,
        "seeds": [0, 1, 2],
        "n_examples": 20,
        "clean_accuracy_mean": 0.75,
        "clean_accuracy_std": 0.05,
        "accuracy_under_attack_mean": under,
        "accuracy_under_attack_std": 0.02,  # none's spread: 2 points
        "vs_baseline": None if method == "none" else versus,
    }


def _typo(*groups: dict) -> dict:
    """compare --attack's robustness block with one typo setting (budget 0.1) and ``groups``."""
    result = {"attack": "typo", "budget": 0.1, "radius": None, "groups": list(groups)}
    return {"settings": {}, "results": [result]}


def test_verdict_rule():
    module = scripts.readme("findings")
    assert module.verdict(6.0, 5.0, 0.01) == "beat none"
    assert module.verdict(4.0, 5.0, 0.01) == "did not help"  # inside the seed spread
    assert module.verdict(6.0, 5.0, 0.2) == "did not help"  # not significant
    assert module.verdict(-6.0, 5.0, 0.01) == "did not help: worse than none"
    assert module.verdict(6.0, None, 0.01).startswith("cannot be judged")


def test_epsilon_names_its_unit_and_scope_from_compare_json_or_the_default():
    epsilon = scripts.readme("labels").epsilon_text
    pgd, token = {"method": "pgd", "epsilon": 1.0}, {"hyperparameters": {"scope": "token"}}
    assert epsilon(pgd, {"shared": {}}) == "1 absolute, example scope"  # PGD's default
    assert epsilon(pgd, {"shared": token}) == "1 absolute, token scope"
    assert epsilon({"method": "gp", "epsilon": 1.0}, {"shared": token}) == "1"
    assert epsilon({"method": "none", "epsilon": None}, {"shared": {}}) == "—"


def test_sentences_follow_the_rule_clean_and_under_attack(script, tmp_path):
    robustness = _typo(
        _attacked("none", None, 0.40, 0, 0),
        _attacked("fgm", 0.5, 0.45, 5.0, 0.01),  # beyond none's 2-point spread
    )
    _write(tmp_path, "fgm_abs", NONE + FGM, robustness)
    _write(tmp_path, "gp", NONE + GP)
    text = script.results_section()
    assert (
        "- Task, fgm ε 0.5 absolute, token scope (`fgm_abs`, seeds 0, 1, 2): clean accuracy: "
        "beat none (Δ +16.67 ± 2.89 points, none's std 5.00, paired t p 0.010); under typo, "
        "budget 0.1: beat none (Δ +5.00 ± 1.00 points, none's std 2.00, paired t p 0.010)." in text
    )
    assert (
        "- Task, gp ε 1 (`gp`, seeds 0, 1, 2): clean accuracy: did not help (Δ +3.33 ± 2.89 "
        "points, none's std 5.00, paired t p 0.184); under attack: not measured yet." in text
    )
    row = "| typo, budget 0.1 | fgm | 0.5 absolute, token scope | 0, 1, 2 | 20 | 75.00 ± 5.00 |"
    assert row in text


def test_a_collapsed_seed_is_said_in_the_sentence(script, tmp_path):
    collapsed = [*GP[:1], _collapsed(GP[1]), *GP[2:]]
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + collapsed)
    text = script.results_section()
    assert (
        "- Task, gp ε 1 (`gp`, seeds 0, 1, 2): collapsed on 1 of 3 seeds (1): the best model "
        "predicts one class for >= 90% of dev; clean accuracy:" in text
    )
    assert "collapsed on" not in text.split("- Task, fgm", 1)[1].split("\n", 1)[0]


def test_a_collapsed_group_gets_no_verdict_under_attack(script, tmp_path):
    """A model that predicts one class keeps that class's share under any attack: the epsilon
    grid's collapsed GP 1000 "beat none" under typos by 9.8 points so."""
    robustness = _typo(
        _attacked("none", None, 0.40, 0, 0),
        _attacked("gp", 1.0, 0.45, 5.0, 0.01),  # would beat none's 2-point spread
    )
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + [*GP[:1], _collapsed(GP[1]), *GP[2:]], robustness)
    text = script.results_section()
    sentence = next(line for line in text.splitlines() if line.startswith("- Task, gp"))
    assert (
        "of dev, which keeps that class's share under any attack, so its Δs under attack are "
        "not judged; clean accuracy: did not help (" in sentence
    )
    assert sentence.endswith(
        "under typo, budget 0.1: not judged, collapsed (Δ +5.00 ± 1.00 points, none's std 2.00, "
        "paired t p 0.010)."
    )


def test_what_fgm_free_keeps_of_fgm_s_gain(script, tmp_path):
    _plan_fgm_free(tmp_path)
    free = [_run("fgm_free", 0.5, s, c, 100.0) for s, c in ((0, 16), (1, 16), (2, 18))]
    typo = _typo(
        _attacked("none", None, 0.40, 0, 0),
        _attacked("fgm", 0.5, 0.45, 5.0, 0.01),  # FGM beat none under typo
        _attacked("fgm_free", 0.5, 0.41, 1.0, 0.3),
    )
    _write(tmp_path, "fgm_abs", NONE + FGM, typo)
    _write(tmp_path, "fgm_free", NONE + free, typo)
    text = script.results_section()
    assert (
        "- Task, what the ~1x-cost fgm_free ε 0.5 (`fgm_free`, seeds 0, 1, 2) keeps of fgm ε "
        "0.5's gain (`fgm_abs`, seeds 0, 1, 2), mean Δ against none in points: clean +8.33 of "
        "+16.67 (50%); under typo, budget 0.1 +1.00 of +5.00 (20%)." in text
    )


def test_no_share_of_a_gain_fgm_did_not_have(script, tmp_path):
    _plan_fgm_free(tmp_path)
    weak = [_run("fgm", 0.5, s, c, 200.0) for s, c in ((0, 15), (1, 15), (2, 17))]  # p 0.18
    free = [_run("fgm_free", 0.5, s, c, 100.0) for s, c in ((0, 15), (1, 16), (2, 16))]
    _write(tmp_path, "fgm_abs", NONE + weak)
    _write(tmp_path, "fgm_free", NONE + free)
    text = script.results_section()
    assert "clean +3.33 of +3.33 (FGM did not beat none)." in text


def test_none_linked_into_two_folders_is_one_row(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + GP)
    text = script.results_section()
    none_rows = [line for line in text.splitlines() if line.startswith("| none |")]
    assert none_rows == ["| none | — | 0, 1, 2 | 75.00 ± 5.00 | — | — | — | — | `fgm_abs` |"]


def test_folders_whose_none_runs_disagree_fail(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    # same run folders and predictions (so the per-seed check passes), another accuracy
    retrained = [*NONE[:2], {**NONE[2], "dev": {"accuracy": 17 / 20, "macro_f1": 17 / 20}}]
    _write(tmp_path, "gp", retrained + GP)
    with pytest.raises(SystemExit, match="none on seeds \\[0, 1, 2\\] .* between fgm_abs and gp"):
        script.results_section()


def test_a_folder_that_trained_its_own_none_shows_it_as_its_own_row(script, tmp_path):
    """gp trained its own none runs (other runs, in gp/runs/, other numbers): each method is set
    against its own folder's none, and each set of none runs has its row."""
    typo = _typo(_attacked("none", None, 0.40, 0, 0))
    _write(tmp_path, "fgm_abs", NONE + FGM, typo)
    own = [_run("none", None, s, c, 100.0) for s, c in ((0, 15), (1, 15), (2, 15))]
    own = [
        dict(r, config={**r["config"], "output": f"/sweeps/task/gp/runs/none-seed{i}"})
        for i, r in enumerate(own)
    ]
    _write(tmp_path, "gp", own + GP, typo)
    text = script.results_section()
    none_rows = [line for line in text.splitlines() if line.startswith("| none |")]
    attacked = [line for line in text.splitlines() if line.startswith("| typo, budget 0.1 | none")]
    assert [row.split("|")[-2].strip() for row in attacked] == ["`fgm_abs`", "`gp`"]
    assert none_rows == [
        "| none | — | 0, 1, 2 | 75.00 ± 5.00 | — | — | — | — | `fgm_abs` |",
        "| none | — | 0, 1, 2 | 75.00 ± 0.00 | — | — | — | — | `gp` |",
    ]
    assert "| gp | 1 | 0, 1, 2 | 78.33 ± 5.77 | +3.33 ± 5.77 |" in text


def test_none_runs_from_another_folder_fail(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    elsewhere = [
        dict(r, config={**r["config"], "output": f"/other/{i}"}) for i, r in enumerate(NONE)
    ]
    _write(tmp_path, "gp", elsewhere + GP)
    with pytest.raises(SystemExit, match="gp's none seed 0 is /other/0, a run of none of the"):
        script.results_section()


def test_folders_of_another_regime_fail(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + GP, lr=1e-4)
    with pytest.raises(SystemExit, match="gp/compare.json has lr=0.0001.*not one regime"):
        script.results_section()


def test_a_summary_the_plan_does_not_plan_fails(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp_extra", NONE + GP)
    with pytest.raises(SystemExit, match="gp_extra has a summary that PLAN.md's table does not"):
        script.results_section()


def test_pending_folders_and_seeds_are_listed(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    plan = tmp_path / "experiments/task/PLAN.md"
    plan.write_text(PLAN.replace("| 0.5 | 0-2 |", "| 0.5 | 0-4 |"), encoding="utf-8")
    text = script.results_section()
    assert (
        "Pending (planned in PLAN.md): `gp`, `pgd_freelb` (no summary committed yet); seeds 3, "
        "4 of `fgm_abs`." in text
    )
    assert "```bash\nbash experiments/task/run.sh\nbash experiments/collect.sh task\n```" in text


def test_compute_counts_a_linked_run_once(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + GP)
    # 9 runs (none's 3 once) x 2 epochs x ⌈100 / 32⌉ = 8 steps x 100, 200 or 300 s
    text = script.results_section()
    hours = 8 * 3 * (100 + 200 + 300) / 3600
    assert "9 runs from before advnlp recorded it, estimated as 8 steps" in text
    assert f"median step time: {hours:.1f} hours" in text
    assert "runs measured" not in text and "Hardware: not recorded" in text


def test_compute_adds_the_measured_time_where_runs_recorded_it(script, tmp_path):
    fgm = [_run("fgm", 0.5, s, c, 200.0, train_s=3600.0) for s, c in ((0, 17), (1, 18), (2, 20))]
    _write(tmp_path, "fgm_abs", NONE + fgm)
    text = script.results_section()
    assert "3 runs measured: 3.0 hours in their optimizer steps" in text
    assert "3 runs from before advnlp recorded it, estimated as 8 steps" in text
    assert f"median step time: {8 * 3 * 100 / 3600:.1f} hours" in text
    assert "Hardware: cpu (AMD EPYC, 2 threads)" in text


def test_the_figure_draws_each_method_s_gains_and_leaves_collapsed_groups_out(script, tmp_path):
    pytest.importorskip("matplotlib")
    collapsed = [*GP[:1], _collapsed(GP[1]), *GP[2:]]
    typo = _typo(_attacked("none", None, 0.40, 0, 0), _attacked("fgm", 0.5, 0.45, 5.0, 0.01))
    _write(tmp_path, "fgm_abs", NONE + FGM, typo)
    _write(tmp_path, "gp", NONE + collapsed)
    figure = tmp_path / "experiments/task/gains.png"
    assert script.stale_figures() == ["experiments/task/gains.png"]  # not drawn yet
    assert script.write_figures() == [figure]
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert script.stale_figures() == []
    drawn = scripts.readme("gains").read(figure)
    assert drawn == {
        "groups": [
            {
                "label": "fgm ε 0.5 absolute, token scope",
                "folder": "fgm_abs",
                "seeds": [0, 1, 2],
                "gains": {"clean": [16.67, 2.89, True], "under typo, budget 0.1": [5.0, 1.0, True]},
            }
        ],
        "left_out": ["gp ε 1 (`gp`)"],
    }
    text = script.results_section()
    assert "![Task: Δ against none per method](experiments/task/gains.png)" in text
    assert "; left out, collapsed: gp ε 1 (`gp`)." in text
    # a summary that changes after the figure was drawn makes it stale
    (tmp_path / "experiments/task/gp/summary.json").unlink()
    (tmp_path / "experiments/task/gp/compare.json").unlink()
    (tmp_path / "experiments/task/gp").rmdir()
    _write(tmp_path, "gp", NONE + GP)
    assert script.stale_figures() == ["experiments/task/gains.png"]


def test_a_group_with_one_paired_seed_is_not_judged_and_says_so_once(script, tmp_path):
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + GP[:1])
    text = script.results_section()
    assert (
        "- Task, gp ε 1 (`gp`, seeds 0): one paired seed, not judged (no seed spread, no test): "
        "Δ clean +5.00; under attack: not measured yet." in text
    )
    assert "cannot be judged" not in text


def test_headline_gives_each_method_s_clean_gain_and_its_range_under_attack(
    script, tmp_path, monkeypatch
):
    collapsed = [_collapsed(GP[0])]
    typo = _typo(_attacked("none", None, 0.40, 0, 0), _attacked("fgm", 0.5, 0.45, 5.0, 0.01))
    _write(tmp_path, "fgm_abs", NONE + FGM, typo)
    _write(tmp_path, "gp", NONE[:1] + collapsed)
    monkeypatch.setattr(script, "HEADLINE", ("experiments/task",))
    text = script.headline_section()
    assert (
        "- Task (`minilm`, 100 training examples, 2 epochs, seeds 0, 1, 2; attacks: typo, "
        "budget 0.1):\n"
        "  - fgm ε 0.5 absolute, token scope: +16.67 clean (beat none), +5.00 to +5.00 under "
        "attack (beat none in 1 of 1 settings)\n"
        "  - gp ε 1 (seeds 0): collapsed on 1 of 1 seeds\n" in text
    )


def test_no_share_of_a_gain_measured_on_other_seeds(script, tmp_path):
    _plan_fgm_free(tmp_path)
    free = [_run("fgm_free", 0.5, s, c, 100.0) for s, c in ((0, 16), (1, 16))]
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "fgm_free", NONE + free)
    text = script.results_section()
    assert "keeps of fgm ε 0.5's gain (`fgm_abs`, seeds 0, 1, 2)" in text
    assert "(`fgm_free`, seeds 0, 1)" in text
    assert "clean +7.50 of +16.67 (no ratio: other seeds)" in text


def test_a_grid_shows_its_curves_against_epsilon(script, tmp_path, monkeypatch):
    """A task in CURVES shows each folder's committed plots against epsilon as images; another
    task only links its plots."""
    _write(tmp_path, "fgm_abs", NONE + FGM)
    _write(tmp_path, "gp", NONE + GP)
    (tmp_path / "experiments/task/fgm_abs/accuracy_vs_epsilon.png").write_bytes(b"png")
    (tmp_path / "experiments/task/gp/accuracy_vs_epsilon.png").write_bytes(b"png")
    (tmp_path / "experiments/task/gp/attack_vs_epsilon.png").write_bytes(b"png")
    image = "![Task, gp: accuracy vs epsilon](experiments/task/gp/accuracy_vs_epsilon.png)"
    assert image not in script.results_section()
    curves = ("accuracy_vs_epsilon.png", "attack_vs_epsilon.png")
    monkeypatch.setattr(script, "CURVES", {"experiments/task": curves})
    images = [line for line in script.results_section().splitlines() if line.startswith("![")]
    assert images[1:] == [
        "![Task, fgm_abs: accuracy vs epsilon](experiments/task/fgm_abs/accuracy_vs_epsilon.png)",
        image,
        "![Task, gp: attack vs epsilon](experiments/task/gp/attack_vs_epsilon.png)",
    ]
    assert images[0].startswith("![Task: Δ against none per method]")  # the gains figure first


def test_a_grid_says_where_each_method_s_gain_peaks_turns_and_collapses(
    script, tmp_path, monkeypatch
):
    """Issue 14: "where the gain peaks and where it collapses", in words from the numbers, for
    a method run at several epsilons in a grid's folder (and not for other tasks)."""
    low = [_run("fgm", 0.1, s, c, 200.0) for s, c in ((0, 15), (1, 15), (2, 17))]  # Δ 5, 0, 5
    high = [_collapsed(_run("fgm", 3.0, s, 16, 200.0)) for s in (0, 1, 2)]
    worse = [_run("fgm", 1.0, s, c, 200.0) for s, c in ((0, 5), (1, 7), (2, 8))]  # Δ -9, -8, -8
    attacks = _typo(
        _attacked("none", None, 0.5, 0.0, 1.0),
        _attacked("fgm", 0.1, 0.6, 10.0, 0.01),
        _attacked("fgm", 0.5, 0.55, 5.0, 0.01),
        _attacked("fgm", 1.0, 0.5, 0.5, 0.6),
    )
    _write(tmp_path, "fgm_abs", NONE + FGM + low + high + worse, attacks)
    assert "peak at" not in script.results_section()
    monkeypatch.setattr(script, "CURVES", {"experiments/task": ("accuracy_vs_epsilon.png",)})
    section = script.results_section()
    sentence = next(line for line in section.splitlines() if "peak at" in line)
    assert sentence == (
        "- Task, fgm (absolute, token scope) over ε 0.1, 0.5, 1, 3 (`fgm_abs`, mean Δ in points): "
        "collapsed at ε 3; "
        "clean: peak at ε 0.5 (+16.67, beat none), beat none at ε 0.5, worse than none at ε 1; "
        "under typo, budget 0.1: peak at ε 0.1 (+10.00, beat none), beat none at ε 0.1, 0.5."
    )
    monkeypatch.setattr(script, "HEADLINE", ("experiments/task",))  # the same, in one line
    assert script.headline_section().endswith(
        "attacks: typo, budget 0.1):\n"
        "  - fgm (absolute, token scope), ε 0.1 to 3: clean peak +16.67 at ε 0.5 (beat none); "
        "under attack (1 setting) peaks at ε 0.1 (+10.00; beat none at 1 of 1); worse than none: "
        "clean at ε 1; collapsed at ε 3\n"
    )
