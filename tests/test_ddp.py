"""DDP with 2 real processes (torchrun, gloo on CPU): after one step, every rank's gradients
equal single-process gradients on the global batch, with one gradient all-reduce per step
when the method is given the DDP wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import advnlp

from .ddp_worker import CASES, GLOBAL_BATCH, LOCAL_CASES, STEPS
from .launch import torchrun
from .models import NOISE, SETTINGS, noiseless, tiny_bert, zero

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    result = torchrun(str(WORKER), str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def _single_process(method, kwargs):
    """Gradients, loss and the number of backward passes (those that reach .grad) of the last
    step, each step seeded as in the worker (methods that draw noise draw it on)."""
    case = tiny_bert(torch.float64)
    adv = advnlp.build(method, case.model, **kwargs)
    passes: list[None] = []
    for step in range(STEPS.get(method, 1)):
        zero(case.model)
        passes.clear()
        torch.manual_seed(123 + step)
        loss = adv.backward(case.closure, backward=lambda loss: passes.append(loss.backward()))
    assert len(case.ids) == GLOBAL_BATCH
    return {n: p.grad for n, p in case.model.named_parameters()}, loss, len(passes)


@pytest.mark.parametrize(("name", "method", "kwargs", "given"), CASES, ids=[c[0] for c in CASES])
def test_ddp_gradients_equal_single_process(ranks, name, method, kwargs, given):
    """To 1e-5 as promised, measured at most 3e-7 (float64): each rank's local mean loss has
    world_size times the per-example gradient of the global one, and the 1e-8 floor of
    g / (||g|| + 1e-8) is not scale invariant; everything else agrees to ~1e-16."""
    expected, _, _ = _single_process(method, kwargs)
    for rank in ranks:
        grads = rank[name]["grads"]
        for param, value in expected.items():
            torch.testing.assert_close(grads[param], value, rtol=1e-5, atol=1e-6, msg=param)


@pytest.mark.parametrize("method", sorted(NOISE))
def test_the_noise_is_on_in_the_ddp_cases(ranks, method):
    """The cases above run the methods that draw noise (or, FreeFGM, use rows cached by an
    earlier step) with it: each rank's step differs from the noiseless one."""
    noiseless_grads, _, _ = _single_process(method, noiseless(method, SETTINGS[method]))
    for rank in ranks:
        grads = rank[f"{method}-inner"]["grads"]
        assert any(not torch.allclose(grads[n], v) for n, v in noiseless_grads.items()), method


@pytest.mark.parametrize(("name", "method", "kwargs", "given"), CASES, ids=[c[0] for c in CASES])
def test_ddp_communication(ranks, name, method, kwargs, given):
    stats = ranks[0][name]
    _, _, passes_with_grads = _single_process(method, kwargs)
    if given == "wrapper":
        # delta-building passes ran under no_sync; AWP's clean pass is reduced on purpose (every
        # rank perturbs its weights by the same global gradient)
        assert stats["all_reduce"] == (2 if method == "awp" else 1), stats
    else:
        # the inner module: no no_sync possible, every pass that reaches .grad all-reduces
        assert stats["all_reduce"] == passes_with_grads, stats
    token = kwargs.get("scope", "token" if method in ("fgm", "fgm_free") else "example") == "token"
    ascents = (
        {"fgm": 1, "fgm_free": 1, "pgd": kwargs.get("steps", 0)}.get(method, 0) if token else 0
    )
    assert stats["all_gather"] == 3 * ascents, stats  # counts, ids, rows per ascent step


@pytest.mark.parametrize(
    ("name", "method", "kwargs", "given"), LOCAL_CASES, ids=[c[0] for c in LOCAL_CASES]
)
def test_no_data_parallel_group_is_a_single_process(ranks, name, method, kwargs, given):
    """A plain model in a 2-rank job (or one given a group of its own rank only) gets the
    single-process gradients of its local batch to float64 rounding (thread counts differ
    between the workers and this process; the halved penalty of before differed by ~0.2
    relative), and issues no collective."""
    for rank in ranks:
        stats = rank[name]
        case = tiny_bert(torch.float64)
        adv = advnlp.build(method, case.model, **kwargs)
        adv.backward(lambda model=case.model, batch=stats["batch"]: model(**batch).loss)
        for param, value in case.model.named_parameters():
            torch.testing.assert_close(stats["grads"][param], value.grad, rtol=1e-12, atol=1e-15)
        assert stats["all_gather"] == stats["collective_all_reduce"] == 0, stats


def _advnlp_on_two_processes(command: str, train: Path, dev: Path, out: Path, *flags: str):
    """``advnlp COMMAND --train --dev --output FLAGS`` under torchrun; the finished process,
    which exited 0."""
    result = torchrun(
        "-m", "advnlp", command, "--train", str(train), "--dev", str(dev), "--output", str(out),
        *flags,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_advnlp_train_with_two_processes(tmp_path):
    """The CLI under torchrun: the Trainer distributes, rank 0 alone writes the results."""
    import json

    from .cli_data import SMALL_RUN, write_splits

    train, dev = write_splits(tmp_path / "data", train=64, dev=16)
    out = tmp_path / "run"
    result = _advnlp_on_two_processes(
        "train", train, dev, out, "--method", "fgm", "--epsilon", "0.1", "--epochs", "2",
        *SMALL_RUN,
    )  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["world_size"] == 2
    assert results["steps"] == 2 * 64 // (8 * 2)  # 2 epochs of a global batch of 16
    assert result.stdout.count("best epoch") == 1  # printed by rank 0 only
    assert (out / "model" / "model.safetensors").exists()


def test_advnlp_compare_with_two_processes(tmp_path):
    import json

    from .cli_data import SMALL_RUN, write_splits

    train, dev = write_splits(tmp_path / "data", train=48, dev=16)
    out = tmp_path / "cmp"
    result = _advnlp_on_two_processes(
        "compare", train, dev, out, "--methods", "none,fgm", "--epsilon", "0.1", "--seeds", "0",
        "--epochs", "1", *SMALL_RUN, "--model", "scratch-tiny",
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert {r["id"] for r in summary["runs"]} == {"none-seed0", "fgm-eps0.1-seed0"}
    assert result.stdout.count("summary:") == 1
