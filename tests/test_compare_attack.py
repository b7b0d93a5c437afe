"""advnlp compare --attack: real tiny runs on the demo data (scratch-tiny, a few steps) are
attacked after training, runs trained without --attack are attacked when it is given later, a
rerun reuses the saved attacks, the paired numbers match counts made by hand, and every mistake
in the attack flags exits 2 with one line before anything is written."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

pytest.importorskip("datasets")
pytest.importorskip("pypinyin")
pytest.importorskip("snownlp")
pytest.importorskip("scipy")

from advnlp.cli import main  # noqa: E402
from advnlp.robustness.compare import AttackSweep  # noqa: E402

from . import scripts  # noqa: E402
from .cli_data import SMALL_RUN, fails_in_one_line  # noqa: E402

ATTACK = ["--attack", "homophone,embedding", "--attack-examples", "12"]
ATTACK += ["--attack-radius", "0.1,0.5"]
SETTINGS = [("homophone", 0.1, None), ("embedding", None, 0.1), ("embedding", None, 0.5)]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> tuple[Path, Path]:
    from advnlp.data.demo import write_demo_split

    return write_demo_split(tmp_path_factory.mktemp("demo") / "data", dev_size=200)


def compare_args(data: tuple[Path, Path], output: Path, *extra: str) -> list[str]:
    train, dev = data
    return [
        "compare", "--train", str(train), "--dev", str(dev), "--output", str(output),
        "--model", "scratch-tiny", "--max-train-examples", "48", "--max-dev-examples", "30",
        "--epochs", "1", *SMALL_RUN, "--methods", "none,fgm", "--epsilon", "0.1",
        "--seeds", "0,1", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def attacked(demo_data, tmp_path_factory):
    """A sweep trained without --attack, then the same command with it (nothing trains)."""
    out = tmp_path_factory.mktemp("cmp") / "out"
    assert main(compare_args(demo_data, out)) == 0
    before = json.loads((out / "summary.json").read_text())
    assert "robustness" not in before and not list(out.glob("runs/*/attack"))
    models = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model/*")}
    assert main(compare_args(demo_data, out, *ATTACK)) == 0
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/model/*")} == models
    return out


def test_runs_trained_without_attack_are_attacked_when_it_is_given(attacked):
    runs = sorted(p.name for p in attacked.glob("runs/*") if p.is_dir())
    assert runs == ["fgm-eps0.1-seed0", "fgm-eps0.1-seed1", "none-seed0", "none-seed1"]
    texts = set()
    for run in runs:
        report = json.loads((attacked / "runs" / run / "attack" / "attack.json").read_text())
        settings = [(r["attack"], r["budget"], r["radius"]) for r in report["results"]]
        assert settings == SETTINGS
        assert all(r["n"] == 12 for r in report["results"])
        lines = (attacked / "runs" / run / "attack" / "examples.jsonl").read_text("utf-8")
        texts.add(tuple(json.loads(line)["text"] for line in lines.splitlines()[:12]))
    assert len(texts) == 1, "every run must be attacked on the same examples (paired)"


def test_summary_holds_accuracy_under_attack_per_group_with_paired_tests(attacked):
    summary = json.loads((attacked / "summary.json").read_text())
    robustness = summary["robustness"]
    assert [(r["attack"], r["budget"], r["radius"]) for r in robustness["results"]] == SETTINGS
    for result in robustness["results"]:
        none, fgm = result["groups"]
        assert (none["method"], fgm["method"], fgm["epsilon"]) == ("none", "fgm", 0.1)
        assert none["seeds"] == fgm["seeds"] == [0, 1] and none["n_examples"] == 12
        for group in (none, fgm):
            assert 0 <= group["accuracy_under_attack_mean"] <= group["clean_accuracy_mean"] <= 1
        assert none["vs_baseline"] is None
        versus = fgm["vs_baseline"]
        assert versus["paired_seeds"] == [0, 1]
        assert math.isclose(
            versus["accuracy_under_attack_diff_points_mean"],
            100 * (fgm["accuracy_under_attack_mean"] - none["accuracy_under_attack_mean"]),
            abs_tol=1e-9,
        )
        assert set(versus["mcnemar"]) == {"b", "c", "p"}
    table = (attacked / "summary.md").read_text()
    section = table.split("acc under attack %", 1)[1]
    rows = [line.split("|")[1:4] for line in section.splitlines()[2:]]
    assert [[cell.strip() for cell in row] for row in rows] == [
        [label, method, epsilon]
        for label in ("homophone, budget 0.1", "embedding, r=0.1", "embedding, r=0.5")
        for method, epsilon in (("none", "—"), ("fgm", "0.1"))
    ]
    for name in ("attack_vs_epsilon.png", "attack_vs_radius.png"):
        assert (attacked / name).read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_reuses_the_saved_attacks(attacked, demo_data, capsys):
    files = sorted(attacked.glob("runs/*/attack/*"))
    assert len(files) == 16

    def stamps():
        return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}

    before = stamps()
    summary = json.loads((attacked / "summary.json").read_text())["robustness"]
    capsys.readouterr()
    assert main(compare_args(demo_data, attacked, *ATTACK)) == 0
    assert stamps() == before
    assert capsys.readouterr().out.count("attack results saved earlier, reused") == 4
    assert json.loads((attacked / "summary.json").read_text())["robustness"] == summary


def test_attacking_a_run_shows_its_progress(attacked, demo_data, tmp_path, capsys):
    """compare attacked each run without a bar: on a CPU, minutes of silence after training."""
    copy = tmp_path / "copy"
    shutil.copytree(attacked, copy)
    shutil.rmtree(copy / "runs" / "none-seed0" / "attack")  # the only run attacked again
    capsys.readouterr()
    assert main(compare_args(demo_data, copy, *ATTACK)) == 0
    err = capsys.readouterr().err
    # a bar per setting over the run's 12 dev examples; not its 100% state, which tqdm may skip:
    # it redraws only every few examples (dynamic miniters) and clears a nested bar on close
    for setting in ("homophone budget=0.1", "embedding r=0.1", "embedding r=0.5"):
        assert re.search(rf"{re.escape(setting)}: +\d+%\|[^|]*\| \d+/12 ", err), setting


def test_a_moved_sweep_still_reads_its_saved_attacks(attacked, demo_data, tmp_path):
    """results.json records where a run was trained; the attack results are read where the
    run is now (a moved folder once lost its table without a word)."""
    before = json.loads((attacked / "summary.json").read_text())["robustness"]
    moved = tmp_path / "moved"
    shutil.move(attacked, moved)  # nothing is left where the runs were trained
    try:
        assert main(compare_args(demo_data, moved, *ATTACK)) == 0
        summary = json.loads((moved / "summary.json").read_text())
        assert summary["robustness"] == before
        assert all(Path(r["path"]).parent == moved / "runs" for r in summary["runs"])
    finally:
        shutil.move(moved, attacked)  # the module's other tests use it


def test_runs_kept_in_git_let_a_new_machine_go_on_without_training(
    attacked, demo_data, tmp_path, capsys
):
    """experiments/keep_runs.py: a sweep's finished, attacked runs, kept without models, texts
    or checkpoints, are restored on a bare machine, where the same compare call trains and
    attacks nothing and writes the same summary."""
    keep_runs = scripts.experiment("keep_runs")
    kept = tmp_path / "experiments" / "task"
    sweep = attacked.parent  # the sweep's folder; attacked is its compare folder
    other = sweep / "second"  # a second compare folder that links attacked's none-seed0
    (other / "runs").mkdir(parents=True)
    shutil.copyfile(attacked / "compare.json", other / "compare.json")
    (other / "runs/none-seed0").symlink_to(Path("..", "..", attacked.name, "runs/none-seed0"))
    assert keep_runs.save(kept, sweep) == 5
    assert keep_runs.save(kept, sweep) == 0  # kept once
    files = sorted(str(p.relative_to(kept)) for p in kept.rglob("*") if p.is_file())
    assert files[0] == f"{attacked.name}/compare.json"
    assert files[1:5] == [f"{attacked.name}/runs/fgm-eps0.1-seed0/{name}" for name in (
        "attack/attack.json", "attack/examples.jsonl", "results.json", "run.json")]  # fmt: skip
    assert len(files) == 18  # 4 runs of 4 files, 2 compare.json; the link is kept as a link
    link = os.readlink(kept / "second/runs/none-seed0")
    assert link == os.path.join("..", "..", attacked.name, "runs", "none-seed0")
    examples = attacked / "runs/none-seed0/attack/examples.jsonl"
    texts = {json.loads(line)["text"] for line in examples.read_text("utf-8").splitlines()}
    documents = [p.read_text("utf-8") for p in kept.rglob("*.json")]
    documents += [line for p in kept.rglob("*.jsonl") for line in p.read_text("utf-8").splitlines()]
    kept_values = "\n".join(json.dumps(json.loads(d), ensure_ascii=False) for d in documents)
    assert len(texts) == 12 and not [t for t in texts if t in kept_values], "no dev text kept"

    before = json.loads((attacked / "summary.json").read_text())
    machine = tmp_path / "earlier-machine"
    shutil.move(attacked, machine)  # a bare machine: no sweep folder at all
    shutil.rmtree(other)
    try:
        assert keep_runs.restore(kept, sweep) == 5
        assert keep_runs.restore(kept, sweep) == 0
        assert os.readlink(other / "runs/none-seed0") == link
        assert (other / "runs/none-seed0/results.json").is_file()
        capsys.readouterr()
        assert main(compare_args(demo_data, attacked, *ATTACK)) == 0
        out = capsys.readouterr().out
        assert out.count("attack results saved earlier, reused") == 4
        assert not list(attacked.glob("runs/*/model")), "nothing was trained again"
        after = json.loads((attacked / "summary.json").read_text())
        assert after["robustness"] == before["robustness"]
        assert after["groups"] == before["groups"]
    finally:
        shutil.rmtree(attacked, ignore_errors=True)
        shutil.rmtree(other, ignore_errors=True)
        shutil.move(machine, attacked)  # the module's other tests use it


def test_two_drivers_keeping_one_run_leave_one_whole_copy(tmp_path):
    """Two drivers of one sweep (one per compare folder) run keep_runs.save side by side and may
    keep the same run at once: the one that renames second drops its copy, without an error and
    without a partial copy left where restore would look."""
    keep_runs = scripts.experiment("keep_runs")
    run = tmp_path / "sweep/folder/runs/none-seed0"
    (run / "attack").mkdir(parents=True)
    for name in ("run.json", "results.json", "attack/attack.json"):
        (run / name).write_text("{}")
    (run / "attack/examples.jsonl").write_text('{"gold": "1", "text": "dev text"}\n')
    target = tmp_path / "kept/folder/runs/none-seed0"
    target.parent.mkdir(parents=True)
    keep_runs.keep(run, target)
    keep_runs.keep(run, target)  # what the later driver does when it lost the race
    assert sorted(p.name for p in target.parent.iterdir()) == ["none-seed0"]
    assert (target / "attack/examples.jsonl").read_text() == (
        '{"attack": null, "budget": null, "radius": null, "gold": "1", '
        '"adversarial_prediction": null}\n'
    )


def test_kept_runs_are_not_ignored_by_git():
    """keep_runs.py writes experiments/NAME/<folder>/runs/: the .gitignore that leaves every
    other runs/ folder out must let these in (it once kept them out without a word)."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    kept = "experiments/task/folder/runs/none-seed0/results.json"
    check = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", kept])
    assert check.returncode == 1, f"git ignores {kept}"
    other = subprocess.run(["git", "-C", str(root), "check-ignore", "-q", "cmp/runs/x/run.json"])
    assert other.returncode == 0, "a compare folder's runs/ elsewhere stays ignored"


