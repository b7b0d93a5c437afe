"""The Hugging Face Trainer of a run: its arguments, metrics and callbacks, its training (timed,
from a checkpoint on resume), and what its log history says per epoch."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .results import Epoch
from .run_config import RunConfig


def build_trainer(
    config: RunConfig,
    model: Any,
    tokenizer: Any,
    train: Any,
    dev: Any,
    checkpoints: Path,
    progress: bool,
    *,
    collator: Any = None,
    compute_metrics: Callable[[Any], dict[str, float]] | None = None,
    preprocess_logits: Callable[[Any, Any], Any] | None = None,
    best: str = "accuracy",
    greater_is_better: bool = True,
) -> Any:
    """An AdversarialTrainer for the run: evaluated and saved every epoch (the best on dev by
    the metric ``best`` is loaded at the end), seeded, quiet unless ``progress``. The defaults
    are a classifier's (padding collator, accuracy); a causal LM run gives its own."""
    from transformers import DataCollatorWithPadding
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from ..hf import AdversarialTrainer
    from .callbacks import EpochStepTime, Progress

    steps_per_epoch = math.ceil(len(train) / (config.batch_size * config.gradient_accumulation))
    args = training_arguments(config, checkpoints, best=best, greater_is_better=greater_is_better)
    trainer = AdversarialTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=dev,
        processing_class=tokenizer,
        data_collator=collator or DataCollatorWithPadding(tokenizer),
        compute_metrics=compute_metrics or metrics,
        preprocess_logits_for_metrics=preprocess_logits,
        method=config.method,
        method_kwargs=method_kwargs(config),
        callbacks=[EpochStepTime()],
    )
    for callback in (PrinterCallback, ProgressCallback):  # they print every log line
        trainer.remove_callback(callback)
    if progress:
        trainer.add_callback(Progress(steps_per_epoch))
    return trainer


def train_from(trainer: Any, checkpoint: Path | None) -> tuple[float, int]:
    """Trains, resuming from ``checkpoint`` if given: (the seconds it took, the optimizer steps
    it ran: from the checkpoint's step on)."""
    from .callbacks import FirstStep, Progress

    first_step = FirstStep()
    trainer.add_callback(first_step)
    started = time.perf_counter()
    try:
        trainer.train(resume_from_checkpoint=None if checkpoint is None else str(checkpoint))
    finally:  # a run stopped (SIGTERM, an error) closes its bar before the message is printed
        for callback in trainer.callback_handler.callbacks:
            if isinstance(callback, Progress):
                callback.close()
    return time.perf_counter() - started, trainer.state.global_step - first_step.step


def method_kwargs(config: RunConfig) -> dict[str, Any]:
    """The method's keyword arguments: its hyperparameters and the warm-up, if it takes one
    (the baseline has no adversary to delay)."""
    from ..registry import arguments

    warm_up = {"start_step": config.start_step} if "start_step" in arguments(config.method) else {}
    return {**config.method_kwargs, **warm_up}


def training_arguments(
    config: RunConfig, checkpoints: Path, *, best: str, greater_is_better: bool
) -> Any:
    """The run's TrainingArguments: evaluated and saved every epoch, the model best by the
    metric ``best`` loaded at the end, seeded, logging every step, no tqdm of its own."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(checkpoints),
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
        metric_for_best_model=best,
        greater_is_better=greater_is_better,
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


def predicted(predictions: Any) -> Any:
    """Predicted label ids from the Trainer's predictions (logits, or a tuple led by them)."""
    logits = predictions[0] if isinstance(predictions, tuple) else predictions
    return logits.argmax(-1)


def metrics(prediction: Any) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    labels = predicted(prediction.predictions)
    return {
        "accuracy": float(accuracy_score(prediction.label_ids, labels)),
        "macro_f1": float(f1_score(prediction.label_ids, labels, average="macro")),
    }


def epochs_from_log(log_history: list[dict[str, Any]]) -> list[Epoch]:
    """Per-epoch train loss (mean of the steps), dev metrics and median step time."""
    epochs: dict[int, dict[str, Any]] = {}
    losses: dict[int, list[float]] = {}
    for entry in log_history:
        index = max(1, math.ceil(entry.get("epoch", 0) - 1e-9))
        if "loss" in entry and "eval_loss" not in entry:
            losses.setdefault(index, []).append(entry["loss"])
        if "eval_accuracy" in entry:
            epochs.setdefault(index, {})["dev_accuracy"] = entry["eval_accuracy"]
            epochs[index]["dev_macro_f1"] = entry.get("eval_macro_f1")  # none for causal LMs
            epochs[index]["dev_loss"] = entry.get("eval_nll")  # causal LMs only
        if "step_time_s" in entry:
            epochs.setdefault(index, {})["step_time_s"] = entry["step_time_s"]
            epochs[index]["train_s"] = entry.get("train_s")
    return [
        Epoch(
            epoch=index,
            train_loss=statistics.fmean(losses[index]) if losses.get(index) else None,
            **epochs[index],
        )
        for index in sorted(epochs)
    ]
