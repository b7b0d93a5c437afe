"""The contract every method keeps, and the machinery they share.

``method.backward(closure, backward=None)`` replaces ``loss.backward()``:

- ``closure()`` runs one forward pass and returns the scalar loss; the method calls it as often
  as it needs (the batch must be the same each time).
- Every backward pass that should reach ``.grad`` goes through ``backward(loss)`` (default:
  ``loss.backward()``), so ``accelerator.backward`` or a GradScaler can drive them.
- On return, ``.grad`` holds the summed gradients and the clean loss comes back, detached.

Perturbations are added to the embedding *output* by a forward hook that exists only while
the method runs: no parameter is ever written, so every parameter is bit-identical afterwards,
and a tied output head (which reads the weight, not the module's output) is never perturbed.

Gradients w.r.t. the embedding output come either from ``torch.autograd.grad`` (no parameter
gradient is touched) or from tensor hooks during a real backward pass (one pass gives both the
parameter gradients and the perturbation's direction). Either way they are this micro-batch's
gradients, never what ``.grad`` accumulated from earlier micro-batches.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import numbers
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import Tensor, nn
from torch.distributed import ProcessGroup

from .distributed import data_parallel_group as find_data_parallel_group
from .distributed import embedding_rows, fsdp_gradient_sync_paused, sum_rows_across_ranks
from .embedding import find_embedding, unwrap
from .errors import ClosureError, ConfigError
from .passes import Offset, Pass, ascent_step
from .perturbation import Perturbation, work_dtype

Closure = Callable[[], Tensor]
Backward = Callable[[Tensor], Any]


def default_backward(loss: Tensor) -> None:
    loss.backward()


@dataclass
class NoHyperparameters:
    """The config of a subclass that names none (one written before configs keeps working)."""


class AdversarialMethod:
    """Base class: finds the token embedding, runs perturbed passes, checks the closure.

    A subclass names its ``config_class``, a dataclass holding every hyperparameter (default,
    check in ``__post_init__``, help text in the field's metadata), and implements
    :meth:`backward` with the building blocks below. It is built from keyword arguments,
    ``FGM(model, epsilon=0.5)``, or from a config, ``FGM(model, config=FGMConfig(epsilon=0.5))``;
    either way the hyperparameters are then attributes too (``adv.epsilon``).

    ``data_parallel_group=``: the process group whose ranks each hold a slice of one global
    batch, for setups advnlp cannot see (default: the DDP wrapper's group; a plain model, even in
    a multi-rank job, runs as a single process). Token scope and the gradient penalty use it.

    ``start_step=N`` (every method but the baseline; AWP has it in its config): a warm-up,
    the first N calls of ``backward`` are plain steps (one pass, no hook on the embedding), the
    adversary starts with call N + 1. ``steps_done`` counts the calls; a loop that counts
    optimizer steps itself may set it before each call (the Trainer integration does).
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type[Any]] = NoHyperparameters
    # False for a method that perturbs nothing (the baseline): it finds no embedding and takes
    # neither target=, scaler= nor data_parallel_group=.
    perturbs: ClassVar[bool] = True
    # "absolute" or "relative" (see perturbation.py); methods that take epsilon_unit set it.
    epsilon_unit: str = "absolute"
    # the warm-up (see the class docstring); __init__ sets them
    start_step: int = 0
    steps_done: int = 0
    _inside_backward: bool = False

    def __init__(
        self,
        model: nn.Module,
        *args: Any,
        config: Any = None,
        target: str | None = None,
        scaler: torch.amp.GradScaler | None = None,
        data_parallel_group: ProcessGroup | None = None,
        **hyperparameters: Any,
    ) -> None:
        if _start_step_is_plumbing(type(self)):
            self.start_step = check_start_step(hyperparameters.pop("start_step", 0))
        # Steps taken so far, for the warm-up. It counts calls of backward, the one thing a
        # method sees: one per micro-batch, the same sequence on every DDP rank (each runs every
        # micro-batch's backward), so all ranks switch together without talking and their
        # all-reduces stay paired. Under gradient accumulation over K micro-batches, N optimizer
        # steps are N * K calls; a loop that counts optimizer steps sets steps_done itself.
        self.steps_done = 0
        self._inside_backward = False
        self.config = self._config(config, args, hyperparameters)
        for item in fields(self.config):
            setattr(self, item.name, getattr(self.config, item.name))
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if not self.perturbs and (target, scaler, data_parallel_group) != (None, None, None):
            name = type(self).__name__
            raise ConfigError(
                f"{name} perturbs no embedding: it takes neither target= nor scaler= "
                "nor data_parallel_group="
            )
        if not any(p.requires_grad for p in model.parameters()):
            raise ConfigError(
                f"no parameter of {type(model).__name__} requires grad: nothing would be trained; "
                "unfreeze some parameters (requires_grad=True)"
            )
        self.model = model
        self.scaler = scaler
        self.data_parallel_group = find_data_parallel_group(model, data_parallel_group)
        self.embedding_name, self.embedding, self.padding_idx = None, None, None
        if self.perturbs:
            self.embedding_name, self.embedding = find_embedding(model, target)
            self.padding_idx = self.embedding.padding_idx
            if self.padding_idx is None:  # e.g. GPT-2: padding is what the config says, if any
                config = getattr(unwrap(model), "config", None)
                self.padding_idx = getattr(config, "pad_token_id", None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "config_class" in cls.__dict__:  # what help() and editors show: the config's fields
            cls.__signature__ = _signature(cls)  # type: ignore[attr-defined]
        if "backward" in cls.__dict__:  # the warm-up, honoured here for every method
            cls.backward = _after_warm_up(cls.__dict__["backward"])  # type: ignore[method-assign]

    @classmethod
    def _config(cls, config: Any, args: tuple, hyperparameters: dict[str, Any]) -> Any:
        """The config from ``config=``, or from the hyperparameters given as arguments."""
        if config is None:
            return cls.config_class(*args, **hyperparameters)  # its __post_init__ checks them
        if args or hyperparameters:
            raise TypeError(
                f"{cls.__name__}: give the hyperparameters as arguments or as config=, not both"
            )
        if not isinstance(config, cls.config_class):
            raise TypeError(
                f"{cls.__name__} takes config={cls.config_class.__name__}(...), "
                f"got {type(config).__name__}"
            )
        return config

    def backward(self, closure: Closure, backward: Backward | None = None) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={v!r}" for k, v in self.settings().items())
        return (
            f"{type(self).__name__}({hyper}, embedding={getattr(self, 'embedding_name', None)!r})"
        )

    def settings(self) -> dict[str, Any]:
        """The method's hyperparameters, as checked by its config (for logs and results files)."""
        return {item.name: getattr(self, item.name) for item in fields(self.config_class)}

    # -- building blocks ----------------------------------------------------------------------
    def _forward(self, closure: Closure, offset: Offset | None = None) -> Pass:
        """Call ``closure()`` with ``offset`` added to every output of the token embedding."""
        if not torch.is_grad_enabled():
            raise ClosureError(
                "gradients are disabled (torch.no_grad / inference_mode): "
                "call backward() outside those contexts"
            )
        record = Pass()

        def hook(module: nn.Module, args: tuple, kwargs: dict, output: Tensor) -> Tensor:
            ids = args[0] if args else kwargs["input"]
            if self._relative("example"):  # measured before any offset is added
                record.units.append(Perturbation.example_unit(ids, output, self.padding_idx))
            return record.add(ids, output, offset)

        handle = self.embedding.register_forward_hook(hook, with_kwargs=True)
        try:
            record.loss = closure()
        finally:
            handle.remove()
        _check_loss(record.loss)
        if not record.outputs:
            raise ClosureError(
                f"closure() never called the token embedding {self.embedding_name!r}: it must run "
                "the model this method was built with on token ids (not inputs_embeds)"
            )
        return record

    def _loss_scale(self) -> float:
        if self.scaler is not None and self.scaler.is_enabled():
            return float(self.scaler.get_scale())
        return 1.0

    def _input_gradients(self, run: Pass, *, create_graph: bool = False) -> list[Tensor | None]:
        """d loss / d embedding output, without touching any ``.grad``.

        Under a GradScaler the loss is scaled first (fp16 gradients would underflow otherwise)
        and the result unscaled in float32.
        """
        scale = self._loss_scale()
        loss = run.loss * scale if scale != 1.0 else run.loss
        grads = self._output_gradients(loss, run, create_graph=create_graph)
        if scale == 1.0:
            return grads
        return [None if g is None else g.to(work_dtype(g.dtype)) / scale for g in grads]

    def _output_gradients(
        self, value: Tensor, run: Pass, *, create_graph: bool = False
    ) -> list[Tensor | None]:
        """d value / d the embedding outputs of ``run`` (``torch.autograd.grad``): no ``.grad``
        is touched, so under FSDP there is nothing to reduce and the reduction is paused."""
        with fsdp_gradient_sync_paused(self.model):
            grads = torch.autograd.grad(
                value, run.outputs, create_graph=create_graph, allow_unused=True
            )
        return list(grads)

    def _backward_capturing(self, run: Pass, backward: Backward) -> list[Tensor | None]:
        """Run ``backward(run.loss)`` and return the gradients that reached the embedding outputs.

        They carry whatever scale ``backward`` applied (loss scaling, accumulation): fine for
        the normalised directions FGM, PGD and FreeLB build from them.
        """
        captured: list[Tensor | None] = [None] * len(run.outputs)

        def keep(index: int) -> Callable[[Tensor], None]:
            def store(grad: Tensor) -> None:
                captured[index] = grad.detach()

            return store

        handles = [out.register_hook(keep(i)) for i, out in enumerate(run.outputs)]
        try:
            backward(run.loss)
        finally:
            for handle in handles:
                handle.remove()
        return captured

    def _direction(
        self, scope: str, run: Pass, grads: list[Tensor | None], length: float
    ) -> Perturbation | None:
        """``length`` times the unit ascent direction; None (with a warning) if not finite."""
        gradient = run.gradient(scope, grads, self.padding_idx)
        if self.data_parallel_group is None and gradient.scope == "token":
            # fully_shard works in place: the model may have been sharded since the method was
            # built (the Trainer's mixin builds it before Accelerate prepares the model)
            self.data_parallel_group = find_data_parallel_group(self.model)
        # token scope under data parallelism: the global batch's rows
        gradient = sum_rows_across_ranks(gradient, self.data_parallel_group)
        unit = self._unit(gradient, run)
        # stacklevel: the user's line, past this, the method's backward and the warm-up wrapper
        return ascent_step(gradient, length, unit, who=type(self).__name__, stacklevel=4)

    def _relative(self, scope: str) -> bool:
        return self.epsilon_unit == "relative" and getattr(self, "scope", None) == scope

    def _unit(self, direction: Perturbation, run: Pass) -> list[Tensor] | None:
        """What epsilon is measured in: None (absolute), or the embedding's own size.

        Token scope reads the rows of ``direction.keys`` from the weight: under DDP those are
        the global batch's rows (summed across ranks above) and the weight is the same on every
        rank, so every rank gets the same unit. No ``.grad`` is read.
        """
        if self.epsilon_unit != "relative":
            return None
        if direction.scope == "token":
            keys = direction.keys
            if self.padding_idx is not None:
                keys = keys[keys != self.padding_idx]
            rows = embedding_rows(self.embedding.weight, keys)  # FSDP: from the shards
            return [Perturbation.token_unit(rows, torch.arange(len(keys)), None)]
        return run.units

    def _plain_step(self, closure: Closure, backward: Backward, *, clean_done: bool) -> None:
        """End a step whose perturbation was skipped, leaving ``.grad`` as a plain step would.

        ``clean_done``: the clean pass already went through ``backward`` (its gradients are in
        ``.grad``); otherwise it only built the direction, and a plain pass runs now.
        """
        if not clean_done:
            backward(self._forward(closure).loss)
        elif self._defers_sync():
            # The clean pass ran under no_sync: a pass that adds nothing makes DDP all-reduce
            # it (and every rank runs the same number of synced passes).
            backward(self._forward(closure).loss * 0)

    def _defers_sync(self) -> bool:
        return isinstance(self.model, nn.parallel.DistributedDataParallel) and hasattr(
            self.model, "no_sync"
        )

    @contextlib.contextmanager
    def _no_gradient_sync(self) -> Iterator[None]:
        """Passes that only build the perturbation: no DDP gradient all-reduce (``no_sync``).

        Gradients they leave in ``.grad`` are reduced together with the last pass's. Not under
        FSDP: there the gradients of a pass that reaches ``.grad`` are reduce-scattered at once,
        since deferring keeps an unsharded gradient set (the vocab x hidden embedding's
        included) on every rank until the last pass; passes that leave ``.grad`` untouched
        skip the reduction in :meth:`_input_gradients`.
        """
        if self._defers_sync():
            with self.model.no_sync():
                yield
        else:
            yield


def check_start_step(value: object) -> int:
    """Return the warm-up ``start_step`` as an int >= 0, or raise ConfigError naming it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"start_step must be an integer >= 0, got {value!r}")
    return int(value)


def _start_step_is_plumbing(method: type[AdversarialMethod]) -> bool:
    """A keyword beside ``target=`` for methods that perturb an embedding; a method that does
    not keeps it in its config (AWP), or has no adversary to delay (the baseline)."""
    in_config = any(item.name == "start_step" for item in fields(method.config_class))
    return method.perturbs and not in_config


def _after_warm_up(method_backward: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``method_backward``, preceded by ``start_step`` plain steps."""

    @functools.wraps(method_backward)
    def backward(
        self: AdversarialMethod, closure: Closure, backward: Backward | None = None
    ) -> Tensor:
        if self._inside_backward:  # a subclass's backward calling super().backward: one step
            return method_backward(self, closure, backward)
        step, self.steps_done = self.steps_done, self.steps_done + 1
        if step < self.start_step:  # warm-up: exactly the baseline's step, no hook installed
            loss = closure()
            _check_loss(loss)
            (backward or default_backward)(loss)
            return loss.detach()
        self._inside_backward = True
        try:
            return method_backward(self, closure, backward)
        finally:
            self._inside_backward = False

    return backward


def _signature(method: type[AdversarialMethod]) -> inspect.Signature:
    """``(model, <the config's fields>, *, config, target, scaler, start_step)``; no target or
    scaler for a method that perturbs nothing."""
    parameter = inspect.Parameter
    parameters = [parameter("model", parameter.POSITIONAL_OR_KEYWORD)]
    # the dataclass's own __init__ order: positional fields first (a subclass may add some)
    for item in sorted(fields(method.config_class), key=lambda item: item.kw_only):
        kind = parameter.KEYWORD_ONLY if item.kw_only else parameter.POSITIONAL_OR_KEYWORD
        parameters.append(parameter(item.name, kind, default=item.default))
    for name in ("config", "target", "scaler") if method.perturbs else ("config",):
        parameters.append(parameter(name, parameter.KEYWORD_ONLY, default=None))
    if _start_step_is_plumbing(method):
        parameters.append(parameter("start_step", parameter.KEYWORD_ONLY, default=0))
    return inspect.Signature(parameters)


def _check_loss(loss: object) -> None:
    if not isinstance(loss, Tensor):
        hint = " (return model(**batch).loss)" if hasattr(loss, "loss") else ""
        raise ClosureError(
            f"closure() must return the scalar loss tensor, got {type(loss).__name__}{hint}"
        )
    if loss.numel() != 1:
        raise ClosureError(
            f"closure() must return a scalar loss, got a tensor of shape {tuple(loss.shape)}; "
            "reduce it (e.g. .mean())"
        )
    if not loss.requires_grad:
        raise ClosureError(
            "closure() returned a loss that does not require grad: does it detach the loss "
            "(.item(), .detach()) or run under torch.no_grad()?"
        )
