"""Contracts of the core that the other fast tests leave open, found by mutation testing
(scripts/mutation_report.py; reports/mutation.md names the mutant each test kills)."""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import multiprocessing
import traceback
import warnings
from dataclasses import fields

import pytest
import torch
import torch.distributed as dist
from torch import nn

import advnlp
from advnlp.distributed import sum_rows_across_ranks
from advnlp.perturbation import Perturbation

from .models import plain_lstm


# -- what a method reports about itself -----------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        (
            "fgm",
            {
                "epsilon": 0.25,
                "scope": "example",
                "adversarial_only": True,
                "epsilon_unit": "relative",
            },
        ),
        ("gp", {"epsilon": 0.75}),
        (
            "pgd",
            {
                "epsilon": 0.5,
                "alpha": 0.125,
                "steps": 2,
                "scope": "token",
                "adversarial_only": True,
                "epsilon_unit": "absolute",
            },
        ),
        (
            "freelb",
            {
                "epsilon": 0.5,
                "alpha": 0.125,
                "steps": 4,
                "init_magnitude": 0.0625,
                "epsilon_unit": "relative",
            },
        ),
    ],
)
def test_settings_are_the_arguments_given(name, kwargs):
    """settings() goes into results files: every hyperparameter, under its own name, as given."""
    adv = advnlp.build(name, plain_lstm().model, **kwargs)
    assert adv.settings() == kwargs
    assert list(adv.settings()) == list(advnlp.registry.hyperparameters(name))
    hyper = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    assert repr(adv) == f"{type(adv).__name__}({hyper}, embedding='tokens')"


def test_repr_of_a_half_built_method_works():
    """pytest -l and debuggers show the locals of a failing __init__: repr must not raise."""
    with pytest.raises(advnlp.EmbeddingNotFoundError) as info:
        advnlp.FGM(plain_lstm().model, target="no_such_embedding")
    built = [
        frame.f_locals["self"]
        for frame, _ in traceback.walk_tb(info.tb)
        if isinstance(frame.f_locals.get("self"), advnlp.FGM)
    ]
    expected = (
        "FGM(epsilon=1.0, scope='token', adversarial_only=False, epsilon_unit='absolute', "
        "embedding=None)"
    )
    assert repr(built[0]) == expected


def test_baseline_keeps_the_model_and_names_a_wrong_one():
    model = plain_lstm().model
    adv = advnlp.build("none", model)
    assert adv.model is model and adv.embedding is None and adv.settings() == {}
    with pytest.raises(TypeError, match=r"must be a torch.nn.Module, got str$"):
        advnlp.build("none", "bert-base-chinese")


# -- what a step costs ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "kwargs", "forwards", "backwards"),
    [
        ("none", {}, 1, 1),
        ("fgm", {}, 2, 2),
        ("fgm", {"adversarial_only": True}, 2, 1),
        ("gp", {}, 1, 1),
        ("pgd", {"steps": 1}, 2, 2),
        ("pgd", {"steps": 3}, 4, 2),
        ("pgd", {"steps": 3, "adversarial_only": True}, 4, 1),
        ("freelb", {"steps": 1}, 1, 1),
        ("freelb", {"steps": 3}, 3, 3),
        ("neftune", {}, 1, 1),
        ("r3f", {}, 2, 1),
        ("r3f", {"epsilon": 0.0}, 1, 1),
        ("fgm_free", {}, 1, 1),
        ("awp", {}, 2, 2),
        ("awp", {"start_step": 1}, 1, 1),  # its first call is plain
        ("smart", {}, 3, 1),  # clean, one ascent pass (autograd.grad only), adversarial
        ("smart", {"steps": 3}, 5, 1),
        ("smart", {"epsilon": 0.0}, 1, 1),
        ("smart", {"kl_weight": 0.0}, 1, 1),
        ("vat", {}, 3, 1),
        ("vat", {"steps": 2}, 4, 1),
        ("vat", {"epsilon": 0.0}, 1, 1),
    ],
)
def test_passes_per_step_are_the_documented_ones(name, kwargs, forwards, backwards):
    """FGM 2 forward passes, PGD K + 1, FreeLB K, GP and plain 1; every pass that reaches .grad
    goes through backward=."""
    case = plain_lstm(torch.float32)
    calls = {"forward": 0, "backward": 0}

    def closure():
        calls["forward"] += 1
        return case.closure()

    def backward(loss):
        calls["backward"] += 1
        loss.backward()

    advnlp.build(name, case.model, **kwargs).backward(closure, backward=backward)
    assert calls == {"forward": forwards, "backward": backwards}


