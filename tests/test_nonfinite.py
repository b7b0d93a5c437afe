"""A non-finite gradient of the embedding output (an fp16 overflow, say) never reaches the
weights through the perturbation: the ascent step it would give is not taken, and when no step
is taken ``.grad`` is left exactly as a plain step leaves it.

The model below makes the gradient at its embedding output +inf in chosen forward calls only
(the first, or every one), so each method meets the overflow in the pass it would build its
perturbation from, and the test can tell the skipped step from a poisoned one.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import advnlp

from .launch import ENV
from .models import HIDDEN, LABELS, PAD, VOCAB, grads, token_batch


class InfGradient(torch.autograd.Function):
    """Identity forward; +inf added to the gradient on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad + float("inf")


class Overflowing(nn.Module):
    """Embedding -> (+inf gradient in the poisoned calls) -> masked mean -> tanh layer -> head."""

    def __init__(self, poison: str, *, frozen: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.tokens = nn.Embedding(VOCAB, HIDDEN, padding_idx=PAD)
        self.tokens.weight.requires_grad_(not frozen)
        self.hidden = nn.Linear(HIDDEN, HIDDEN)
        self.head = nn.Linear(HIDDEN, LABELS)
        self.poison, self.calls = poison, 0

    def forward(self, ids: Tensor, labels: Tensor) -> Tensor:
        e = self.tokens(ids)  # (B, T, H)
        self.calls += 1
        if self.poison == "every" or (self.poison == "first" and self.calls == 1):
            e = InfGradient.apply(e)
        mask = (ids != PAD).unsqueeze(-1).to(e.dtype)
        pooled = (e * mask).sum(1) / mask.sum(1).clamp_min(1)
        return F.cross_entropy(self.head(torch.tanh(self.hidden(pooled))), labels)


IDS = token_batch()  # padded, with repeated tokens
LABELS_ = torch.arange(len(IDS)) % LABELS

PLAIN = None  # expected: the gradients of one plain backward
# (name, settings, expected when only the first pass overflows). PGD's first ascent step is
# not taken; its next pass is unperturbed, so it ends as PGD with one step fewer.
CASES = [
    ("none", {}, PLAIN),
    ("fgm", {"epsilon": 0.5, "scope": "token"}, PLAIN),
    ("fgm", {"epsilon": 0.5, "scope": "example"}, PLAIN),
    ("fgm", {"epsilon": 0.5, "scope": "token", "adversarial_only": True}, PLAIN),
    ("fgm", {"epsilon": 0.5, "scope": "example", "adversarial_only": True}, PLAIN),
    ("gp", {"epsilon": 1.0}, PLAIN),
    ("pgd", {"epsilon": 0.5, "alpha": 0.3, "steps": 1}, PLAIN),
    ("pgd", {"epsilon": 0.5, "alpha": 0.3, "steps": 1, "adversarial_only": True}, PLAIN),
    ("pgd", {"epsilon": 0.5, "alpha": 0.3, "steps": 2, "scope": "token"}, {"steps": 1}),
    ("pgd", {"epsilon": 0.5, "alpha": 0.3, "steps": 2, "adversarial_only": True}, {"steps": 1}),
    # FreeLB has no clean pass: delta stays at its start (0 here), every pass is a plain one.
    ("freelb", {"epsilon": 0.5, "alpha": 0.3, "steps": 2, "init_magnitude": 0.0}, PLAIN),
]
IDS_OF_CASES = [f"{n}-{'-'.join(f'{k}={v}' for k, v in s.items())}" for n, s, _ in CASES]


def _expected(name: str, kwargs: dict, expected: dict | None, *, frozen: bool) -> dict:
    """What the documented choice says, computed on a model that never overflows."""
    model = Overflowing("never", frozen=frozen)
    if expected is PLAIN:
        model(IDS, LABELS_).backward()
    else:
        adv = advnlp.build(name, model, **{**kwargs, **expected})
        adv.backward(lambda: model(IDS, LABELS_))
    return grads(model)


def _run(name: str, kwargs: dict, poison: str, *, frozen: bool) -> tuple[Overflowing, list]:
    model = Overflowing(poison, frozen=frozen)
    adv = advnlp.build(name, model, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = adv.backward(lambda: model(IDS, LABELS_))
    assert torch.isfinite(loss)
    return model, [w for w in caught if issubclass(w.category, RuntimeWarning)]


def _assert_equal(model: nn.Module, expected: dict, skip: tuple[str, ...] = ()) -> None:
    for param, value in grads(model).items():
        if param in skip:
            continue
        assert torch.isfinite(value).all(), f"{param}: .grad is not finite"
        torch.testing.assert_close(value, expected[param], rtol=1e-6, atol=1e-9, msg=param)


@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES, ids=IDS_OF_CASES)
def test_overflow_in_the_first_pass_is_skipped_not_spread(name, kwargs, expected):
    """Frozen embedding: no parameter sits before the overflow, so every .grad must be finite
    and equal to what the skip promises."""
    model, warned = _run(name, kwargs, "first", frozen=True)
    _assert_equal(model, _expected(name, kwargs, expected, frozen=True))
    assert bool(warned) == (name != "none"), [str(w.message) for w in warned]


@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES, ids=IDS_OF_CASES)
def test_overflow_in_every_pass_gives_a_plain_step(name, kwargs, expected):
    model, _ = _run(name, kwargs, "every", frozen=True)
    _assert_equal(model, _expected(name, kwargs, PLAIN, frozen=True))


