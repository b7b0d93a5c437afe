"""The warm-up (``start_step=N``): the first N steps are exactly the plain step, with no hook of
the method on the embedding; from step N + 1 on they are the method's. Every method that takes
it gets it from the base class; the Trainer counts optimizer steps; bad values are named; the
CLI's --start-step reaches the method."""

from __future__ import annotations

import json

import pytest
import torch

import advnlp
from advnlp.registry import arguments

from .models import SETTINGS, grads, plain_lstm, tiny_bert, trainer_args, trainer_rows, zero

WARMED = [name for name in advnlp.method_names() if "start_step" in arguments(name)]


def _step(case, adv, seed: int = 1):
    """One ``adv.backward`` from zeroed gradients: (the gradients, the number of forward hooks
    on the token embedding at each call of the closure)."""
    zero(case.model)
    hooks = []

    def closure():
        hooks.append(len(case.model.tokens._forward_hooks))
        return case.closure()

    torch.manual_seed(seed)  # the same noise (FreeLB's start, NEFTune, R3F) in every step
    adv.backward(closure)
    return grads(case.model), hooks


def test_every_method_but_the_baseline_takes_it():
    assert set(advnlp.method_names()) - set(WARMED) == {"none"}


@pytest.mark.parametrize("name", WARMED)
def test_warm_up_steps_are_plain_then_the_method_runs(name):
    """Two steps of a method with start_step=2 are the plain step; its next two are those of
    the method without one (FreeFGM perturbs from its second step: two are compared)."""
    case = plain_lstm(torch.float64)
    plain, _ = _step(case, advnlp.build("none", case.model))
    fresh = advnlp.build(name, case.model, **SETTINGS[name])
    method = [_step(case, fresh)[0] for _ in range(2)]
    assert any(not torch.equal(plain[n], m[n]) for m in method for n in plain), "no effect"

    adv = advnlp.build(name, case.model, start_step=2, **SETTINGS[name])
    for step in (1, 2):  # no optimizer step in between: the weights are the same each time
        got, hooks = _step(case, adv)
        assert hooks == [0], f"step {step}: one pass, with no hook on the embedding"
        for param, value in got.items():
            assert torch.equal(value, plain[param]), f"step {step}: {param}"
    for step, expected in zip((3, 4), method, strict=True):
        got, hooks = _step(case, adv)
        for param, value in got.items():
            assert torch.equal(value, expected[param]), f"step {step}: {param}"
        if advnlp.METHODS[name].perturbs:
            assert max(hooks) == 1, hooks  # its hook is on again
    assert adv.steps_done == 4


def test_zero_is_no_warm_up():
    case = plain_lstm(torch.float64)
    method, _ = _step(case, advnlp.FGM(case.model, epsilon=0.5))
    got, hooks = _step(case, advnlp.FGM(case.model, epsilon=0.5, start_step=0))
    assert hooks == [1, 1]
    assert all(torch.equal(got[n], method[n]) for n in got)


def test_a_subclass_calling_super_counts_one_step():
    class Logged(advnlp.FGM):
        def backward(self, closure, backward=None):
            return super().backward(closure, backward)

    case = plain_lstm(torch.float64)
    adv = Logged(case.model, epsilon=0.5, start_step=1)
    assert _step(case, adv)[1] == [0]
    assert _step(case, adv)[1] == [1, 1]
    assert adv.steps_done == 2


def test_config_and_start_step_go_together():
    """start_step is not a hyperparameter of FGM's config: it may come beside config=."""
    model = plain_lstm().model
    adv = advnlp.FGM(model, config=advnlp.FGMConfig(epsilon=0.5), start_step=4)
    assert (adv.epsilon, adv.start_step) == (0.5, 4)
    assert "start_step" not in adv.settings()  # the method's settings stay its config's
    assert advnlp.AWP(model, start_step=3).settings()["start_step"] == 3  # AWP's is its own