# -- the registry ---------------------------------------------------------------------------------
def test_names_resolve_whatever_their_case_spacing_and_dashes():
    resolve = advnlp.registry.resolve
    assert advnlp.method_names() == [
        "none",
        "fgm",
        "gp",
        "pgd",
        "freelb",
        "neftune",
        "r3f",
        "fgm_free",
        "awp",
        "smart",
        "vat",
    ]
    assert resolve(" Gradient-Penalty ") is advnlp.GradientPenalty
    assert resolve("PLAIN") is resolve("baseline") is advnlp.Baseline
    assert resolve("gradientpenalty") is resolve("gp") is advnlp.GradientPenalty


DEFAULTS = {
    "none": {},
    "fgm": {
        "epsilon": 1.0,
        "scope": "token",
        "adversarial_only": False,
        "epsilon_unit": "absolute",
    },
    "gp": {"epsilon": 1.0},
    "pgd": {
        "epsilon": 1.0,
        "alpha": 0.3,
        "steps": 3,
        "scope": "example",
        "adversarial_only": False,
        "epsilon_unit": "absolute",
    },
    "freelb": {
        "epsilon": 1.0,
        "alpha": 0.1,
        "steps": 3,
        "init_magnitude": 0.1,
        "epsilon_unit": "absolute",
    },
    "neftune": {"alpha": 5.0},
    "r3f": {"epsilon": 1e-5, "kl_weight": 1.0, "noise": "uniform"},
    "fgm_free": {"epsilon": 1.0},
    "awp": {
        "adv_lr": 1.0,
        "adv_eps": 0.01,
        "start_step": 0,
        "param_regex": "weight",
        "include_vectors": False,
    },
    "smart": {"epsilon": 1.0, "alpha": 1.0, "steps": 1, "init_std": 1e-5, "kl_weight": 1.0},
    "vat": {"epsilon": 1.0, "alpha": 1.0, "steps": 1, "init_std": 1e-6, "kl_weight": 1.0},
}


@pytest.mark.parametrize("name", list(DEFAULTS))
def test_defaults_are_the_documented_ones(name):
    """The defaults the README and the CLI's --help show."""
    assert advnlp.registry.hyperparameters(name) == DEFAULTS[name]
    assert advnlp.build(name, plain_lstm().model).settings() == DEFAULTS[name]


BAD_VALUES = {
    "epsilon": -1.0,
    "alpha": -1.0,
    "init_magnitude": -1.0,
    "steps": 0,
    "scope": "x",
    "epsilon_unit": "percent",
    "adv_lr": -1.0,
    "adv_eps": float("nan"),
    "start_step": -1,
    "param_regex": "(",
    "include_vectors": "yes",
    "init_std": -1.0,
    "kl_weight": float("inf"),
    "noise": "gaussian",
}


@pytest.mark.parametrize(
    ("name", "argument"),
    [
        (name, argument)
        for name in DEFAULTS
        for argument in DEFAULTS[name]
        if argument in BAD_VALUES
    ],
)
def test_a_bad_value_is_reported_under_its_own_name(name, argument):
    with pytest.raises(advnlp.ConfigError, match=rf"^{argument} must be "):
        advnlp.build(name, plain_lstm().model, **{argument: BAD_VALUES[argument]})


@pytest.mark.parametrize("name", [n for n in DEFAULTS if advnlp.METHODS[n].perturbs])
def test_every_method_passes_target_and_scaler_on(name):
    """'positions' is an embedding the automatic choice never takes: only target= picks it."""
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    adv = advnlp.build(name, plain_lstm().model, target="positions", scaler=scaler)
    assert (adv.embedding_name, adv.scaler) == ("positions", scaler)
    assert advnlp.build(name, plain_lstm().model).embedding_name == "tokens"


