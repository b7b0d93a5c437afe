"""PyTorch Lightning: an advnlp method in a LightningModule, ``training_step`` unchanged.

    class Classifier(AdversarialMixin, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_model()
            self.adversarial = advnlp.FGM(self.net, epsilon=0.5)  # None turns it off

        def training_step(self, batch, batch_idx):  # exactly as without adversarial training
            loss = self.net(**batch).loss
            self.log("train_loss", loss)
            return loss

Automatic optimization (Lightning's default). A method has to run the forward pass several
times on the same batch, and ``training_step`` is that forward pass, so the mixin wraps every
``training_step`` its subclasses define: the method's closure calls it, and its first call is
the one Lightning asked for (no forward is wasted; the returned and logged loss is the clean
one). Later calls re-run it with ``self.log`` / ``self.log_dict`` silenced, so adversarial
losses never mix into logged metrics; other side effects (e.g. torchmetrics updates) repeat.

- Every backward pass goes through ``trainer.strategy.backward``, as ``manual_backward`` does:
  the precision plugin's GradScaler, ``on_before_backward`` / ``on_after_backward`` hooks and a
  ``backward`` override all apply to each pass (so the hooks fire once per pass, and once more
  for the returned loss). The method also gets the plugin's scaler (when it has none) so the
  gradient penalty is computed unscaled.
- Gradient accumulation: the closure returns ``loss / accumulate_grad_batches``, the division
  Lightning applies to the returned loss; for the gradient penalty this gives the penalty of
  the full batch (see ``advnlp.GradientPenalty``).
- Lightning zeroes gradients *after* ``training_step`` on the first micro-batch of each
  accumulation window. On that micro-batch the stale gradients are dropped before the passes
  (Lightning was about to zero them: no extra gradient buffer) and the new ones are held aside
  and put back when Lightning backpropagates the returned loss, a detached copy of the clean
  loss, whose backward therefore touches no parameter and reruns nothing. Lightning's own
  zero_grad counter is checked then: a different schedule is an error, never lost gradients.

The mixin subclasses nothing of Lightning's, so it works with ``lightning.pytorch`` and
``pytorch_lightning`` alike, in any base position.

Manual optimization: ``loss = self.adversarial_backward(lambda: self.net(**batch).loss)``
instead of ``self.manual_backward(loss)``; every pass goes through ``manual_backward``.

Single process only under automatic optimization (DDP runs ``training_step`` inside its
forward, where extra backward passes are not allowed). Dropout draws new masks in each pass.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from torch import Tensor

from .base import AdversarialMethod, Closure
from .errors import ClosureError, ConfigError

try:
    import lightning.pytorch as pl
except ImportError:
    try:
        import pytorch_lightning as pl
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "advnlp.lightning needs PyTorch Lightning: pip install 'advnlp[lightning]' "
            f"(or pip install pytorch-lightning) ({error})"
        ) from error

if TYPE_CHECKING:
    _Module = pl.LightningModule
else:
    _Module = object

__all__ = ["AdversarialMixin"]


class AdversarialMixin(_Module):
    """Mix into a LightningModule to train it with ``self.adversarial`` (an advnlp method).

    Set ``self.adversarial`` in ``__init__`` (built on the network the loss runs, e.g.
    ``advnlp.build("gp", self.net, epsilon=1.0)``); ``None`` (the default) trains normally.
    The base order does not matter. See the module docstring for how each optimization mode
    is handled.
    """

    adversarial: AdversarialMethod | None = None
    _advnlp_busy: bool = False
    _advnlp_pending: tuple[pl.Trainer, int] | None = None  # a step whose hand-over is due

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        owner = next((c for c in cls.__mro__ if "training_step" in c.__dict__), None)
        if owner is None or owner.__module__.split(".")[0] in ("lightning", "pytorch_lightning"):
            return  # no training_step of the user's yet
        step = cls.training_step
        if not getattr(step, "_advnlp_wrapped", False):
            cls.training_step = _wrap(step)  # type: ignore[method-assign]

    def adversarial_backward(
        self, closure: Closure, method: AdversarialMethod | None = None
    ) -> Tensor:
        """Manual optimization: run ``method`` (default ``self.adversarial``) on ``closure``.

        Replaces ``self.manual_backward(loss)``; returns the clean loss, detached. Divide the
        closure's loss by the number of micro-batches yourself when accumulating.

        Example:
            >>> opt = self.optimizers()
            >>> opt.zero_grad()
            >>> loss = self.adversarial_backward(lambda: self.net(**batch).loss)
            >>> opt.step()
        """
        method = self.adversarial if method is None else method
        if method is None:
            raise ConfigError(
                "adversarial_backward() has no method: set self.adversarial = "
                "advnlp.FGM(self.<network>, epsilon=...) in __init__, or pass method="
            )
        if self.automatic_optimization and getattr(self, "_fabric", None) is None:
            raise ConfigError(
                "adversarial_backward() is for manual optimization "
                "(self.automatic_optimization = False); with automatic optimization keep "
                "training_step as it is: the mixin runs self.adversarial on it"
            )
        if self._trainer is not None:
            _share_scaler(method, self._trainer)
        return method.backward(closure, backward=self.manual_backward)


def _wrap(step: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(step)
    def training_step(self: AdversarialMixin, *args: Any, **kwargs: Any) -> Any:
        if self._advnlp_busy or not _applies(self):
            return step(self, *args, **kwargs)
        self._advnlp_busy = True
        try:
            return _adversarial_step(self, functools.partial(step, self, *args, **kwargs), args)
        finally:
            self._advnlp_busy = False

    training_step._advnlp_wrapped = True  # type: ignore[attr-defined]
    return training_step


def _applies(module: AdversarialMixin) -> bool:
    trainer = module._trainer
    return (
        module.adversarial is not None
        and module.automatic_optimization
        and trainer is not None
        and trainer.training
        and not getattr(trainer.fit_loop, "_skip_backward", False)  # e.g. SWA's BN-update epoch
    )


class _Skipped(Exception):
    """training_step returned None: Lightning skips the step."""


def _adversarial_step(module: AdversarialMixin, run: Callable[[], Any], args: tuple) -> Any:
    trainer = module.trainer
    if trainer.world_size > 1:
        raise ConfigError(
            f"advnlp.lightning runs on one process only, got world_size={trainer.world_size} "
            f"({type(trainer.strategy).__name__}); under DDP use manual optimization with "
            "adversarial_backward, or the core advnlp loop"
        )
    if any(isinstance(arg, Iterator) for arg in args):
        raise ConfigError(
            "training_step(dataloader_iter) cannot be re-run on the same batch: take the batch "
            "as an argument, or use manual optimization with adversarial_backward"
        )
    step = trainer.fit_loop.epoch_loop.total_batch_idx
    if module._advnlp_pending == (trainer, step - 1):  # not a leftover of an aborted fit
        raise RuntimeError(
            "the loss training_step returned last step was never backpropagated by Lightning, "
            f"so its gradients were lost: {type(trainer.precision_plugin).__name__} / "
            f"{type(trainer.strategy).__name__} is not supported by advnlp.lightning"
        )
    method = module.adversarial
    assert method is not None
    _share_scaler(method, trainer)
    accumulate = trainer.accumulate_grad_batches
    if hasattr(method, "micro_batches"):  # R3F, SMART, VAT: their KL, read from the logits, is
        method.micro_batches = accumulate  # divided like the loss the closure returns
    optimizer = trainer.optimizers[0]
    params = [p for group in optimizer.param_groups for p in group["params"]]
    # Lightning's own test for zeroing after this training_step.
    first = trainer.fit_loop.epoch_loop.batch_idx % accumulate == 0
    outputs: list[Any] = []

    def closure() -> Tensor:
        with _quiet(module) if outputs else contextlib.nullcontext():
            output = run()
        if output is None and not outputs:
            raise _Skipped
        outputs.append(output)
        return _loss_of(output) / accumulate

    if first:
        for p in params:
            p.grad = None  # stale: Lightning zeroes them right after this training_step
    try:
        method.backward(closure, backward=lambda loss: trainer.strategy.backward(loss, optimizer))
    except _Skipped:
        return None
    held: list[tuple[Tensor, Tensor]] = []
    if first:  # move them out of reach of Lightning's zero_grad
        held = [(p, p.grad) for p in params if p.grad is not None]
        for p in params:
            p.grad = None
    zeroed = _zero_grad_calls(trainer)

    def hand_over() -> None:
        module._advnlp_pending = None
        now = _zero_grad_calls(trainer)
        if zeroed is not None and now is not None and now - zeroed != int(first):
            raise RuntimeError(
                f"advnlp.lightning expected Lightning to zero gradients {int(first)} time(s) "
                f"between training_step and backward, it did {now - zeroed}: this Lightning "
                f"version ({pl.__version__}) schedules zero_grad differently; please report it"
            )
        for p, grad in held:
            p.grad = grad if p.grad is None else p.grad.add_(grad)

    clean = _loss_of(outputs[0]).detach().requires_grad_()
    clean.register_hook(lambda _: hand_over())
    module._advnlp_pending = (trainer, step)
    return clean if isinstance(outputs[0], Tensor) else {**outputs[0], "loss": clean}


def _loss_of(output: Any) -> Tensor:
    loss = output.get("loss") if isinstance(output, Mapping) else output
    if not isinstance(loss, Tensor):
        raise ClosureError(
            "training_step must return the loss tensor or a dict with a 'loss' tensor on every "
            f"call, got {type(output).__name__}"
        )
    return loss


def _no_log(*args: Any, **kwargs: Any) -> None:
    return None


@contextlib.contextmanager
def _quiet(module: AdversarialMixin) -> Iterator[None]:
    """``self.log`` / ``self.log_dict`` do nothing (instance attributes shadow the methods)."""
    module.__dict__["log"] = module.__dict__["log_dict"] = _no_log
    try:
        yield
    finally:
        del module.__dict__["log"], module.__dict__["log_dict"]


def _share_scaler(method: AdversarialMethod, trainer: pl.Trainer) -> None:
    scaler = getattr(trainer.precision_plugin, "scaler", None)
    if scaler is not None and method.perturbs and method.scaler is None:
        method.scaler = scaler  # for the gradients the method takes itself


def _zero_grad_calls(trainer: pl.Trainer) -> int | None:
    """How many times Lightning has zeroed gradients (its progress counter), if it says."""
    try:
        progress = trainer.fit_loop.epoch_loop.automatic_optimization.optim_progress
        return int(progress.optimizer.zero_grad.total.completed)
    except AttributeError:
        return None
