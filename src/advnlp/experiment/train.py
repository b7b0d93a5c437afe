"""One training run: data -> tokenizer and model -> AdversarialTrainer -> best model + results.

The output folder, as a run fills it::

    run.json          the configuration (written first: marks the folder as an advnlp run)
    tokenizer/        the tokenizer (scratch-small trains it; saved before training starts)
    checkpoints/      the Trainer's per-epoch checkpoints (for --resume; removed at the end)
    model/            the best-on-dev model + tokenizer (save_pretrained; complete or absent)
    results.json      written last: the run is complete exactly when this file exists

Everything heavy (transformers, datasets, scikit-learn) is imported inside the functions, so
``import advnlp.experiment`` stays light.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry import check
from .io import check_writable, make_folder, write_folder_atomic, write_json_atomic
from .models import (
    SCRATCH,
    SCRATCH_SIZES,
    load_pretrained_model,
    load_pretrained_tokenizer,
    model_size,
    scratch_model,
    split_texts,
    train_tokenizer,
)

log = logging.getLogger(__name__)

DEFAULT_LR = {"pretrained": 2e-5, SCRATCH: 3e-4}  # the seed's 2e-5; a random BERT needs more


@dataclass
class RunConfig:
    """Everything that defines a run (the CLI flags of ``advnlp train``)."""

    train: str
    dev: str
    output: str
    test: str | None = None
    model: str = SCRATCH
    method: str = "none"
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    epochs: int = 3
    batch_size: int = 32
    lr: float | None = None  # None: DEFAULT_LR for the kind of model
    max_length: int = 128
    seed: int = 0
    text_columns: list[str] | None = None
    label_column: str = "label"
    max_train_examples: int | None = None
    max_dev_examples: int | None = None
    bucketing: bool = True
    gradient_accumulation: int = 1
    precision: str = "fp32"
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    vocab_size: int = 8000
    keep_checkpoints: bool = False
    layers: int | None = None  # keep the first K layers of a pretrained model (None: all)

    @property
    def learning_rate(self) -> float:
        if self.lr is not None:
            return self.lr
        return DEFAULT_LR[SCRATCH if self.model in SCRATCH_SIZES else "pretrained"]

    def validate(self) -> None:
        """Raise UsageError naming the flag of the first bad value."""
        checks = [
            ("--epochs", self.epochs, isinstance(self.epochs, int) and self.epochs >= 1),
            ("--batch-size", self.batch_size, self.batch_size >= 1),
            ("--lr", self.lr, self.lr is None or (0 < self.lr < 1)),
            ("--max-length", self.max_length, 8 <= self.max_length <= 8192),
            (
                "--gradient-accumulation",
                self.gradient_accumulation,
                self.gradient_accumulation >= 1,
            ),
            ("--warmup-ratio", self.warmup_ratio, 0 <= self.warmup_ratio < 1),
            (
                "--max-train-examples",
                self.max_train_examples,
                self.max_train_examples is None or self.max_train_examples >= 1,
            ),
            (
                "--max-dev-examples",
                self.max_dev_examples,
                self.max_dev_examples is None or self.max_dev_examples >= 1,
            ),
            ("--precision", self.precision, self.precision in ("fp32", "bf16", "fp16")),
            ("--vocab-size", self.vocab_size, self.vocab_size >= 100),
            ("--layers", self.layers, self.layers is None or self.layers >= 1),
        ]
        for flag, value, ok in checks:
            if not ok:
                raise UsageError(f"{flag}: {value!r} is out of range")
        if self.layers is not None and self.model in SCRATCH_SIZES:
            raise UsageError(
                f"--layers: {self.model} has a fixed size; --layers is for pretrained models"
            )
        check(self.method, **self.method_kwargs)  # ConfigError naming the bad value

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Prepared:
    """Data, labels and tokenizer, shareable by the runs of a comparison."""

    train: Any  # data.Split
    dev: Any
    test: Any | None
    labels: list[str]
    tokenizer: Any = None  # None until made for a model


def prepare_data(config: RunConfig) -> Prepared:
    """Load and validate the splits; labels come from the training file."""
    from ..data import check_labels, label_names, load_split

    common = {"text_columns": config.text_columns, "label_column": config.label_column}
    train = load_split(config.train, flag="--train", limit=config.max_train_examples, **common)
    dev = load_split(config.dev, flag="--dev", limit=config.max_dev_examples, **common)
    test = load_split(config.test, flag="--test", **common) if config.test else None
    labels = label_names(train)
    if len(labels) < 2:
        raise UsageError(
            f"--train {config.train}: only one label ({labels[0]!r}); need two or more"
        )
    for split in (dev, test):
        if split is not None:
            check_labels(split, labels, config.train)
    return Prepared(train, dev, test, labels)


def make_tokenizer(config: RunConfig, prepared: Prepared, folder: Path | None = None) -> Any:
    """The run's tokenizer: loaded from ``folder`` if saved there, else made (and saved there)."""
    from transformers import AutoTokenizer

    if folder is not None and (folder / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(folder)
    if config.model in SCRATCH_SIZES:
        dataset = prepared.train.dataset
        texts = list(dataset["text"]) + (
            list(dataset["text_pair"]) if "text_pair" in dataset.column_names else []
        )
        tokenizer = train_tokenizer(
            texts, vocab_size=config.vocab_size, max_length=config.max_length
        )
    else:  # an offline e5-small keeps the pieces of the run's texts (see OFFLINE_MODELS)
        splits = [s for s in (prepared.train, prepared.dev, prepared.test) if s is not None]
        texts = (text for split in splits for text in split_texts(split))
        tokenizer = load_pretrained_tokenizer(config.model, texts=texts, layers=config.layers)
    if folder is not None:
        write_folder_atomic(folder, tokenizer.save_pretrained)
    return tokenizer


def use_deterministic_algorithms() -> None:
    """PyTorch's deterministic kernels, so that a seeded run gives the same numbers every time
    on one machine (same device kind, thread count and library versions).

    On CPU no cost could be told from noise (benchmarks/determinism_cost.py). cuBLAS is
    reproducible only with a fixed workspace, read when it first starts, hence the variable;
    an operation without a deterministic kernel warns instead of stopping the run.
    """
    import os

    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False


def make_model(config: RunConfig, prepared: Prepared) -> Any:
    from transformers import set_seed

    set_seed(config.seed)  # the same seed gives the same initial weights in every method
    if config.model in SCRATCH_SIZES:
        return scratch_model(prepared.tokenizer, prepared.labels, config.max_length, config.model)
    return load_pretrained_model(
        config.model, prepared.labels, layers=config.layers, tokenizer=prepared.tokenizer
    )


def encode(split: Any, tokenizer: Any, labels: list[str], max_length: int) -> Any:
    """Tokenize a split (no padding: batches are padded to their own longest example)."""
    label_ids = {name: i for i, name in enumerate(labels)}
    pair = "text_pair" in split.dataset.column_names

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(
            batch["text"],
            batch["text_pair"] if pair else None,
            truncation=True,
            max_length=max_length,
        )
        encoded["labels"] = [label_ids[label] for label in batch["label"]]
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    return split.dataset.map(
        tokenize, batched=True, remove_columns=split.dataset.column_names, desc="tokenizing"
    )


def output_state(out: Path, config: RunConfig, *, resume: bool, overwrite: bool) -> str:
    """Check the output folder against the flags, writing nothing: "new", "resume" or "done"."""
    marker = out / "run.json"
    check_writable(out)  # a file in the way, or a folder we may not write in
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; pass one")
    if resume:
        if not marker.exists():
            raise UsageError(
                f"--resume: {out} holds no advnlp run to resume (no run.json); "
                "start the run without --resume"
            )
        saved = json.loads(marker.read_text(encoding="utf-8"))["config"]
        for key, value in config.to_json().items():
            if key not in ("output", "keep_checkpoints") and saved.get(key) != value:
                raise UsageError(
                    f"--resume: {out} was started with {key}={saved.get(key)!r}, not {value!r}; "
                    "resume with the flags it was started with"
                )
        return "done" if (out / "results.json").exists() else "resume"
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UsageError(
                f"--output {out}: the folder is not empty; pass --overwrite to replace the run in "
                "it, --resume to continue it, or choose another folder"
            )
        if not marker.exists() and not (out / "results.json").exists():
            raise UsageError(
                f"--overwrite: {out} does not hold an advnlp run (no run.json), so its files are "
                "kept; choose another --output"
            )
    return "new"


def process_state() -> Any:
    """accelerate's PartialState: rank and barriers under torchrun / accelerate launch (a no-op
    in one process). The Trainer later reuses the same state."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def start_output(out: Path, config: RunConfig) -> None:
    """Empty (an advnlp run's) folder and mark it with run.json."""
    if out.is_dir():
        shutil.rmtree(out)
    make_folder(out)
    write_json_atomic(out / "run.json", {"config": config.to_json()})


def run(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    prepared: Prepared | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one model with one method; returns (and writes) the results dict.

    Bad flags, data and model names fail before anything is written to the output folder.
    """
    config.validate()
    out = Path(config.output)
    processes = process_state()
    processes.wait_for_everyone()  # every rank checks the folder before rank 0 writes in it
    state = output_state(out, config, resume=resume, overwrite=overwrite)
    processes.wait_for_everyone()
    if state == "done":
        return json.loads((out / "results.json").read_text(encoding="utf-8"))
    prepared = prepared or prepare_data(config)
    use_deterministic_algorithms()
    main = processes.is_main_process
    if main:  # only rank 0 writes; the others load what it wrote
        if prepared.tokenizer is None:
            saved = out / "tokenizer" if state == "resume" else None
            prepared = replace(prepared, tokenizer=make_tokenizer(config, prepared, saved))
        if state == "new":
            start_output(out, config)
        if not (out / "tokenizer").exists():
            write_folder_atomic(out / "tokenizer", prepared.tokenizer.save_pretrained)
    processes.wait_for_everyone()
    if prepared.tokenizer is None:
        prepared = replace(prepared, tokenizer=make_tokenizer(config, prepared, out / "tokenizer"))

    train, dev, test = (
        None
        if split is None
        else encode(split, prepared.tokenizer, prepared.labels, config.max_length)
        for split in (prepared.train, prepared.dev, prepared.test)
    )
    trainer = _trainer(config, prepared, train, dev, out, progress and main)
    checkpoint = None
    if state == "resume":
        checkpoint = last_complete_checkpoint(out / "checkpoints", prune=main)
    first_step = _first_step(trainer)
    started = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    runtime = time.perf_counter() - started

    dev_out = trainer.predict(dev, metric_key_prefix="dev")
    test_out = trainer.predict(test, metric_key_prefix="test") if test is not None else None
    results = _results(config, prepared, trainer, dev_out, test_out, runtime, checkpoint)
    results["world_size"] = processes.num_processes
    results["model_size"] = model_size(prepared.tokenizer, trainer.model)  # pieces, layers
    # optimizer steps this process ran: fewer than "steps" exactly when it resumed a checkpoint
    results["steps_run"] = trainer.state.global_step - first_step.step

    def save_model(folder: Path) -> None:
        trainer.model.save_pretrained(folder)
        prepared.tokenizer.save_pretrained(folder)

    if main:
        write_folder_atomic(out / "model", save_model)
        write_json_atomic(out / "results.json", results)  # last: marks the run complete
        if not config.keep_checkpoints:
            shutil.rmtree(out / "checkpoints", ignore_errors=True)
    processes.wait_for_everyone()
    return results


def _first_step(trainer: Any) -> Any:
    """A callback that notes the step training starts from (the checkpoint's, on resume)."""
    from transformers import TrainerCallback

    class FirstStep(TrainerCallback):
        step = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.step = state.global_step

    callback = FirstStep()
    trainer.add_callback(callback)
    return callback


def last_complete_checkpoint(folder: Path, *, prune: bool = True) -> str | None:
    """The newest checkpoint whose files are all whole (see ``checkpoint_problem``).

    A run killed while writing a checkpoint, or a disk that lost part of one, leaves a partial
    folder: it is skipped for the one before it, with a warning (and removed if ``prune``).
    """
    if not folder.is_dir():
        return None
    found = sorted(
        (p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()),
        key=lambda p: int(p.name.split("-")[-1]),
        reverse=True,
    )
    for path in found:
        problem = checkpoint_problem(path)
        if problem is None:
            return str(path)
        if prune:  # rank 0: say it once, and clear the way for the checkpoint saved again
            later = "; trying the one before it" if path != found[-1] else ""
            log.warning("--resume: skipping %s: %s%s", path, problem, later)
            shutil.rmtree(path, ignore_errors=True)
    if found and prune:
        log.warning("--resume: no complete checkpoint is left; the run starts from the beginning")
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why the checkpoint folder ``path`` cannot be resumed from, or None if it can.

    Reads every file the Trainer wrote, cheaply: JSON files parse; a safetensors file is as
    long as its header says; torch files (zip archives) pass their CRC check.
    """
    import zipfile

    if not (path / "trainer_state.json").is_file():  # the Trainer writes it last
        return "no trainer_state.json (the checkpoint was not finished)"
    for file in sorted(path.iterdir()):
        try:
            if file.suffix == ".json":
                json.loads(file.read_text(encoding="utf-8"))
            elif file.suffix == ".safetensors":
                with file.open("rb") as f:
                    size = int.from_bytes(f.read(8), "little")
                    header = json.loads(f.read(size))
                ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
                if file.stat().st_size != 8 + size + max(ends, default=0):
                    return f"{file.name} is truncated"
            elif file.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(file) as archive:
                    if archive.testzip() is not None:
                        return f"{file.name} is corrupt"
        except (OSError, ValueError, KeyError, TypeError, IndexError, zipfile.BadZipFile):
            return f"{file.name} is truncated or corrupt"
    return None


def _trainer(
    config: RunConfig, prepared: Prepared, train: Any, dev: Any, out: Path, progress: bool
) -> Any:
    import torch
    from transformers import DataCollatorWithPadding, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from ..hf import AdversarialTrainer
    from .callbacks import EpochStepTime, Progress

    steps_per_epoch = math.ceil(len(train) / (config.batch_size * config.gradient_accumulation))
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=max(64, 2 * config.batch_size),
        gradient_accumulation_steps=config.gradient_accumulation,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio in transformers 5
        num_train_epochs=config.epochs,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,  # the best and the latest
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=1,
        train_sampling_strategy="group_by_length" if config.bucketing else "random",
        seed=config.seed,
        data_seed=config.seed,
        bf16=config.precision == "bf16",
        fp16=config.precision == "fp16",
        use_cpu=not torch.cuda.is_available(),
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = AdversarialTrainer(
        model=make_model(config, prepared),
        args=args,
        train_dataset=train,
        eval_dataset=dev,
        processing_class=prepared.tokenizer,
        data_collator=DataCollatorWithPadding(prepared.tokenizer),
        compute_metrics=_metrics,
        method=config.method,
        method_kwargs=config.method_kwargs,
        callbacks=[EpochStepTime()],
    )
    for callback in (PrinterCallback, ProgressCallback):  # they print every log line
        trainer.remove_callback(callback)
    if progress:
        trainer.add_callback(Progress(steps_per_epoch))
    return trainer


def _predicted(predictions: Any) -> Any:
    """Predicted label ids from the Trainer's predictions (logits, or a tuple led by them)."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    return logits.argmax(-1)


def _metrics(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    predicted = _predicted(prediction.predictions)
    return {
        "accuracy": float(accuracy_score(prediction.label_ids, predicted)),
        "macro_f1": float(f1_score(prediction.label_ids, predicted, average="macro")),
    }


def _epochs(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-epoch train loss (mean of the steps), dev metrics and median step time."""
    epochs: dict[int, dict[str, Any]] = {}
    losses: dict[int, list[float]] = {}
    for entry in log_history:
        index = max(1, math.ceil(entry.get("epoch", 0) - 1e-9))
        if "loss" in entry and "eval_loss" not in entry:
            losses.setdefault(index, []).append(entry["loss"])
        if "eval_accuracy" in entry:
            epochs.setdefault(index, {})["dev_accuracy"] = entry["eval_accuracy"]
            epochs[index]["dev_macro_f1"] = entry["eval_macro_f1"]
        if "step_time_s" in entry:
            epochs.setdefault(index, {})["step_time_s"] = entry["step_time_s"]
    rows = []
    for index in sorted(epochs):
        row = {
            "epoch": index,
            "train_loss": statistics.fmean(losses[index]) if losses.get(index) else None,
        }
        row.update(epochs[index])
        rows.append(row)
    return rows


# What results.json records, and what `advnlp env` prints (with the optional extras).
RUN_PACKAGES = (
    "advnlp",
    "torch",
    "transformers",
    "accelerate",
    "datasets",
    "tokenizers",
    "numpy",
    "scikit-learn",
)


def package_versions(packages: tuple[str, ...] = RUN_PACKAGES) -> dict[str, str]:
    """Python's and each package's version ("not installed" where it is missing)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def _environment() -> dict[str, Any]:
    """What else changes a run's numbers: the device, the CPU and the thread count."""
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name()} (CUDA {torch.version.cuda})"
    return {
        "device": device,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def _cpu_name() -> str | None:
    """The CPU model (Linux's /proc/cpuinfo; platform.processor() is often empty)."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def tokenizer_hash(tokenizer: Any) -> str | None:
    """sha256 of the tokenizer's definition: its tokenizer.json with the truncation and padding
    state cleared (encoding sets them, so files saved after use differ only there)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    definition = json.loads(backend.to_str())
    definition["truncation"] = definition["padding"] = None
    text = json.dumps(definition, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def data_hash(spec: str | None) -> str | None:
    """sha256 of a data file (``sha256sum FILE``), or of a save_to_disk folder's files (paths
    and contents, in path order); None for a Hub dataset or no file."""
    if spec is None or spec.startswith("hf:"):
        return None
    path = Path(spec)
    if not path.exists():
        head, _, _ = spec.rpartition(":")  # DIR:SPLIT
        path = Path(head)
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    if not path.is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def _results(
    config: RunConfig,
    prepared: Prepared,
    trainer: Any,
    dev_out: Any,
    test_out: Any,
    runtime: float,
    resumed_from: str | None,
) -> dict[str, Any]:
    epochs = _epochs(trainer.state.log_history)
    best = max(epochs, key=lambda e: e["dev_accuracy"]) if epochs else None
    step_times = [e["step_time_s"] for e in epochs if e.get("step_time_s") is not None]
    dev_pred = _predicted(dev_out.predictions)
    return {
        "config": config.to_json(),
        "labels": prepared.labels,
        "epochs": epochs,
        "best_epoch": best["epoch"] if best else None,
        "dev": {
            "accuracy": dev_out.metrics["dev_accuracy"],
            "macro_f1": dev_out.metrics["dev_macro_f1"],
            "n": len(dev_pred),
        },
        "dev_predictions": [int(p) for p in dev_pred],
        "dev_labels": [int(label) for label in dev_out.label_ids],
        "test": None
        if test_out is None
        else {
            "accuracy": test_out.metrics["test_accuracy"],
            "macro_f1": test_out.metrics["test_macro_f1"],
            "n": len(test_out.label_ids),
        },
        "median_step_time_s": statistics.median(step_times) if step_times else None,
        "train_runtime_s": runtime,
        "steps": trainer.state.global_step,
        "resumed_from": resumed_from,
        # what a reader needs to reproduce the run (see the README's "Reproducibility")
        "versions": package_versions(),
        "environment": _environment(),
        "tokenizer_sha256": tokenizer_hash(prepared.tokenizer),
        "vocab_size": len(prepared.tokenizer),
        "data_sha256": {
            "train": data_hash(config.train),
            "dev": data_hash(config.dev),
            "test": data_hash(config.test),
        },
    }