def test_build_takes_target_and_scaler_except_for_the_baseline():
    model = plain_lstm().model
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    adv = advnlp.registry.build("fgm", model, epsilon=0.5, target="tokens", scaler=scaler)
    assert (adv.epsilon, adv.embedding_name, adv.scaler) == (0.5, "tokens", scaler)
    with pytest.raises(
        advnlp.ConfigError,
        match=r"^method 'none' takes no hyperparameters, got "
        r"scaler, target$",
    ):
        advnlp.registry.build("none", model, target="tokens", scaler=scaler)
    with pytest.raises(
        advnlp.ConfigError,
        match=r"does not take 'alpha', 'steps'; it takes: "
        r"adversarial_only, data_parallel_group, epsilon, epsilon_unit, scaler, scope, "
        r"start_step, target$",
    ):
        advnlp.registry.build("fgm", model, steps=2, alpha=0.1)


# -- registry.check: the CLI validates settings before any model exists --------------------------
def test_check_accepts_valid_settings_and_plumbing():
    assert advnlp.registry.check("pgd", epsilon=0.5, steps=2, target="no.such.module") is None
    assert advnlp.registry.check("FGM", scope="example", scaler=object()) is None
    assert advnlp.registry.check("none", target="tokens", scaler=object()) is None


@pytest.mark.parametrize(
    ("name", "kwargs", "pattern"),
    [
        ("pgd", {"steps": 0}, r"steps must be an integer >= 1, got 0"),
        ("fgm", {"alpha": 0.1}, r"method 'fgm' does not take 'alpha'"),
        ("fgsm", {}, r"unknown method 'fgsm'"),
    ],
)
def test_check_rejects_what_build_rejects(name, kwargs, pattern):
    with pytest.raises(advnlp.ConfigError, match=pattern):
        advnlp.registry.check(name, **kwargs)


# -- method configs: the one place a hyperparameter lives ------------------------------------------
@pytest.mark.parametrize("name", advnlp.method_names())
def test_the_registry_reads_every_hyperparameter_from_the_config(name):
    """Names, defaults and order of hyperparameters() and settings() are the config's fields."""
    cls = advnlp.registry.resolve(name)
    config = cls.config_class()
    assert advnlp.registry.hyperparameters(name) == dataclasses.asdict(config)
    assert list(advnlp.registry.hyperparameters(name)) == [f.name for f in fields(config)]
    assert all(f.metadata["help"] for f in fields(config))  # the CLI shows it
    adv = cls(plain_lstm().model, config=config)
    assert adv.config is config and adv.settings() == dataclasses.asdict(config)


def test_a_method_takes_keyword_arguments_positional_ones_or_its_config():
    model = plain_lstm().model
    by_name = advnlp.PGD(model, epsilon=0.5, alpha=0.25, steps=2, scope="token")
    by_position = advnlp.PGD(model, 0.5, 0.25, 2, scope="token")
    config = advnlp.PGDConfig(epsilon=0.5, alpha=0.25, steps=2, scope="token")
    by_config = advnlp.PGD(model, config=config)
    assert by_name.settings() == by_position.settings() == by_config.settings()
    assert by_name.config == by_position.config == config
    assert (by_config.epsilon, by_config.steps, by_config.scope) == (0.5, 2, "token")
    with pytest.raises(TypeError, match="positional"):
        advnlp.FGM(model, 0.5, "example")  # scope is keyword-only, as before
    with pytest.raises(TypeError, match="not both"):
        advnlp.FGM(model, epsilon=0.5, config=advnlp.FGMConfig())
    with pytest.raises(TypeError, match=r"FGM takes config=FGMConfig\(...\), got PGDConfig"):
        advnlp.FGM(model, config=advnlp.PGDConfig())


def test_help_shows_the_hyperparameters_as_arguments():
    """The signature the constructor had, from the config (DESIGN.md's public API)."""
    assert str(inspect.signature(advnlp.PGD)) == (
        "(model, epsilon=1.0, alpha=0.3, steps=3, *, scope='example', adversarial_only=False, "
        "epsilon_unit='absolute', config=None, target=None, scaler=None, start_step=0)"
    )
    assert str(inspect.signature(advnlp.Baseline)) == "(model, *, config=None)"