@pytest.mark.parametrize(("name", "kwargs", "expected"), CASES, ids=IDS_OF_CASES)
def test_trained_embedding_gets_no_nan(name, kwargs, expected):
    """With a trained embedding, the overflowing pass's own backward puts inf into the
    embedding's .grad, as a plain step would (a GradScaler then skips the step); nan must
    appear nowhere, and every other parameter gets what the skip promises."""
    model, _ = _run(name, kwargs, "first", frozen=False)
    for param, value in grads(model).items():
        assert not torch.isnan(value).any(), f"{param}: nan in .grad"
    _assert_equal(model, _expected(name, kwargs, expected, frozen=False), skip=("tokens.weight",))


def _ddp_worker(out: str) -> None:
    """Run by 2 torchrun ranks: each takes half the batch; the overflow hits rank 0 only."""
    import torch.distributed as dist

    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    rank = dist.get_rank()
    half = slice(2 * rank, 2 * rank + 2)
    model = Overflowing("first" if rank == 0 else "never", frozen=True)
    ddp = nn.parallel.DistributedDataParallel(model)
    results = {}
    for scope in ("example", "token"):
        model.calls = 0
        ddp.zero_grad(set_to_none=True)
        adv = advnlp.FGM(ddp, epsilon=0.5, scope=scope)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            adv.backward(lambda: ddp(IDS[half], LABELS_[half]))
        results[scope] = (grads(model), any("not finite" in str(w.message) for w in caught))
    torch.save(results, Path(out) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_rank_that_skips_still_joins_the_all_reduce(tmp_path):
    """Example scope: rank 0 skips (its clean gradients were left un-reduced under no_sync),
    rank 1 perturbs; both must all-reduce once, no hang, and get the mean of rank 0's plain
    gradients and rank 1's FGM gradients. Token scope shares one norm: both ranks skip."""
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        + ["-m", "tests.test_nonfinite", str(tmp_path)],
        cwd=Path(__file__).parents[1],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]

    def half_grads(rank: int, method: str, **kwargs) -> dict:
        model = Overflowing("never", frozen=True)
        half = slice(2 * rank, 2 * rank + 2)
        advnlp.build(method, model, **kwargs).backward(lambda: model(IDS[half], LABELS_[half]))
        return grads(model)

    plain = [half_grads(r, "none") for r in range(2)]
    fgm_rank1 = half_grads(1, "fgm", epsilon=0.5, scope="example")
    expected = {
        "example": {k: (plain[0][k] + fgm_rank1[k]) / 2 for k in plain[0]},
        "token": {k: (plain[0][k] + plain[1][k]) / 2 for k in plain[0]},
    }
    warned = {"example": [True, False], "token": [True, True]}
    for scope in ("example", "token"):
        for rank, result in enumerate(ranks):
            got, did_warn = result[scope]
            assert did_warn == warned[scope][rank], (scope, rank)
            for param, value in got.items():
                assert torch.isfinite(value).all(), (scope, rank, param)
                torch.testing.assert_close(
                    value, expected[scope][param], rtol=1e-5, atol=1e-7, msg=param
                )


if __name__ == "__main__":
    _ddp_worker(sys.argv[1])