def _write_attack(folder: Path, gold: list[str], right: list[int]) -> dict:
    """A run folder holding one saved homophone attack: example i is right under attack
    when right[i] (then the prediction is the gold label, else the other label)."""
    other = {"pos": "neg", "neg": "pos"}
    n, failed = len(gold), sum(right)
    (folder / "attack").mkdir(parents=True)
    result = {
        "attack": "homophone",
        "budget": 0.1,
        "radius": None,
        "n": n,
        "successful": n - failed - 1,
        "failed": failed,
        "skipped": 1,
        "clean_accuracy": (n - 1) / n,
        "accuracy_under_attack": failed / n,
        "success_rate": (n - failed - 1) / (n - 1),
    }
    (folder / "attack" / "attack.json").write_text(
        json.dumps({"settings": {}, "results": [result]})
    )
    examples = [
        {"attack": "homophone", "budget": 0.1, "radius": None, "gold": g,
         "adversarial_prediction": g if r else other[g]}
        for g, r in zip(gold, right, strict=True)
    ]  # fmt: skip
    (folder / "attack" / "examples.jsonl").write_text(
        "".join(json.dumps(e) + "\n" for e in examples)
    )
    return result


def test_paired_numbers_match_counts_made_by_hand(tmp_path):
    gold = ["pos", "pos", "neg", "neg", "pos", "neg"]
    right = {  # right under attack, example by example
        ("none", 0): [1, 1, 0, 0, 1, 0],  # 3/6
        ("none", 1): [1, 0, 0, 1, 0, 0],  # 2/6
        ("fgm", 0): [1, 1, 1, 0, 0, 1],  # 4/6
        ("fgm", 1): [1, 1, 0, 1, 1, 0],  # 4/6
    }
    runs = []
    for (method, seed), vector in right.items():
        folder = tmp_path / f"{method}-{seed}"
        _write_attack(folder, gold, vector)
        kwargs = {"epsilon": 0.5} if method == "fgm" else {}
        config = {"method": method, "method_kwargs": kwargs, "seed": seed, "output": str(folder)}
        runs.append({"config": config, "dev": {"accuracy": 0.9}})
    summary = AttackSweep(["homophone"], examples=6).summarize(runs)
    none, fgm = summary["results"][0]["groups"]
    assert math.isclose(none["accuracy_under_attack_mean"], (3 / 6 + 2 / 6) / 2)
    assert math.isclose(none["accuracy_under_attack_std"], math.sqrt(2) * (1 / 12))
    assert math.isclose(fgm["accuracy_under_attack_mean"], 4 / 6)
    assert fgm["accuracy_under_attack_std"] == 0.0
    assert math.isclose(fgm["clean_accuracy_mean"], 5 / 6)
    assert math.isclose(fgm["success_rate_mean"], 1 / 5)
    versus = fgm["vs_baseline"]
    # differences 1/6 and 2/6: mean 25 points, std |d1 - d2| / sqrt(2)
    assert math.isclose(versus["accuracy_under_attack_diff_points_mean"], 25.0)
    assert math.isclose(versus["accuracy_under_attack_diff_points_std"], (100 / 6) / math.sqrt(2))
    # t = mean / (std / sqrt(2)) = 3 with one degree of freedom (a Cauchy distribution)
    assert math.isclose(versus["paired_t_p"], 1 - 2 * math.atan(3) / math.pi, rel_tol=1e-9)
    # b (none right, fgm wrong): example 4 of seed 0; c: examples 2, 5 of seed 0 and 1, 4 of
    # seed 1. Exact test: P(X <= 1 or X >= 4), X ~ Binomial(5, 1/2) = 12/32
    assert versus["mcnemar"]["b"] == 1 and versus["mcnemar"]["c"] == 4
    assert math.isclose(versus["mcnemar"]["p"], 12 / 32)