def test_a_subclass_may_add_a_hyperparameter():
    """A config subclass's new field is positional, after the parent's keyword-only ones in
    fields(): the signature orders them as the dataclass's __init__ does."""

    @dataclasses.dataclass
    class ScaledConfig(advnlp.FGMConfig):
        factor: float = 2.0

    class Scaled(advnlp.FGM):
        config_class = ScaledConfig

    assert str(inspect.signature(Scaled)).startswith("(model, epsilon=1.0, factor=2.0, *, scope=")
    adv = Scaled(plain_lstm().model, 0.5, 3.0, scope="example")
    assert adv.settings() == {
        "epsilon": 0.5,
        "scope": "example",
        "adversarial_only": False,
        "epsilon_unit": "absolute",
        "factor": 3.0,
    }


def test_a_subclass_without_a_config_keeps_working():
    """AdversarialMethod is public: a subclass written before configs (its own __init__ and
    settings, as advnlp.robustness's EmbeddingPGD) still builds."""

    class Legacy(advnlp.AdversarialMethod):
        def __init__(self, model, steps: int = 10) -> None:
            super().__init__(model, target="tokens")
            self.steps = steps

    adv = Legacy(plain_lstm().model, steps=3)
    assert (adv.embedding_name, adv.steps, adv.settings()) == ("tokens", 3, {})


def test_a_config_checks_its_values_on_its_own():
    with pytest.raises(advnlp.ConfigError, match=r"^alpha must be a finite number >= 0, got -1"):
        advnlp.FreeLBConfig(alpha=-1)
    assert advnlp.FGMConfig(epsilon=1).epsilon == 1.0 and isinstance(
        advnlp.FGMConfig(epsilon=1).epsilon, float
    )


def test_accepted_keeps_what_a_method_takes():
    values = {"epsilon": 0.5, "alpha": 0.1, "steps": 2, "init_magnitude": 0.0, "scope": "token"}
    accepted = advnlp.registry.accepted
    assert accepted("fgm", values) == {"epsilon": 0.5, "scope": "token"}
    assert accepted("freelb", values) == {
        k: values[k] for k in ("epsilon", "alpha", "steps", "init_magnitude")
    }
    assert accepted("baseline", values | {"target": "x", "scaler": None}) == {}
    assert accepted("gp", {"target": "x", "scaler": None}) == {"target": "x", "scaler": None}


def test_the_baseline_is_a_method_like_the_others():
    model = plain_lstm().model
    adv = advnlp.Baseline(model)
    assert isinstance(adv.config, advnlp.BaselineConfig) and adv.scaler is None
    assert not adv.perturbs and adv.embedding is None
    with pytest.raises(advnlp.ConfigError, match="takes neither target= nor scaler="):
        advnlp.Baseline(model, target="tokens")


# -- Perturbation building blocks -----------------------------------------------------------------
@pytest.mark.parametrize("scope", ["token", "example"])
def test_embedding_call_that_does_not_reach_the_loss_gets_a_zero_gradient(scope):
    """An embedding call whose output the loss never used has no gradient (None): it counts as
    zeros of the hidden width, so it is neither perturbed nor allowed to break the others."""
    first, second = torch.tensor([[1, 2]]), torch.tensor([[3, 4, 0]])
    grad = torch.arange(1.0, 7.0).view(1, 2, 3)
    delta = Perturbation.from_gradients(scope, [first, second], [grad, None], padding_idx=0)
    unused = delta.offset(1, second)
    assert unused.shape == (1, 3, 3)
    assert torch.equal(unused, torch.zeros(1, 3, 3))
    assert torch.equal(delta.offset(0, first), grad)


def test_an_unbatched_call_is_one_example():
    """Example scope, a call fed (T,) ids: its (T, H) output is one example with one norm."""
    ids, grad = torch.tensor([1, 2, 3]), torch.tensor([[3.0, 0.0], [0.0, 4.0], [0.0, 0.0]])
    delta = Perturbation.from_gradients("example", [ids], [grad], padding_idx=None)
    assert torch.equal(delta.norms()[0], torch.tensor(5.0))
    torch.testing.assert_close(delta.normalized(1.0).offset(0, ids), grad / (5.0 + 1e-8))


