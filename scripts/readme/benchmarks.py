"""Benchmark sections (``generated:step_cost``, ...): each made from
``benchmarks/results/<name>.json``, which its benchmark writes with ``--output``, by its
function in BENCHMARKS."""

from __future__ import annotations

import json
import shlex

from . import common
from .common import markdown

# Benchmarks: section name in the README -> the JSON its benchmark wrote (``--output``) and the
# function that renders it. The JSON holds the numbers and the run's context (benchmarks/record.py).
BENCHMARK_RESULTS = "benchmarks/results"


def benchmark_section(name: str) -> str:
    """The generated text of one benchmark's section, from its committed JSON."""
    path = f"{BENCHMARK_RESULTS}/{name}.json"
    stamp = f"<!-- written by scripts/update_readme.py from {path}; do not edit by hand -->\n"
    if not (common.ROOT / path).exists():
        return f"{stamp}No result is committed in `{path}` yet: run its benchmark with --output.\n"
    data = json.loads((common.ROOT / path).read_text(encoding="utf-8"))
    return f"{stamp}{benchmark_context(data)}\n\n{BENCHMARKS[name](data)}\n"


def benchmark_context(data: dict) -> str:
    """Where and how the numbers were measured, from the JSON's context."""
    c = data["context"]
    words = shlex.split(c["command"])  # the note is said below, not repeated in the command
    if "--note" in words:
        at = words.index("--note")
        words = words[:at] + words[at + 2 :]
    if c.get("nice"):
        words = ["nice", "-n", str(c["nice"]), *words]
    if c.get("omp_num_threads"):
        words = [f"OMP_NUM_THREADS={c['omp_num_threads']}", *words]
    note = c.get("note") or ""
    note = f" {note[:1].upper()}{note[1:].rstrip('.')}." if note else ""
    load = f"load average {c['load_average_start'][0]:.1f} at the start"
    if c.get("load_average_end"):
        load += f", {c['load_average_end'][0]:.1f} at the end"
    threads = f"{c['torch_threads']} torch thread{'s' if c['torch_threads'] != 1 else ''}"
    return (
        f"`{shlex.join(words)}` ({c['date']}; {c['cpu_count']} CPUs, {threads}, torch "
        f"{c['torch_version']}, {load}).{note}"
    )


def step_cost(data: dict) -> str:
    from advnlp import method_names

    s = data["settings"]
    rows = {r["method"]: r for r in data["rows"]}

    table = markdown(
        ["method", "median step (s)", "x none", "peak (MiB)", "extra over none (MiB)"],
        [
            [
                r["method"] + _steps(r["hyperparameters"]),
                f"{r['median_step_s']:.3f}",
                f"{r['time_ratio']:.2f}",
                f"{r['peak_mib']:.1f}",
                f"{r['extra_mib']:.1f}",
            ]
            for r in data["rows"]
        ],
    )
    text = [
        "One training step (`adv.backward` + AdamW step) of a random BERT "
        f"({s['layers']} layers, hidden {s['hidden']}, vocabulary {s['vocab']}, batch "
        f"{s['batch']} x {s['length']}, Zipf-distributed token ids: {s['distinct_tokens']} "
        f"distinct tokens), {s['rounds']} rounds, each registered method at its defaults; memory "
        "counts each storage once, from allocation to free:",
        table,
    ]
    names = {"2 plain passes", "fgm", "fgm (matrix backup)", "fgm (token, adversarial_only)"}
    if names <= set(rows):
        two = rows["2 plain passes"]["peak_mib"]
        matrix = s["vocab"] * s["hidden"] * 4 / 2**20
        text.append(
            "Clean + adversarial accumulation keeps one set of parameter gradients through the "
            f'second pass (the "2 plain passes" row, {rows["2 plain passes"]["extra_mib"]:.1f} '
            "MiB over `none`); over that, token-scope FGM's perturbation costs "
            f"{rows['fgm']['peak_mib'] - two:.1f} MiB and the whole-matrix backup "
            f"{rows['fgm (matrix backup)']['peak_mib'] - two:.1f} MiB (one {s['vocab']} x "
            f"{s['hidden']} float32 matrix is {matrix:.1f} MiB). With `adversarial_only=True` FGM "
            f"peaks {rows['fgm (token, adversarial_only)']['extra_mib']:.1f} MiB above plain "
            "training."
        )
    missing = [name for name in method_names() if name not in rows]
    if missing:
        text.append(
            f"Registered since this run, not measured yet: {', '.join(missing)} (rerun the "
            "command above)."
        )
    return "\n\n".join(text)


def _steps(hyperparameters: dict | None) -> str:
    """The label suffix " (K steps)" for a method that takes ascent steps."""
    steps = (hyperparameters or {}).get("steps")
    return "" if steps is None else f" ({steps} step{'s' if steps != 1 else ''})"