# (id, attack flags, what the one line says); the demo data is Chinese
MISTAKES = [
    ("unknown-attack", ["--attack", "fgsm"], ["--attack 'fgsm': unknown attack"]),
    ("no-attack-named", ["--attack", ","], ["--attack: name at least one attack"]),
    (
        "budget-zero",
        ["--attack", "homophone", "--attack-budget", "0"],
        ["--attack-budget 0: must be in (0, 1]"],
    ),
    (
        "budget-not-a-number",
        ["--attack", "homophone", "--attack-budget", "x"],
        ["--attack-budget 'x': expected"],
    ),
    (
        "negative-radius",
        ["--attack", "embedding", "--attack-radius=-0.1"],
        ["--attack-radius -0.1: must be a finite number >= 0"],
    ),
    (
        "zero-examples",
        ["--attack", "embedding", "--attack-examples", "0"],
        ["--attack-examples 0: must be >= 1"],
    ),
    (
        "examples-not-a-number",
        ["--attack", "embedding", "--attack-examples", "x"],
        ["--attack-examples: 'x' is not a whole number"],
    ),
    (
        "typo-on-chinese",
        ["--attack", "homophone,typo"],
        ["--attack typo: it edits Latin-script (e.g. English) text"],
    ),
    ("budget-without-attack", ["--attack-budget", "0.2"], ["--attack-budget: only with --attack"]),
]