def test_masks_and_starts_are_made_on_the_device_of_the_batch():
    """'meta' stands in for an accelerator: a mask made on the CPU could not be multiplied."""
    ids = torch.ones(2, 3, dtype=torch.long, device="meta")
    grad = torch.empty(2, 3, 4, device="meta")
    assert Perturbation.from_gradients("example", [ids], [grad], None).parts[0].is_meta
    assert Perturbation.from_gradients("example", [ids], [grad], 0).parts[0].is_meta
    assert Perturbation.random_start(ids, grad, None, 1.0).is_meta


def test_token_perturbations_of_different_batches_cannot_be_added():
    rows = torch.ones(2, 3)
    first = Perturbation("token", [rows], torch.tensor([1, 2]))
    second = Perturbation("token", [rows], torch.tensor([1, 3]))
    with pytest.raises(RuntimeError, match=r"^token-scope perturbations of different batches "):
        first + second


@pytest.mark.parametrize(("norm", "radius"), [(3.0, 1.0), (2e-8, 1e-8), (0.5, 1.0)])
def test_clipped_is_the_seed_projection(norm, radius):
    """p * min(1, radius / (||p|| + 1e-8)), the 1e-8 included."""
    part = torch.tensor([[[0.6 * norm, 0.8 * norm]]], dtype=torch.float64)
    clipped = Perturbation("example", [part]).clipped(radius).parts[0]
    factor = min(1.0, radius / (norm + 1e-8))
    torch.testing.assert_close(clipped, part * factor, rtol=1e-13, atol=0)


@pytest.mark.parametrize(
    "ids",
    [
        torch.tensor([4, 5, 0]),  # one call without a batch dimension: a single example
        torch.tensor([[3, 0, 0, 0], [1, 2, 3, 4]]),  # one real coordinate in the first example
        torch.tensor([[[1, 2, 0], [3, 0, 0]], [[5, 6, 7], [8, 9, 1]]]),  # (B, choices, T)
    ],
)
def test_random_start_scales_each_example_by_its_own_real_coordinates(ids):
    """U(-1, 1) noise times magnitude / sqrt(non-padding coordinates of its example), where an
    example is everything under one index of the first dimension (or the whole call)."""
    like = torch.zeros(*ids.shape, 1, dtype=torch.float64)
    torch.manual_seed(7)
    noise = torch.empty_like(like).uniform_(-1, 1)
    mask = (ids != 0).unsqueeze(-1).double()
    per_example = mask.sum() if ids.dim() == 1 else mask.flatten(1).sum(1)
    scale = (0.5 / per_example.sqrt()).view(-1, *[1] * (like.dim() - 1))
    torch.manual_seed(7)
    start = Perturbation.random_start(ids, like, padding_idx=0, magnitude=0.5)
    torch.testing.assert_close(start, noise * mask * scale, rtol=1e-12, atol=0)


def test_random_start_without_padding_is_computed_in_float64():
    """No padding index: every coordinate counts, and float64 stays float64 throughout."""
    like = torch.zeros(1, 3, 1, dtype=torch.float64)
    torch.manual_seed(3)
    start = Perturbation.random_start(torch.tensor([[1, 0, 2]]), like, None, 1.0)
    torch.manual_seed(3)
    noise = torch.empty_like(like).uniform_(-1, 1)
    torch.testing.assert_close(
        start, noise / torch.tensor(3.0, dtype=torch.float64).sqrt(), rtol=1e-15, atol=0
    )


def test_random_start_of_half_precision_is_drawn_in_float32():
    like = torch.zeros(2, 3, 4, dtype=torch.bfloat16)
    torch.manual_seed(0)
    start = Perturbation.random_start(torch.ones(2, 3, dtype=torch.long), like, None, 1.0)
    torch.manual_seed(0)
    noise = torch.empty(2, 3, 4).uniform_(-1, 1)
    assert start.dtype == torch.float32
    torch.testing.assert_close(start, noise / 12**0.5, rtol=1e-6, atol=0)