def cli_overhead(data: dict) -> str:
    s = data["settings"]
    steps = sorted(set(s["steps_per_row"].values()))
    table = markdown(
        ["setting", "median step (s)", "steps/s", "vs plain Trainer"],
        [
            [
                r["setting"],
                f"{r['median_step_s']:.3f}",
                f"{1 / r['median_step_s']:.2f}",
                f"{r['vs_plain']:.3f}x",
            ]
            for r in data["rows"]
        ],
    )
    rounds = (
        "1 round: each row is one training run, one after another, so a change in the machine's "
        "load between them shows up as a difference"
        if s["rounds"] == 1
        else f"{s['rounds']} rounds, the rows alternating round after round"
    )
    return (
        f"{s['examples']:,} {s['data']} sentences, {s['model']}, batch {s['batch_size']}, max "
        f"length {s['max_length']}, {'/'.join(map(str, steps))} steps per row ({rounds}); median "
        f"time per optimizer step:\n\n{table}\n\n`advnlp train`'s overhead over a plain Trainer "
        f"script with the same batching: {100 * data['overhead']:+.1f}%; length bucketing with "
        f"dynamic padding is {data['bucketing_speedup']:.2f}x as fast as padding every batch to "
        "the max length."
    )


def ddp_cost(data: dict) -> str:
    s = data["settings"]
    one, two = data["processes"]["1"], data["processes"]["2"]
    threads = data["context"].get("processes_threads", {})
    rows = []
    for name in one:
        a, b = one[name], two[name]
        rows.append(
            [
                name,
                f"{a['median_step_s']:.3f}",
                f"{a['median_step_s'] / one['none']['median_step_s']:.2f}",
                f"{b['median_step_s']:.3f}",
                f"{b['median_step_s'] / two['none']['median_step_s']:.2f}",
                str(b["all_reduce"]),
                f"{b['all_reduce_bytes'] / 2**20:.1f}",
                str(b["all_gather"]),
                f"{b['all_gather_bytes'] / 2**10:.0f}",
            ]
        )
    headers = [
        "method",
        "1 proc (s)",
        "x none",
        "2 procs (s)",
        "x none",
        "all-reduces / step",
        "all-reduced MiB",
        "advnlp all_gathers",
        "gathered KiB",
    ]
    per_process = ", ".join(
        f"{n} with {k} process{'' if k == '1' else 'es'}" for k, n in threads.items()
    )
    return (
        f"{s['model']}, {s['batch_per_process']} per process, {s['backend']} on CPU, "
        f"{s['steps']} timed steps (torch threads per process: {per_process}; the processes "
        "share the cores, so time ratios, not speed-ups, are the point); communication counted "
        f"per step on rank 0:\n\n{markdown(headers, rows)}"
    )


def determinism_cost(data: dict) -> str:
    s = data["settings"]
    ratios = [r["ratio"] for r in data["rows"]]
    table = markdown(
        ["method", "default (s)", "deterministic (s)", "ratio"],
        [
            [
                r["method"] + _steps(r["hyperparameters"]),
                f"{r['default_s']:.3f}",
                f"{r['deterministic_s']:.3f}",
                f"{r['ratio']:.2f}",
            ]
            for r in data["rows"]
        ],
    )
    return (
        f"One step of {s['model']} (batch {s['batch']} x {s['length']}), PyTorch's default "
        f"kernels against the deterministic ones, interleaved round by round ({s['rounds']} "
        f"rounds, medians):\n\n{table}\n\nRatios from {min(ratios):.2f} to {max(ratios):.2f}: "
        "on a shared CPU a cost of a few percent cannot be told from noise."
    )


