"""Survivors of scripts/mutation_report.py that no test can or should kill, with the reason.

mutant name -> (status, a fragment of the mutated line, reason). The fragment guards against a
stale note: when the source changes, mutmut renumbers its mutants and a note whose fragment is
no longer in its mutant's diff is reported as out of date. Status "equivalent": the mutant
behaves like the original for every input; "open": a real gap, left with the reason.
"""

from __future__ import annotations

_PERTURBATION = "advnlp.perturbation.xǁPerturbationǁ"
_FREELB = "advnlp.methods.freelb.xǁFreeLBǁ"
_GP = "advnlp.methods.gradient_penalty.xǁGradientPenaltyǁ"
_BASE = "advnlp.base.xǁAdversarialMethodǁ"
_ROWS = "advnlp.distributed.x_sum_rows_across_ranks__mutmut_"
_CHECK = "advnlp.registry.x_check__mutmut_"
_DEVICE = (
    "device only: with gloo on the CPU every tensor is on the CPU anyway; on GPUs (NCCL) the "
    "tensor would sit on the wrong device. Needs 2 accelerators, which the suite does not have"
)
_STAND_IN = "any embedding serves as the stand-in model: only the constructor's checks run"
_ZIP = (
    "norms() returns exactly one norm per part, so zip's strict check can never fire: "
    "strict=True is a guard, not behaviour"
)

# How the run was set up, and why (rendered in the report).
DECISIONS: list[str] = [
    "tests/test_ddp.py is not in the test selection. It starts torchrun (2 processes that "
    "import torch and transformers) and mutmut cannot see which functions those processes "
    "reach, so it would have to run for every distributed.py mutant: 85 mutants x one "
    "test_ddp.py run each (measured: `nice -n 15 python -m pytest tests/test_ddp.py -k "
    "'not advnlp_train'` took 133 s wall at load 12, so about 3 h on one worker). "
    "Instead tests/test_core_contracts.py forks 2 gloo ranks "
    "from the test process itself (about 0.2 s) to check sum_rows_across_ranks, _gather and "
    "the gradient penalty's division by world_size; `--ddp` still runs test_ddp.py against "
    "whatever distributed.py mutant survives.",
    "Each property test runs at most 50 hypothesis examples, without shrinking, and after the "
    "example-based tests (scripts/mutation_pytest_plugin.py): with -x a mutant usually dies in "
    "a fast test first. The transformers models the tests build are imported once, in "
    "mutmut's fork server, not once per mutant.",
    "mutmut does not mutate decorated functions (`AdversarialMethod._no_gradient_sync`, a "
    "contextmanager) nor module-level constants; `default_backward` has nothing to mutate.",
    "Timings were taken on a 2-core machine shared with 4 other sessions (load average 13 to "
    "19 during the runs), niced to 15: they are upper bounds, not what the run costs alone.",
]

# What the survivors showed about the code itself (bugs are described, not fixed here).
FINDINGS: list[str] = [
    "`repr(advnlp.build('none', model))` is `Baseline(, embedding=None)`: "
    "`AdversarialMethod.__repr__` joins an empty settings dict and still writes the comma "
    "(src/advnlp/base.py, `__repr__`). Cosmetic; no test pins it.",
    "A closure that calls the embedding fewer times in a later pass (example scope, e.g. PGD) "
    "fails with a bare `ValueError: zip() argument 2 is shorter than argument 1` from "
    "`Perturbation.__add__` (src/advnlp/perturbation.py), not with the 'it must run the same "
    "batch every time' RuntimeError that `offset()` gives for more calls or other shapes. "
    "test_fewer_embedding_calls_in_a_later_pass_is_an_error accepts either.",
    "`_direction`'s `direction.scaled(0.0)` and the mutant `scaled(1.0)` behave alike when the "
    "gradient is not finite: inf x 0 is NaN, so the 'skipped' step is poisoned either way "
    "(issue 10 item 1, being fixed by another helper).",
    "Every test model had a zero embedding-output gradient at padding positions (attention "
    "masks, masked pooling, padding at the end of an LSTM), so dropping the padding index in "
    "`_direction` went unnoticed; test_padding_is_never_perturbed_even_where_the_loss_reads_it "
    "now reads padding in the loss.",
]

