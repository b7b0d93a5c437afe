"""Step time and peak memory of each method as a ratio to plain training, measured side by side.

    python benchmarks/step_cost.py                 # 4-layer BERT, hidden 256, vocab 21128, 32 x 64
    python benchmarks/step_cost.py --rounds 20 --output benchmarks/results/step_cost.json

Rows: every method in advnlp's registry (``advnlp.method_names()``) at its defaults
(``advnlp.hyperparameters(name)``), so a method registered later is measured without touching
this file, then four rows that explain the costs (below). ``--output FILE`` writes the results
with the machine's context (benchmarks/record.py); scripts/update_readme.py renders them.

One "step" is ``adv.backward(closure)`` + ``optimizer.step()`` + ``zero_grad()`` on a randomly
initialised BertForSequenceClassification (default SDPA attention, dropout 0.1, AdamW). Methods
run interleaved, round after round, so machine noise hits them alike; the table gives medians
and the ratio of medians to the baseline.

Memory: the peak of live tensor bytes allocated during one ``adv.backward`` (parameters and
optimizer state excluded: they exist before the step), tracked by a TorchDispatchMode that sees
every allocation, autograd's included; each storage counts once, from its allocation to its
free, and views or in-place writes of existing tensors are not counted. "extra" is that peak
minus the baseline's. Any method that accumulates clean + adversarial gradients holds a full
set of parameter gradients through its second pass; the "2 plain passes" row has that cost
alone, so the peak over it is what the perturbation itself costs. fgm_free's cache of rows is
rebuilt in each step, so it counts; here it holds this one batch's distinct tokens (the same
batch every step), on real data up to one row per token seen.

"fgm (matrix backup)" is the popular whole-matrix recipe, written here for comparison: it adds
epsilon * E.grad / ||E.grad|| to the weight in place, runs the second pass, and copies the weight
back from a clone. Token ids follow a Zipf law over the vocabulary (like characters in real
text), so a batch holds far fewer distinct tokens than positions; the table says how many.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import weakref

import record
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import advnlp


class PeakMemory(TorchDispatchMode):
    """Peak bytes of live tensor storages allocated while active.

    Each storage counts once, from the op that allocated it until it is freed (a weakref on the
    storage tells when). An op whose output shares storage with one of its inputs allocated
    nothing: views (``detach``, ``view``, ``t``), in-place writes (``add_``, ``copy_``) and
    ``out=`` ops; counting their outputs would count a parameter again each time it is viewed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = self.peak = 0
        self._seen: dict[int, weakref.ref] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        held = {_storage_key(t) for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)}
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor) and _storage_key(tensor) not in held:
                self._track(tensor)
        return out

    def _track(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key == 0 or key in self._seen:
            return
        size = storage.nbytes()
        self.live += size
        self.peak = max(self.peak, self.live)
        self._seen[key] = weakref.ref(storage, lambda _, k=key, n=size: self._free(k, n))

    def _free(self, key: int, size: int) -> None:
        if self._seen.pop(key, None) is not None:
            self.live -= size


def _storage_key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().data_ptr()


class TwoPlainPasses:
    """Reference: the clean pass twice, gradients accumulated, nothing perturbed. Every
    clean + adversarial method keeps the first pass's parameter gradients through the second
    pass; the peak over this row is what the perturbation itself costs."""

    def backward(self, closure) -> torch.Tensor:
        loss = closure()
        loss.backward()
        closure().backward()
        return loss.detach()


class MatrixBackupFGM:
    """The whole-matrix recipe (for comparison only): perturb E in place, restore from a clone."""

    def __init__(self, model: torch.nn.Module, epsilon: float) -> None:
        self.weight = advnlp.find_embedding(model)[1].weight
        self.epsilon = epsilon

    def backward(self, closure) -> torch.Tensor:
        loss = closure()
        loss.backward()
        backup = self.weight.detach().clone()
        grad = self.weight.grad
        with torch.no_grad():
            norm = grad.norm()
            if torch.isfinite(norm) and norm > 0:
                self.weight.add_(self.epsilon * grad / norm)
        closure().backward()
        with torch.no_grad():
            self.weight.copy_(backup)
        return loss.detach()


def make_model(args: argparse.Namespace) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=args.vocab,
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=max(512, args.length),
        num_labels=15,
    )
    return BertForSequenceClassification(config)