class TwoCalls(nn.Module):
    """Calls its embedding twice and uses only the first output (e.g. a lookup it only logs)."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4, padding_idx=0)
        self.head = nn.Linear(4, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        used = self.tokens(ids)
        self.tokens(ids.flip(0))
        return nn.functional.cross_entropy(self.head(used.mean(1)), torch.tensor([0, 1]))


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("fgm", {"adversarial_only": True}),
        ("fgm", {"adversarial_only": True, "scope": "example"}),
        ("pgd", {"steps": 2}),
        ("gp", {}),
    ],
)
@pytest.mark.parametrize("scaled", [False, True])
def test_an_embedding_output_the_loss_does_not_use_is_fine(name, kwargs, scaled):
    torch.manual_seed(0)
    model = TwoCalls()
    ids = torch.tensor([[1, 2, 0], [3, 4, 5]])
    scaler = torch.amp.GradScaler("cpu", init_scale=16.0, enabled=scaled)
    adv = advnlp.build(name, model, scaler=scaler, **kwargs)
    loss = adv.backward(lambda: model(ids), backward=lambda loss: scaler.scale(loss).backward())
    assert torch.isfinite(loss)
    assert torch.isfinite(model.head.weight.grad).all()


class IgnoresTokens(nn.Module):
    """Runs its embedding but computes the loss from a bias alone."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4)
        self.bias = nn.Parameter(torch.ones(3))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.tokens(ids)
        return (self.bias**2).sum()


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [("fgm", {}), ("fgm", {"adversarial_only": True, "scope": "example"}), ("pgd", {})],
)
def test_a_loss_that_ignores_the_embedding_gets_no_perturbation(name, kwargs):
    model = IgnoresTokens()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        advnlp.build(name, model, **kwargs).backward(lambda: model(torch.tensor([[1, 2]])))
    assert torch.isfinite(model.bias.grad).all()


class SumsPadding(nn.Module):
    """A loss that reads the padding positions too (no attention mask), recording its input."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4, padding_idx=0)
        self.head = nn.Linear(4, 1)
        self.seen: list[torch.Tensor] = []

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        e = self.tokens(ids)
        self.seen.append(e.detach().clone())
        return self.head(e.tanh()).sum()


@pytest.mark.parametrize("scope", ["token", "example"])
def test_padding_is_never_perturbed_even_where_the_loss_reads_it(scope):
    torch.manual_seed(0)
    model = SumsPadding()
    ids = torch.tensor([[1, 2, 0], [3, 0, 0]])
    advnlp.FGM(model, epsilon=1.0, scope=scope).backward(lambda: model(ids))
    clean, adversarial = model.seen
    padding = ids == 0
    assert torch.equal(adversarial[padding], clean[padding])
    assert not torch.equal(adversarial[~padding], clean[~padding])


def test_a_non_finite_gradient_warning_names_the_method():
    case = plain_lstm(torch.float32)
    message = (
        r"^PGD: the gradient of the embedding output is not finite \(inf/nan, e.g. fp16 "
        r"overflow\); this ascent step is not taken \(with no step taken, the step is not "
        r"perturbed\)$"
    )
    with pytest.warns(RuntimeWarning, match=message) as record:
        advnlp.PGD(case.model).backward(lambda: case.closure() * torch.tensor(float("inf")))
    assert record[0].filename != advnlp.base.__file__  # stacklevel: not the helper that warns


def test_fewer_embedding_calls_in_a_later_pass_is_an_error():
    """Example scope keeps one delta per embedding call: a closure that makes fewer calls in a
    later pass does not run the same batch, and must not be silently accepted."""
    case = plain_lstm(torch.float32)
    calls = []

    def closure():
        calls.append(1)
        if len(calls) == 1:
            case.model.tokens(case.ids)  # an extra call in the first pass only
        return case.closure()

    with pytest.raises((RuntimeError, ValueError)):
        advnlp.PGD(case.model, steps=2).backward(closure)


class BigGradient(nn.Module):
    """A float16 embedding whose output gradient is 40000: finite in float16 (max 65504), but
    not once doubled."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4).half()
        self.scale = nn.Parameter(torch.full((4,), 40000.0, dtype=torch.float16))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.tokens(ids) * self.scale).sum().float()