NOTES: dict[str, tuple[str, str, str]] = {
    _PERTURBATION + "random_start__mutmut_5": (
        "equivalent",
        "uniform_(-1, )",
        "Tensor.uniform_'s upper bound defaults to 1",
    ),
    _PERTURBATION + "normalized__mutmut_7": ("equivalent", "strict=None", _ZIP),
    _PERTURBATION + "normalized__mutmut_10": ("equivalent", "self.norms(), )", _ZIP),
    _PERTURBATION + "normalized__mutmut_11": ("equivalent", "strict=False", _ZIP),
    _PERTURBATION + "clipped__mutmut_12": ("equivalent", "strict=None", _ZIP),
    _PERTURBATION + "clipped__mutmut_15": ("equivalent", "self.norms(), )", _ZIP),
    _PERTURBATION + "clipped__mutmut_16": ("equivalent", "strict=False", _ZIP),
    _BASE + "_input_gradients__mutmut_5": (
        "equivalent",
        "or True",
        "without a scaler the scale is 1.0, and multiplying the loss by 1.0 changes no value",
    ),
    _BASE + "_direction__mutmut_26": (
        "open",
        "stacklevel=4",
        "not testable under mutmut: its trampolines add frames between the caller and the "
        "method, so a test can only check that the warning does not point at _direction itself",
    ),
    _BASE + "_direction__mutmut_28": (
        "open",
        "direction.scaled(1.0)",
        "the non-finite skip is the bug of issue 10 item 1 (inf x 0 is NaN, so scaled(0.0) "
        "poisons the step as scaled(1.0) does); its fix and tests are another helper's work",
    ),
    _ROWS + "11": ("open", "device=None", _DEVICE),
    _ROWS + "13": ("open", "[len(keys)], )", _DEVICE),
    _ROWS + "22": ("open", "dtype=keys.dtype, device=None", _DEVICE),
    _ROWS + "26": ("open", "dtype=keys.dtype, )", _DEVICE),
    _ROWS + "51": (
        "open",
        "torch.unique(all_keys[real], return_inverse=True)",
        "torch.unique "
        "sorts on the CPU whatever `sorted` says; on an accelerator unsorted keys "
        "would break offset()'s searchsorted. Needs 2 accelerators",
    ),
    _ROWS + "53": (
        "open",
        "sorted=False",
        "torch.unique sorts on the CPU whatever `sorted` "
        "says; on an accelerator unsorted keys would break offset()'s searchsorted. "
        "Needs 2 accelerators",
    ),
    _ROWS + "76": ("open", "union.to(None)", _DEVICE),
    _ROWS + "28": (
        "equivalent",
        "-2,",
        "any negative filler works: real ids are >= 0 and padding is told apart by `>= 0`",
    ),
    _CHECK + "16": ("equivalent", "nn.Embedding(3, 1)", _STAND_IN),
    _CHECK + "17": ("equivalent", "nn.Embedding(2, 2)", _STAND_IN),
    _FREELB + "backward__mutmut_33": (
        "equivalent",
        "Perturbation(None, start)",
        "every Perturbation operation treats a scope other than 'token' as the example scope, "
        "FreeLB's only scope",
    ),
    _FREELB + "backward__mutmut_50": (
        "equivalent",
        'run = grads = ""',
        "the line only drops the references to the earlier passes' buffers; any value does",
    ),
    _GP + "backward__mutmut_42": (
        "equivalent",
        "penalty.to(None)",
        "the cast only sets the dtype of the sum handed to backward; d(sum)/d(term) is 1 either "
        "way, so every gradient is the same",
    ),
    _GP + "backward__mutmut_37": (
        "open",
        "stacklevel=3",
        "not testable under mutmut: its trampoline adds a frame between the caller and "
        "backward, so a test can only check that the warning does not point into advnlp",
    ),
}
