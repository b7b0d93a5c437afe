"""Memory: token scope keeps only the batch's rows, never a vocabulary-sized buffer; and the
benchmark's tracker counts each storage once."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import advnlp

from .models import LABELS, PAD, PoolClassifier

BIG_VOCAB, SMALL_HIDDEN = 50_000, 8


class LargeAllocations(TorchDispatchMode):
    """Names the ops that allocate a tensor with at least ``rows`` rows (or elements, if 1-D).

    An output that shares storage with an input (a view, an in-place or ``out=`` result) is
    not an allocation.
    """

    def __init__(self, rows: int) -> None:
        super().__init__()
        self.rows = rows
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        held = {_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, Tensor)}
        for t in tree_leaves(out):
            if (
                isinstance(t, Tensor)
                and t.dim()
                and t.shape[0] >= self.rows
                and _key(t) not in held
            ):
                self.ops.append(func.__name__)
        return out


def _key(tensor: Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


# Token scope wherever a method has one; the others for completeness.
METHODS = [
    ("fgm", {"epsilon": 0.5, "scope": "token"}),
    ("fgm", {"epsilon": 0.5, "scope": "token", "adversarial_only": True}),
    ("pgd", {"epsilon": 0.5, "alpha": 0.2, "steps": 2, "scope": "token"}),
    ("pgd", {"epsilon": 0.5, "alpha": 0.2, "steps": 2, "scope": "token", "adversarial_only": True}),
    ("fgm", {"epsilon": 0.5, "scope": "example"}),
    ("freelb", {"epsilon": 0.5, "alpha": 0.2, "steps": 2}),
    ("gp", {"epsilon": 1.0}),
]


@pytest.mark.parametrize(
    ("name", "kwargs"), METHODS, ids=[f"{n}-{'-'.join(map(str, k.values()))}" for n, k in METHODS]
)
def test_no_vocabulary_sized_buffer_beyond_the_embedding_gradient(name, kwargs):
    """50,000 x 8 embedding, a batch whose ids span the vocabulary: the only allocations with
    vocabulary-many rows are the embedding's own gradient, one per backward pass that reaches
    ``.grad`` (a dense (vocab, H) buffer for the rows, or a matrix-gradient shortcut in a pass
    that only builds delta, would add more)."""
    torch.manual_seed(0)
    model = PoolClassifier(vocab=BIG_VOCAB, hidden=SMALL_HIDDEN)
    ids = torch.randint(1, BIG_VOCAB, (4, 12))
    ids[0, 0], ids[1, -3:] = BIG_VOCAB - 1, PAD  # the last row, and some padding
    labels = torch.arange(4) % LABELS
    adv = advnlp.build(name, model, **kwargs)
    passes = []

    def backward(loss: Tensor) -> None:
        passes.append(loss)
        loss.backward()

    with LargeAllocations(BIG_VOCAB) as tracker:
        adv.backward(lambda: model(ids, labels), backward=backward)
    assert model.tokens.weight.grad is not None
    assert set(tracker.ops) <= {"embedding_dense_backward.default"}, tracker.ops
    assert len(tracker.ops) <= len(passes), tracker.ops


def _step_cost():
    from .scripts import benchmark

    return benchmark("step_cost")


def test_benchmark_tracker_counts_a_storage_once():
    """Views and in-place writes of a parameter are not new memory; a clone is, once."""
    matrix = torch.nn.Parameter(torch.randn(1000, 256))
    size = matrix.numel() * matrix.element_size()
    with _step_cost().PeakMemory() as tracker:
        backup = matrix.detach().clone()  # detach is a view: only the clone is new
        with torch.no_grad():
            matrix.add_(1.0)
            matrix.t()[:10].mul_(2.0)
            matrix.copy_(backup)
        temporary = backup * 2  # new, freed before the next one
        del temporary
        temporary = backup * 3
    assert tracker.peak == 2 * size
    del temporary
    assert tracker.live == size