@pytest.mark.parametrize("name", ["fgm", "pgd"])
def test_without_a_scaler_half_gradients_are_taken_at_scale_one(name):
    model = BigGradient()
    ids = torch.tensor([[1, 2, 3]])
    adv = advnlp.build(name, model, epsilon=0.5, adversarial_only=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflowing gradient would warn "not finite"
        adv.backward(lambda: model(ids))
    assert torch.isfinite(model.scale.grad.float()).all()


def test_gradient_penalty_is_the_same_under_a_scaler_of_scale_two():
    """The penalty is taken on unscaled gradients, whatever the scale (2 included)."""
    case = plain_lstm(torch.float32)
    plain = advnlp.GradientPenalty(case.model)
    plain.backward(case.closure)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0)
    scaled = advnlp.GradientPenalty(case.model, scaler=scaler)
    scaled.backward(case.closure, backward=lambda loss: scaler.scale(loss).backward())
    torch.testing.assert_close(scaled.last_penalty, plain.last_penalty, rtol=1e-6, atol=0)


# -- gradient penalty ------------------------------------------------------------------------------
class HalfModel(nn.Module):
    """A float16 embedding whose output gradient is 300 everywhere: 300^2 overflows float16."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4).half()
        self.scale = nn.Parameter(torch.full((4,), 300.0, dtype=torch.float16))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.tokens(ids) * self.scale).sum().float()


def test_gradient_penalty_has_no_last_penalty_before_its_first_step():
    assert advnlp.GradientPenalty(plain_lstm().model).last_penalty is None


def test_gradient_penalty_squares_half_gradients_in_float32():
    model = HalfModel()
    adv = advnlp.GradientPenalty(model, epsilon=1.0)
    ids = torch.tensor([[1, 2, 3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a non-finite penalty would warn
        adv.backward(lambda: model(ids))
    assert adv.last_penalty.dtype == torch.float32
    assert float(adv.last_penalty) == 0.5 * 3 * 4 * 300.0**2


class TinyGradient(nn.Module):
    """A float16 embedding whose output gradient is 1e-6: subnormal in float16."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(10, 4).half()
        self.scale = nn.Parameter(torch.ones(4, dtype=torch.float16))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return (self.tokens(ids) * self.scale).sum().float() * 1e-6


def test_gradient_penalty_unscales_half_gradients_in_float32():
    """Under a GradScaler the scaled fp16 gradient (about 0.066) is divided by the scale in
    float32; divided in float16 it would land on the subnormal grid (1e-6 off by 1.3%)."""
    model = TinyGradient()
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**16)
    adv = advnlp.GradientPenalty(model, scaler=scaler)
    adv.backward(
        lambda: model(torch.tensor([[1, 2, 3]])), lambda loss: scaler.scale(loss).backward()
    )
    assert float(adv.last_penalty) == pytest.approx(6e-12, rel=2e-3, abs=0)


def test_gradient_penalty_warns_when_the_penalty_is_not_finite():
    case = plain_lstm(torch.float32)
    adv = advnlp.GradientPenalty(case.model)
    message = (
        r"^GradientPenalty: the penalty is not finite \(inf/nan, e.g. fp16 overflow\); "
        r"this step trains on the plain loss$"
    )
    with pytest.warns(RuntimeWarning, match=message) as record:
        adv.backward(lambda: case.closure() * torch.tensor(float("inf")))
    # it points at the caller's code, not at advnlp's (stacklevel)
    assert record[0].filename != advnlp.methods.gradient_penalty.__file__


# -- two real ranks (gloo on CPU, forked from this process: no interpreter start-up) --------------
def _run_ranks(folder, work, *args) -> list:
    """Run ``work(rank, *args)`` in 2 forked processes joined in a gloo group; their results."""
    context = multiprocessing.get_context("fork")
    ranks = [context.Process(target=_rank, args=(folder, r, work, args)) for r in range(2)]
    for process in ranks:
        process.start()
    for process in ranks:
        process.join(timeout=20)
    for process in ranks:
        if process.is_alive():  # a rank waiting for a collective the other never joins
            process.kill()
            process.join()
    assert [p.exitcode for p in ranks] == [0, 0]
    return [torch.load(folder / f"rank{r}.pt") for r in range(2)]