@pytest.mark.parametrize(
    ("extra", "needles"), [m[1:] for m in MISTAKES], ids=[m[0] for m in MISTAKES]
)
def test_an_attack_flag_mistake_exits_2_with_one_line_and_writes_nothing(
    demo_data, tmp_path, capsys, extra, needles
):
    out = tmp_path / "out"
    fails_in_one_line(compare_args(demo_data, out, *extra), capsys, *needles)
    assert not out.exists(), "nothing may be written before the flags are checked"


def test_readme_attack_table_and_findings_come_from_the_numbers(tmp_path):
    from .scripts import readme

    experiments = readme("experiments")
    gold = ["pos", "neg", "pos", "neg"]
    right = {("none", 0): [1, 1, 0, 0], ("fgm", 0): [1, 1, 1, 0]}
    right |= {("none", 1): [1, 0, 0, 0], ("fgm", 1): [1, 0, 0, 0]}
    runs = []
    for (method, seed), vector in right.items():
        folder = tmp_path / f"{method}-{seed}"
        _write_attack(folder, gold, vector)
        kwargs = {"epsilon": 0.5} if method == "fgm" else {}
        config = {"method": method, "method_kwargs": kwargs, "seed": seed, "output": str(folder)}
        runs.append({"config": config, "dev": {"accuracy": 0.9}})
    summary = {"robustness": AttackSweep(["homophone"], examples=4).summarize(runs)}
    table = experiments.attack_table(summary)
    # fgm: 3/4 and 1/4, none: 2/4 and 1/4; differences 25 and 0 points (t = 1, one degree of
    # freedom: p = 1/2); b = 0, c = 1 (exact p = 1)
    assert "| homophone, budget 0.1 | none | — | 75.00 ± 0.00 | 37.50 ± 17.68 |" in table
    assert "| fgm | 0.5 | 75.00 ± 0.00 | 50.00 ± 35.36 | 33.33 ± 47.14 |" in table
    assert "| +12.50 ± 17.68 | 0.500 | 0/1, 1.000 |" in table
    summary["groups"] = [
        {"method": "none", "epsilon": None, "vs_baseline": None},
        {
            "method": "fgm",
            "epsilon": 0.5,
            "vs_baseline": {
                "dev_accuracy_diff_points_mean": -1.25,
                "dev_accuracy_diff_points_std": 0.5,
                "mcnemar": {"b": 9, "c": 1, "p": 0.0216},
            },
        },
    ]
    findings = experiments.attack_findings(summary)
    assert "significantly against `none` (McNemar p < 0.05) for: no setting." in findings
    assert "It lowered it significantly for: no setting." in findings
    did_not_help = "(it did not help) for: fgm ε=0.5 under homophone, budget 0.1 (+12.50 points"
    assert did_not_help + ", McNemar p 1.000, paired t p 0.500)." in findings
    assert "on the same seeds: fgm ε=0.5 -1.25 ± 0.50 points (McNemar p 0.022)." in findings
