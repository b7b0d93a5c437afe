"""One training run: data -> tokenizer and model -> AdversarialTrainer -> best model + results.

The run's folder and its files: run_folder.py; results.json: results.py. Everything heavy
(transformers, datasets, scikit-learn) is imported inside the functions, so
``import advnlp.experiment`` stays light.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from .environment import (
    data_hash,
    environment,
    package_versions,
    process_state,
    tokenizer_hash,
    use_deterministic_algorithms,
)
from .models import (
    SCRATCH_SIZES,
    load_pretrained_model,
    load_pretrained_tokenizer,
    model_size,
    scratch_model,
    split_texts,
    train_tokenizer,
)
from .results import RunResult, Scores, majority_share
from .run_config import RunConfig
from .run_folder import RunState, open_run
from .trainer import build_trainer, epochs_from_log, predicted, train_from

__all__ = ["Prepared", "RunConfig", "make_tokenizer", "prepare_data", "process_state", "run"]


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


def make_tokenizer(config: RunConfig, prepared: Prepared, saved: Path | None = None) -> Any:
    """The run's tokenizer: loaded from the folder ``saved`` if given, else made (scratch
    models train one on the training texts). Saving it is the run folder's hand-off."""
    from transformers import AutoTokenizer

    if saved is not None:
        return AutoTokenizer.from_pretrained(saved)
    if config.model in SCRATCH_SIZES:
        dataset = prepared.train.dataset
        texts = list(dataset["text"]) + (
            list(dataset["text_pair"]) if "text_pair" in dataset.column_names else []
        )
        return train_tokenizer(texts, vocab_size=config.vocab_size, max_length=config.max_length)
    # an offline e5-small keeps the pieces of the run's texts (see models.OFFLINE_MODELS)
    splits = [s for s in (prepared.train, prepared.dev, prepared.test) if s is not None]
    texts = (text for split in splits for text in split_texts(split))
    return load_pretrained_tokenizer(config.model, texts=texts, layers=config.layers)


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


def run(
    config: RunConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    prepared: Prepared | None = None,
    progress: bool = True,
) -> RunResult:
    """Train one model with one method; returns (and writes) its results.

    Bad flags, data and model names fail before anything is written to the output folder.
    """
    folder, processes, state = open_run(config, resume=resume, overwrite=overwrite)
    if state is RunState.DONE:
        return folder.read_result()
    prepared = prepared or prepare_data(config)
    use_deterministic_algorithms()
    main = processes.is_main_process
    tokenizer = prepared.tokenizer
    if main:  # only rank 0 writes; the others load what it wrote
        if tokenizer is None:
            saved = folder.saved_tokenizer() if state is RunState.RESUME else None
            tokenizer = make_tokenizer(config, prepared, saved)
        if state is RunState.NEW:
            folder.start(config)
    prepared = replace(prepared, tokenizer=folder.share_tokenizer(tokenizer, processes))

    train, dev, test = (
        None
        if split is None
        else encode(split, prepared.tokenizer, prepared.labels, config.max_length)
        for split in (prepared.train, prepared.dev, prepared.test)
    )
    model = make_model(config, prepared)
    trainer = build_trainer(
        config, model, prepared.tokenizer, train, dev, folder.checkpoints, progress and main
    )
    checkpoint = folder.last_checkpoint(prune=main) if state is RunState.RESUME else None
    runtime, steps_run = train_from(trainer, checkpoint)

    dev_out = trainer.predict(dev, metric_key_prefix="dev")
    test_out = trainer.predict(test, metric_key_prefix="test") if test is not None else None
    result = _result(config, prepared, trainer, dev_out, test_out)
    result.train_runtime_s = runtime
    result.resumed_from = None if checkpoint is None else str(checkpoint)
    result.world_size = processes.num_processes
    result.steps_run = steps_run

    def save_model(path: Path) -> None:
        trainer.model.save_pretrained(path)
        prepared.tokenizer.save_pretrained(path)

    if main:
        folder.finish(result, save_model, keep_checkpoints=config.keep_checkpoints)
    processes.wait_for_everyone()
    return result


def _scores(output: Any, split: str) -> Scores:
    return Scores(
        accuracy=output.metrics[f"{split}_accuracy"],
        macro_f1=output.metrics[f"{split}_macro_f1"],
        n=len(output.label_ids),
    )


def _result(
    config: RunConfig, prepared: Prepared, trainer: Any, dev_out: Any, test_out: Any
) -> RunResult:
    """The run's results, but for what only ``run`` knows (timing, resume, processes)."""
    epochs = epochs_from_log(trainer.state.log_history)
    scored = [e for e in epochs if e.dev_accuracy is not None]
    best = max(scored, key=lambda e: e.dev_accuracy) if scored else None
    step_times = [e.step_time_s for e in epochs if e.step_time_s is not None]
    dev_predictions = [int(p) for p in predicted(dev_out.predictions)]
    return RunResult(
        config=config,
        labels=prepared.labels,
        epochs=epochs,
        best_epoch=best.epoch if best else None,
        dev=_scores(dev_out, "dev"),
        dev_predictions=dev_predictions,
        dev_labels=[int(label) for label in dev_out.label_ids],
        test=None if test_out is None else _scores(test_out, "test"),
        median_step_time_s=statistics.median(step_times) if step_times else None,
        steps=trainer.state.global_step,
        versions=package_versions(),
        environment=environment(),
        tokenizer_sha256=tokenizer_hash(prepared.tokenizer),
        vocab_size=len(prepared.tokenizer),
        data_sha256={
            "train": data_hash(config.train),
            "dev": data_hash(config.dev),
            "test": data_hash(config.test),
        },
        model_size=model_size(prepared.tokenizer, trainer.model),  # pieces, layers
        dev_majority_share=majority_share(dev_predictions),
    )