@pytest.mark.parametrize(
    ("value", "shown"), [(-1, "-1"), (True, "True"), (1.5, "1.5"), (2.0, "2.0"), ("3", "'3'")]
)
@pytest.mark.parametrize("name", ["fgm", "gp", "awp"])
def test_a_bad_value_is_named(name, value, shown):
    pattern = rf"^start_step must be an integer >= 0, got {shown}$"
    with pytest.raises(advnlp.ConfigError, match=pattern):
        advnlp.build(name, plain_lstm().model, start_step=value)
    with pytest.raises(advnlp.ConfigError, match=pattern):  # checked before any model exists
        advnlp.registry.check(name, start_step=value)


def test_the_baseline_takes_none():
    with pytest.raises(advnlp.ConfigError, match=r"takes no hyperparameters, got start_step$"):
        advnlp.build("none", plain_lstm().model, start_step=1)


# -- the Trainer counts optimizer steps ------------------------------------------------------------
def test_trainer_counts_optimizer_steps_under_gradient_accumulation(tmp_path):
    """With 2 micro-batches per optimizer step and start_step=1, both micro-batches of the
    first optimizer step are plain (1 pass each) and every later one is FGM's (2 passes):
    counting calls of backward would perturb the first step's second micro-batch."""
    pytest.importorskip("transformers")
    from advnlp.hf import AdversarialTrainer

    passes: dict[int, int] = {}

    class Counting(AdversarialTrainer):
        def compute_loss(self, model, inputs, **kwargs):
            step = self.state.global_step
            passes[step] = passes.get(step, 0) + 1
            return super().compute_loss(model, inputs, **kwargs)

    case = tiny_bert(torch.float32)
    rows = trainer_rows(case.ids)
    args = trainer_args(
        tmp_path,
        per_device_train_batch_size=2,  # 4 rows: 2 micro-batches, one optimizer step an epoch
        gradient_accumulation_steps=2,
        max_steps=2,
    )
    trainer = Counting(
        model=case.model,
        args=args,
        train_dataset=rows,
        method="fgm",
        method_kwargs={"epsilon": 0.5, "start_step": 1},
    )
    trainer.train()
    assert passes == {0: 2, 1: 4}


# -- the command line -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def data(tmp_path_factory):
    pytest.importorskip("datasets")
    from .cli_data import write_splits

    return write_splits(tmp_path_factory.mktemp("data"))


def _train(data, out, *extra):
    from advnlp.cli import main

    from .cli_data import SMALL_RUN

    train, dev = data
    argv = ["train", "--train", str(train), "--dev", str(dev), "--output", str(out)]
    return main([*argv, "--epochs", "1", *SMALL_RUN, *extra])


def test_the_flag_reaches_the_method_and_results_json(data, tmp_path):
    """FGM (a large epsilon) whose warm-up covers the whole run trains exactly as `none`
    (same seed, same batches): the flag got to the method. results.json records it."""
    assert _train(data, tmp_path / "none", "--method", "none") == 0
    assert _train(data, tmp_path / "fgm", "--method", "fgm", "--epsilon", "5",
                  "--start-step", "1000") == 0  # fmt: skip
    none, fgm = (json.loads((tmp_path / n / "results.json").read_text()) for n in ("none", "fgm"))
    assert fgm["config"]["start_step"] == 1000 and none["config"]["start_step"] == 0
    assert _scores(fgm) == _scores(none)
    assert _scores(fgm)[0]["train_loss"] is not None


def _scores(results: dict) -> list[dict]:
    """Each epoch's train loss and dev scores (not its timings)."""
    from advnlp.experiment.results import TIMINGS

    return [{k: v for k, v in e.items() if k not in TIMINGS} for e in results["epochs"]]


@pytest.mark.parametrize(
    ("command", "value", "needle"),
    [
        ("train", "-1", "--start-step: -1 is out of range"),
        ("train", "1.5", "--start-step: '1.5' is not a whole number"),
        ("compare", "-2", "--start-step: -2 is out of range"),
    ],
)
def test_a_bad_flag_gives_one_line_and_writes_nothing(command, value, needle, data, tmp_path,
                                                      capsys):  # fmt: skip
    from advnlp.cli import main

    train, dev = data
    out = tmp_path / "out"
    argv = [command, "--train", str(train), "--dev", str(dev), "--output", str(out)]
    assert main([*argv, "--start-step", value]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()