def _rank(folder, rank: int, work, args) -> None:
    torch.set_num_threads(1)  # the parent's OpenMP thread pool did not survive the fork
    store = dist.FileStore(str(folder / "store"), 2)
    timeout = datetime.timedelta(seconds=30)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=2, timeout=timeout)
    try:
        torch.save(work(rank, *args), folder / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _gathered(rank: int) -> list:
    return advnlp.distributed._gather(torch.tensor([rank, 10 + rank]), dist.group.WORLD)


def test_gather_collects_every_rank_in_rank_order(tmp_path):
    # one rank in this process (so that mutmut sees this test reach _gather), then two
    store = dist.FileStore(str(tmp_path / "alone"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        alone = advnlp.distributed._gather(torch.tensor([4, 2]), dist.group.WORLD)
        assert [t.tolist() for t in alone] == [[4, 2]]
    finally:
        dist.destroy_process_group()
    expected = [torch.tensor([0, 10]), torch.tensor([1, 11])]
    for result in _run_ranks(tmp_path, _gathered):
        assert len(result) == 2
        assert all(torch.equal(a, b) for a, b in zip(result, expected, strict=True))


ROWS = {  # rank -> (sorted distinct ids of its batch, their gradient rows): 4 rows vs 2
    0: (
        torch.tensor([0, 2, 3, 5], dtype=torch.int32),
        torch.tensor([[7.0, 8], [1, 2], [3, 4], [5, 6]]),
    ),
    1: (torch.tensor([3, 4], dtype=torch.int32), torch.tensor([[10.0, 20], [30, 40]])),
}


def _summed_rows(rank: int) -> dict:
    keys, rows = ROWS[rank]
    token = sum_rows_across_ranks(Perturbation("token", [rows], keys), dist.group.WORLD)
    example = Perturbation("example", [rows])
    return {
        "keys": token.keys,
        "rows": token.parts[0],
        "scope": token.scope,
        "example_untouched": sum_rows_across_ranks(example, dist.group.WORLD) is example,
        "world_size": advnlp.distributed.group_size(dist.group.WORLD),
    }


def test_token_rows_are_summed_over_ranks_by_token_id(tmp_path):
    """Each rank holds the rows of its own batch's tokens; all get the global batch's rows."""
    keys, rows = ROWS[0]
    alone = Perturbation("token", [rows], keys)
    assert sum_rows_across_ranks(alone, None) is alone  # no group: nothing to exchange
    for result in _run_ranks(tmp_path, _summed_rows):
        assert result["world_size"] == 2
        # the ids' dtype is kept (int32 here), and padding slots never become ids
        assert result["keys"].dtype == torch.int32
        assert result["keys"].tolist() == [0, 2, 3, 4, 5]  # 0 is a token like any other
        assert result["scope"] == "token"
        expected = torch.tensor([[7.0, 8.0], [1.0, 2.0], [13.0, 24.0], [30.0, 40.0], [5.0, 6.0]])
        assert torch.equal(result["rows"], expected)
        assert result["example_untouched"]  # example scope: nothing to exchange


def _local_penalty(rank: int) -> float:
    case = plain_lstm(torch.float64)
    half = slice(2 * rank, 2 * rank + 2)
    labels = torch.arange(4)[half] % 3
    adv = advnlp.GradientPenalty(case.model, epsilon=1.5, data_parallel_group=dist.group.WORLD)
    adv.backward(lambda: case.model(case.ids[half], labels))
    return float(adv.last_penalty)


def test_gradient_penalty_of_two_ranks_averages_to_the_global_batch(tmp_path):
    """DDP averages the ranks' gradients, so the ranks' penalties must average to the penalty
    of the global batch: each rank divides its own by its group's size (see distributed.py)."""
    case = plain_lstm(torch.float64)
    adv = advnlp.GradientPenalty(case.model, epsilon=1.5)
    adv.backward(case.closure)
    ranks = _run_ranks(tmp_path, _local_penalty)
    assert sum(ranks) / 2 == pytest.approx(float(adv.last_penalty), rel=1e-12)
