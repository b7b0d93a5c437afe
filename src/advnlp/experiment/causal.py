"""One fine-tuning run of a causal language model on prompt/response pairs (``advnlp train
--task causal-lm``): pairs -> tokens with the loss on the response only -> AdversarialTrainer
-> the best-on-dev model (lowest response-token loss) + results.json.

The run's folder is a classifier run's (run_folder.py) and its results the same RunResult, with
the causal scores: the mean negative log-likelihood of the dev response tokens (``loss``, nats
per token), its perplexity and the next-token accuracy on those tokens.

Each example is ``prompt tokens + response tokens + EOS``, tokenized separately (so the boundary
is exact: put the space or newline that joins them in the data), cut at ``max_length``; labels
are -100 on the prompt and the padding. An example whose response is cut off entirely is left
out, with a warning. A tokenizer without a padding token pads with EOS (the model's config
learns that id, so the methods leave padding unperturbed): the EOS that ends a response is only
ever an input at the last real position, which predicts nothing, so nothing is lost.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from .environment import (
    data_hash,
    environment,
    package_versions,
    tokenizer_hash,
    use_deterministic_algorithms,
)
from .models import _hub_error, _source, model_size
from .results import RunResult, Scores
from .run_config import RunConfig
from .run_folder import RunState, open_run
from .trainer import build_trainer, epochs_from_log, train_from

__all__ = ["encode_pairs", "load_model", "load_tokenizer", "run", "token_scores"]

log = logging.getLogger(__name__)
IGNORE = -100  # the label of a token that is not trained on (transformers' ignore_index)


def load_tokenizer(name: str | Path) -> Any:
    """The model's tokenizer, padding with EOS if it has no padding token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **_source(str(name)))
    except (OSError, ValueError) as error:
        raise _hub_error(str(name), "tokenizer", error) from None
    if tokenizer.eos_token_id is None:
        raise UsageError(f"--model {name}: its tokenizer has no EOS token to end a response with")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name: str, tokenizer: Any) -> Any:
    """``AutoModelForCausalLM`` from a Hub name or folder; its config learns the padding id."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(name, **_source(name))
    except (OSError, ValueError) as error:
        if Path(name).expanduser().is_dir():  # e.g. a classifier's folder
            first = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise UsageError(
                f"--model {name}: not loadable as a causal language model ({first[:200]})"
            ) from None
        raise _hub_error(name, "causal language model", error) from None
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:  # an id past the matrix fails deep in the first step otherwise
        raise UsageError(
            f"--model {name}: its tokenizer has {len(tokenizer)} tokens but the model's "
            f"embedding only {rows} rows; give a folder whose model and tokenizer match"
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def encode_pairs(pairs: Any, tokenizer: Any, max_length: int) -> Any:
    """Tokenize a ``data.Pairs``: input_ids, attention_mask, labels (-100 on the prompt), length.

    Rows whose response is cut off entirely by ``max_length`` are left out (with a warning);
    if none is left, DataError names the file."""
    eos = tokenizer.eos_token_id

    def tokenize(batch: dict[str, list]) -> dict[str, list]:
        prompts = tokenizer(batch["prompt"])["input_ids"]
        responses = tokenizer(batch["response"], add_special_tokens=False)["input_ids"]
        out: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": [], "length": []}
        for prompt, response in zip(prompts, responses, strict=True):
            ids = (prompt + response + [eos])[:max_length]
            labels = ([IGNORE] * len(prompt) + response + [eos])[:max_length]
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(labels)
            out["length"].append(len(ids))
        return out

    dataset = pairs.dataset.map(
        tokenize, batched=True, remove_columns=pairs.dataset.column_names, desc="tokenizing"
    )
    # a label at position 0 predicts nothing (the loss shifts by one)
    trained = [any(y != IGNORE for y in labels[1:]) for labels in dataset["labels"]]
    if not any(trained):
        raise DataError(
            f"{pairs.source}: no response token fits in --max-length {max_length}; raise it"
        )
    if not all(trained):
        first = pairs.where(trained.index(False))
        log.warning(
            "%s: %d of %d examples have no response token within --max-length %d (the first: "
            "%s); they are left out",
            pairs.source,
            trained.count(False),
            len(trained),
            max_length,
            first,
        )
        dataset = dataset.select([i for i, keep in enumerate(trained) if keep])
    return dataset


def response_token_losses(logits: Any, labels: Any) -> tuple[Any, Any]:
    """Per position, the next-token NLL and whether the top-1 prediction is right, at the
    positions whose target is a response token; -100 elsewhere (NLL is never negative). Runs on
    each evaluation batch, so the Trainer keeps (B, T) numbers instead of (B, T, vocab) logits."""
    import torch

    logits, targets = logits[:, :-1].float(), labels[:, 1:]
    keep = targets != IGNORE
    safe = targets.clamp_min(0)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), safe, reduction="none")
    correct = (logits.argmax(-1) == safe).float()
    return nll.masked_fill(~keep, IGNORE), correct.masked_fill(~keep, IGNORE)


def token_scores(prediction: Any) -> dict[str, float]:
    """accuracy, nll (mean per response token), perplexity and tokens of an evaluation."""
    nll, correct = prediction.predictions
    keep = nll >= 0  # -100 marks the positions that are not response tokens (and the padding)
    tokens = int(keep.sum())
    mean = float(nll[keep].sum() / max(tokens, 1))
    return {
        "accuracy": float(correct[keep].sum() / max(tokens, 1)),
        "nll": mean,
        "perplexity": math.exp(min(mean, 700.0)),  # exp overflows past ~709
        "tokens": tokens,
    }


def _scores(output: Any, split: str, examples: int) -> Scores:
    metrics = output.metrics
    return Scores(
        accuracy=metrics[f"{split}_accuracy"],
        n=examples,
        loss=metrics[f"{split}_nll"],
        perplexity=metrics[f"{split}_perplexity"],
        tokens=int(metrics[f"{split}_tokens"]),
    )


def run(
    config: RunConfig, *, resume: bool = False, overwrite: bool = False, progress: bool = True
) -> RunResult:
    """Fine-tune ``config.model`` on the pairs in ``config.train``; returns (and writes) the
    results. Bad flags, data and model names fail before anything is written."""
    from ..data import load_pairs

    if config.task != "causal-lm":
        raise UsageError(f"--task: expected causal-lm, got {config.task!r}")
    folder, processes, state = open_run(config, resume=resume, overwrite=overwrite)
    if state is RunState.DONE:
        return folder.read_result()
    pairs = {
        "train": load_pairs(config.train, flag="--train", limit=config.max_train_examples),
        "dev": load_pairs(config.dev, flag="--dev", limit=config.max_dev_examples),
    }
    if config.test:
        pairs["test"] = load_pairs(config.test, flag="--test")
    use_deterministic_algorithms()
    main = processes.is_main_process
    saved = folder.saved_tokenizer() if state is RunState.RESUME else None
    tokenizer = load_tokenizer(saved or config.model)
    encoded = {
        name: encode_pairs(split, tokenizer, config.max_length) for name, split in pairs.items()
    }
    from transformers import set_seed

    set_seed(config.seed)
    model = load_model(config.model, tokenizer)
    if main and state is RunState.NEW:
        folder.start(config)
    tokenizer = folder.share_tokenizer(tokenizer, processes)

    from transformers import DataCollatorForSeq2Seq

    trainer = build_trainer(
        config,
        model,
        tokenizer,
        encoded["train"],
        encoded["dev"],
        folder.checkpoints,
        progress and main,
        # pads the labels with -100 on the tokenizer's padding side (decoder-only models too)
        collator=DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE),
        compute_metrics=token_scores,
        preprocess_logits=response_token_losses,
        best="nll",  # the best model is the one with the lowest dev loss
        greater_is_better=False,
    )
    checkpoint = folder.last_checkpoint(prune=main) if state is RunState.RESUME else None
    runtime, steps_run = train_from(trainer, checkpoint)

    scores = {
        name: _scores(trainer.predict(data, metric_key_prefix=name), name, len(data))
        for name, data in encoded.items()
        if name != "train"
    }
    epochs = epochs_from_log(trainer.state.log_history)
    scored = [e for e in epochs if e.dev_loss is not None]
    best = min(scored, key=lambda e: e.dev_loss) if scored else None
    step_times = [e.step_time_s for e in epochs if e.step_time_s is not None]
    result = RunResult(
        config=config,
        epochs=epochs,
        best_epoch=best.epoch if best else None,
        dev=scores["dev"],
        test=scores.get("test"),
        median_step_time_s=statistics.median(step_times) if step_times else None,
        train_runtime_s=runtime,
        steps=trainer.state.global_step,
        resumed_from=None if checkpoint is None else str(checkpoint),
        versions=package_versions(),
        environment=environment(),
        tokenizer_sha256=tokenizer_hash(tokenizer),
        vocab_size=len(tokenizer),
        data_sha256={name: data_hash(getattr(config, name)) for name in ("train", "dev", "test")},
        world_size=processes.num_processes,
        model_size=model_size(tokenizer, trainer.model),
        steps_run=steps_run,
    )

    def save_model(path: Path) -> None:
        trainer.model.save_pretrained(path)
        tokenizer.save_pretrained(path)

    if main:
        folder.finish(result, save_model, keep_checkpoints=config.keep_checkpoints)
    processes.wait_for_everyone()
    return result