def attack_speed(data: dict) -> str:
    s = data["settings"]
    rows = []
    for r in data["rows"]:
        setting = f"r = {r['radius']:g}" if r["radius"] is not None else f"budget {r['budget']:g}"
        rows.append(
            [
                r["victim"],
                f"{r['attack']}, {setting}",
                str(r["n"]),
                f"{r['seconds']:.1f}",
                f"{r['examples_per_s']:.2f}",
                f"{r['queries_per_s']:.0f}",
                f"{100 * r['model_seconds'] / r['seconds']:.0f}",
                "—" if r["mean_queries"] is None else f"{r['mean_queries']:.1f}",
                f"{100 * r['clean_accuracy']:.1f} → {100 * r['accuracy_under_attack']:.1f}",
            ]
        )
    headers = [
        "victim",
        "attack",
        "examples",
        "wall (s)",
        "examples/s",
        "queries/s",
        "model %",
        "mean queries",
        "accuracy % (clean → attacked)",
    ]
    text = [markdown(headers, rows)]
    h = next((r for r in data["rows"] if r["attack"] == "homophone"), None)
    if h is not None and h["mean_queries"] is not None:
        attacked = h["n"] - h["skipped"]
        every = 1000 * h["mean_queries"] / h["queries_per_s"]  # were every text attacked
        trained = s.get("victim_train_examples")
        victim = (
            f"trained by the benchmark on {trained:,} TNEWS lines for {s['victim_epochs']} epochs"
            if trained
            else f"the run {s['victim_run']}"
        )
        text.append(
            f"The goal of issue 13, 1,000 short texts with `homophone` in 5 minutes on 2 cores "
            f"with scratch-small: {h['n']:,} TNEWS dev texts took {h['seconds']:.0f} s "
            f"({h['seconds'] / 60:.1f} min) on one torch thread. The victim ({victim}; dev "
            f"accuracy {100 * s['victim_dev_accuracy']:.1f}%) got {attacked} of them right; "
            f"the attack flipped {h['successful']} ({100 * h['success_rate']:.0f}% success) with "
            f"{h['mean_queries']:.1f} queries per attacked text, and the {h['skipped']} it got "
            f"wrong cost one query each. Were every text attacked, 1,000 would take about "
            f"{every:.0f} s ({every / 60:.1f} min) at the measured {h['queries_per_s']:.0f} "
            f"queries/s. The model's forward passes took "
            f"{100 * h['model_seconds'] / h['seconds']:.0f}% of the time."
        )
    return "\n\n".join(text)


def fsdp_cost(data: dict) -> str:
    s, sizes = data["settings"], data["sizes_mib"]
    rows = {row["method"]: row for row in data["rows"]}
    table = [
        [
            name,
            f"{row['median_step_s']:.1f}",
            f"{row['time_ratio']:.2f}",
            f"{max(row['peak_mib_per_rank']):.0f}",
            f"{max(row['extra_mib_per_rank']):.0f}",
            str(row["reduce_scatters"]),
            str(row["fsdp_all_gathers"]),
            f"{row['other_collectives']} ({row['largest_other_collective_kib']:.0f})",
        ]
        for name, row in rows.items()
    ]
    table += [[name, f"refused: {why}", *[""] * 6] for name, why in data["refused"].items()]
    headers = ["method", "step (s)", "x none", "peak MiB / rank", "extra MiB / rank"]
    headers += ["reduce-scatters", "FSDP all-gathers", "advnlp collectives (largest KiB)"]
    text = (
        f"FSDP2 (`fully_shard` on each layer and the root), 2 processes, gloo on CPU, a BERT "
        f"whose embedding dominates (vocab {s['vocab']:,}, hidden {s['hidden']}, {s['layers']} "
        f"layers: a {sizes['embedding_matrix']:.0f} MiB embedding matrix, "
        f"{max(sizes['sharded_gradient_set_per_rank']):.0f} MiB of sharded gradients per rank), "
        f"{s['batch_per_rank']} x {s['length']} tokens per rank "
        f"({max(sizes['batch_rows_per_rank']):.2f} MiB of the batch's rows at most), "
        f"{s['rounds']} timed steps. Peak: live tensor bytes during one step's `backward`, "
        "the larger of the two ranks; extra: over plain FSDP (`none`):\n\n"
        + markdown(headers, table)
    )
    fgm, plain = rows.get("fgm (token)"), rows.get("2 plain passes")
    if fgm and plain:
        text += (
            f"\n\nFGM (token) costs {max(fgm['extra_mib_per_rank']):.0f} MiB per rank over "
            f"plain FSDP, {max(fgm['extra_mib_per_rank']) - max(plain['extra_mib_per_rank']):.0f}"
            " MiB more than two plain passes (one sharded gradient set): never the gathered "
            f"matrix; its largest own collective moves {fgm['largest_other_collective_kib']:.0f} "
            "KiB."
        )
    deep = common.ROOT / BENCHMARK_RESULTS / "fsdp_cost_deep.json"
    if deep.exists():  # the same benchmark on a deep model with a small vocabulary
        d = json.loads(deep.read_text(encoding="utf-8"))
        extra = {row["method"]: max(row["extra_mib_per_rank"]) for row in d["rows"]}
        ds = d["settings"]
        text += (
            f" On a deeper model ({ds['layers']} layers, hidden {ds['hidden']}, vocab "
            f"{ds['vocab']:,}; `{BENCHMARK_RESULTS}/fsdp_cost_deep.json`) FGM (token) costs "
            f"{extra.get('fgm (token)', float('nan')):.0f} MiB extra per rank and with the "
            f"reduction deferred {extra.get('fgm (token), reduction deferred', float('nan')):.0f}"
            " MiB."
        )
    return text


BENCHMARKS = {
    "step_cost": step_cost,
    "cli_overhead": cli_overhead,
    "ddp_cost": ddp_cost,
    "determinism_cost": determinism_cost,
    "attack_speed": attack_speed,
    "fsdp_cost": fsdp_cost,
}