def make_batch(args: argparse.Namespace) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ranks = torch.arange(1, args.vocab - 999, dtype=torch.float64)
    zipf = ranks.pow(-args.zipf)
    ids = 1000 + torch.multinomial(
        zipf / zipf.sum(), args.batch * args.length, True, generator=generator
    )
    ids = ids.view(args.batch, args.length)
    ids[:, 0] = 101  # [CLS]
    mask = torch.ones_like(ids)
    for row in range(args.batch):  # ragged lengths, as a real batch has
        cut = args.length - (row * 7) % (args.length // 2)
        ids[row, cut:] = 0
        mask[row, cut:] = 0
    labels = torch.randint(0, 15, (args.batch,), generator=generator)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# Rows beside the registry's methods: references and FGM variants that explain the costs.
EXTRA_ROWS = {
    "2 plain passes": lambda m: TwoPlainPasses(),
    "fgm (token, adversarial_only)": lambda m: advnlp.build("fgm", m, adversarial_only=True),
    "fgm (example)": lambda m: advnlp.build("fgm", m, scope="example"),
    "fgm (matrix backup)": lambda m: MatrixBackupFGM(m, advnlp.hyperparameters("fgm")["epsilon"]),
}


def rows_available() -> dict:
    """Every registered method at its defaults (read from the registry, so a method added
    later is measured without touching this file), then the extra rows."""
    registered = {name: (lambda m, n=name: advnlp.build(n, m)) for name in advnlp.method_names()}
    return {**registered, **EXTRA_ROWS}


def main() -> None:
    run_context = record.context()
    available = rows_available()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocab", type=int, default=21128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--zipf", type=float, default=1.0, help="Zipf exponent of token ids")
    parser.add_argument("--rounds", type=int, default=12, help="timed steps per method")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--methods",
        default=";".join(available),
        help="rows separated by ; (default: every registered method at its defaults, then "
        f"{'; '.join(EXTRA_ROWS)})",
    )
    record.add_arguments(parser)
    args = parser.parse_args()
    run_context["note"] = args.note
    names = [n.strip() for n in args.methods.split(";")]
    unknown = [n for n in names if n not in available]
    if unknown:
        parser.error(f"--methods: unknown {', '.join(unknown)} (known: {'; '.join(available)})")

    model = make_model(args)
    batch = make_batch(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    methods = {name: available[name](model) for name in names}

    def closure() -> torch.Tensor:
        return model(**batch).loss

    def step(name: str) -> float:
        start = time.perf_counter()
        methods[name].backward(closure)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    for _ in range(args.warmup):
        for name in names:
            step(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(args.rounds):
        for name in names:
            times[name].append(step(name))
        print(f"round {round_ + 1}/{args.rounds}", file=sys.stderr, end="\r")

    peaks = {}
    for name in names:
        with PeakMemory() as tracker:
            methods[name].backward(closure)
        optimizer.zero_grad(set_to_none=True)
        peaks[name] = tracker.peak

    unique = int(torch.unique(batch["input_ids"]).numel())
    base_time = statistics.median(times["none"]) if "none" in times else float("nan")
    base_peak = peaks.get("none", 0)
    rows = []
    for name in names:
        median = statistics.median(times[name])
        rows.append(
            {
                "method": name,
                "hyperparameters": (
                    advnlp.hyperparameters(name) if name in advnlp.method_names() else None
                ),
                "median_step_s": median,
                "time_ratio": median / base_time,
                "peak_mib": peaks[name] / 2**20,
                "extra_mib": (peaks[name] - base_peak) / 2**20,
            }
        )
    setting = (
        f"BERT {args.layers} layers, hidden {args.hidden}, vocab {args.vocab}, batch "
        f"{args.batch} x {args.length} ({unique} distinct tokens), {args.rounds} rounds, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(setting)
    print(f"| {'method':<30} | median step (s) | x baseline | peak (MiB) | extra (MiB) |")
    print(f"|{'-' * 32}|-----------------|------------|------------|-------------|")
    for r in rows:
        print(
            f"| {r['method']:<30} | {r['median_step_s']:15.3f} | {r['time_ratio']:10.2f} "
            f"| {r['peak_mib']:10.1f} | {r['extra_mib']:11.1f} |"
        )
    peak = {r["method"]: r["peak_mib"] for r in rows}
    if {"2 plain passes", "fgm (matrix backup)", "fgm (token)"} <= set(peak):
        ours = peak["fgm (token)"] - peak["2 plain passes"]
        backup = peak["fgm (matrix backup)"] - peak["2 plain passes"]
        print(
            f"memory of the perturbation itself (peak over '2 plain passes'): fgm (token) "
            f"{ours:.1f} MiB, matrix backup {backup:.1f} MiB ({backup / max(ours, 1e-9):.0f}x)"
        )
    settings = {
        "layers": args.layers,
        "hidden": args.hidden,
        "vocab": args.vocab,
        "batch": args.batch,
        "length": args.length,
        "zipf": args.zipf,
        "distinct_tokens": unique,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "registered_methods": advnlp.method_names(),
    }
    record.write(args.output, "step_cost", run_context, {"settings": settings, "rows": rows})


if __name__ == "__main__":
    main()
