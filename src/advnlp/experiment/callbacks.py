"""Trainer callbacks for experiment runs: step timing and a quiet tqdm progress bar."""

from __future__ import annotations

import statistics
import time
from typing import Any

from transformers import TrainerCallback


class EpochStepTime(TrainerCallback):
    """Times every optimizer step; at each epoch end logs the median and the sum (the epoch's
    training time, evaluation excluded) into the log history.

    The log history is saved in each checkpoint, so the timings survive ``--resume``.
    """

    def __init__(self) -> None:
        self._start = 0.0
        self._times: list[float] = []

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._times.append(time.perf_counter() - self._start)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self._times:
            median = statistics.median(self._times)
            state.log_history.append(
                {
                    "epoch": state.epoch,
                    "step": state.global_step,
                    "step_time_s": median,
                    "train_s": sum(self._times),
                }
            )
        self._times = []


class Progress(TrainerCallback):
    """One tqdm bar over the optimizer steps (loss in the postfix), one line per evaluation."""

    def __init__(self, steps_per_epoch: int, description: str = "training") -> None:
        self.steps_per_epoch = steps_per_epoch
        self.description = description
        self.bar: Any = None

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(
            total=state.max_steps,
            initial=state.global_step,
            desc=self.description,
            unit="step",
            dynamic_ncols=True,
            leave=None,  # kept where it stands alone (train); gone when done under compare's bar
        )

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if self.bar is not None and logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: Any = None, **kwargs: Any
    ) -> None:
        if self.bar is not None and metrics and "eval_perplexity" in metrics:  # causal LMs
            self.bar.write(
                f"epoch {round(state.epoch)}: dev loss {metrics['eval_nll']:.4f}, perplexity "
                f"{metrics['eval_perplexity']:.2f}, token accuracy "
                f"{100 * metrics['eval_accuracy']:.2f}%"
            )
        elif self.bar is not None and metrics and "eval_accuracy" in metrics:
            self.bar.write(
                f"epoch {round(state.epoch)}: dev accuracy {100 * metrics['eval_accuracy']:.2f}%, "
                f"macro-F1 {100 * metrics['eval_macro_f1']:.2f}%"
            )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class FirstStep(TrainerCallback):
    """Notes the step training starts from (the checkpoint's, on resume)."""

    step = 0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.step = state.global_step
