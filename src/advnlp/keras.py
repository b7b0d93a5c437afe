"""Keras 3 (torch backend): the seed's one-line switches for ``model.fit``.

    import os
    os.environ["KERAS_BACKEND"] = "torch"  # before keras is first imported
    from advnlp.keras import adversarial_training, gradient_penalty

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    adversarial_training(model, "Embedding-Token", 0.5)  # FGM, as bert4keras
    # or: gradient_penalty(model, "Embedding-Token", 1.0)
    model.fit(x, y)

Both wrap the model's own ``train_step`` (assigned on the instance, a public override point),
so Keras still does everything it normally does in a step: loss tracking, metrics,
loss scaling, ``optimizer.apply``. They can be called before or after ``compile``; calling
either again replaces the previous switch (one at a time).

- ``adversarial_training``: the seed's FGM. A first pass gives g = dL/dE, the gradient of the
  compiled loss w.r.t. the embedding matrix (only the batch's rows are non-zero); then
  delta = epsilon * g / (||g|| + 1e-8) with one L2 norm over the whole matrix, and Keras'
  step runs at E + delta, so the optimizer gets the gradients of the perturbed loss only
  (as bert4keras; the logged loss and metrics are the perturbed ones too). About 2x a step.
- ``gradient_penalty``: the seed's loss' = loss + 0.5 * epsilon * ||dL/de||^2, e being the
  embedding layer's outputs, with a real second-order gradient. It wraps ``compute_loss``
  during training steps only, so it applies to whatever loss ``compile`` was given
  (sample weights and regularisers included); evaluation reports the plain loss.

A non-finite gradient (inf/nan, e.g. fp16 overflow) is never used: with a RuntimeWarning,
``adversarial_training`` runs Keras' plain step unperturbed, and ``gradient_penalty`` trains
on the plain loss.

Keras layers under the torch backend bypass ``nn.Module.__call__``, so torch forward hooks do
not fire: the embedding layer's ``call`` is wrapped for the duration of a step instead. Like
the PyTorch core, the perturbation is added to the lookup output, never written into the
weight: E[ids] + delta[ids] equals (E + delta)[ids], without a matrix-sized backup, and a
head that reuses the matrix is not perturbed. Dropout draws new masks in each pass.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .errors import check_number
from .perturbation import Perturbation, work_dtype

_SETUP = (
    "advnlp.keras needs Keras 3 with the torch backend: `pip install 'keras>=3.3'` and set "
    "the environment variable KERAS_BACKEND=torch before keras is first imported"
)
try:
    import keras
except ImportError as error:  # pragma: no cover - depends on the environment
    missing = getattr(error, "name", None) == "keras"
    reason = "keras is not installed" if missing else f"importing keras failed: {error}"
    raise ImportError(f"{_SETUP} ({reason})") from error
if not hasattr(keras, "backend") or keras.backend.backend() != "torch":
    _found = keras.backend.backend() if hasattr(keras, "backend") else keras.__version__
    raise ImportError(
        f"{_SETUP}; keras is using {_found!r} (KERAS_BACKEND={os.environ.get('KERAS_BACKEND')!r})"
    )

__all__ = ["adversarial_training", "gradient_penalty"]

_MARK = "_advnlp_inner"  # set on our train_step: the train_step it wraps


def adversarial_training(model: keras.Model, embedding_name: str, epsilon: float) -> keras.Model:
    """Turn on the seed's FGM for ``model.fit`` / ``train_on_batch``; returns ``model``.

    Args:
        model: a Keras 3 model (torch backend).
        embedding_name: name of its token ``keras.layers.Embedding`` layer (bert4keras:
            ``"Embedding-Token"``); nested models are searched too.
        epsilon: L2 length of the perturbation of the whole matrix (the seed uses 0.5).

    Raises:
        ValueError: no Embedding layer of that name (the message lists them), or epsilon < 0.
    """
    epsilon = check_number("epsilon", epsilon)
    layer = _find_embedding(model, embedding_name)
    inner = _plain_train_step(model)

    def train_step(data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with _tapped(layer) as clean:
            y_pred = model(x, training=True)
            loss = _call_compute_loss(model.compute_loss, x, y, y_pred, sample_weight)
        clean.check(embedding_name)
        # The loss scale Keras' backward uses (mixed precision); the direction ignores it.
        scale_loss = getattr(model.optimizer, "scale_loss", None)
        if scale_loss is not None:
            loss = scale_loss(loss)
        grads = torch.autograd.grad(loss, clean.outputs, allow_unused=True)
        delta = _direction(clean, list(grads), epsilon)
        if delta is None:  # not finite: Keras' own step, unperturbed
            return inner(data)
        with _tapped(layer, delta.offset):
            return inner(data)

    _install(model, train_step, inner)
    return model


def gradient_penalty(model: keras.Model, embedding_name: str, epsilon: float) -> keras.Model:
    """Train ``model`` on ``loss + 0.5 * epsilon * ||dL/de||^2``; returns ``model``.

    ``e`` are the outputs of the Embedding layer ``embedding_name`` (one row per token
    occurrence, padding included, as in the seed) and ``loss`` is what ``model.compute_loss``
    returns in a training step. The penalty's gradient is a true second-order one
    (``create_graph=True``); one computed from a detached gradient would be a silent no-op.

    Args:
        model: a Keras 3 model (torch backend).
        embedding_name: name of its token ``keras.layers.Embedding`` layer.
        epsilon: weight of the penalty (the seed uses 1).

    Raises:
        ValueError: no Embedding layer of that name (the message lists them), or epsilon < 0.
    """
    epsilon = check_number("epsilon", epsilon)
    layer = _find_embedding(model, embedding_name)
    inner = _plain_train_step(model)

    def train_step(data: Any) -> dict[str, Any]:
        original = model.compute_loss
        with _tapped(layer) as tape:

            def compute_loss(
                x: Any = None,
                y: Any = None,
                y_pred: Any = None,
                sample_weight: Any = None,
                training: bool = True,
            ) -> Tensor:
                loss = _call_compute_loss(original, x, y, y_pred, sample_weight, training)
                if not training or not torch.is_grad_enabled():
                    return loss
                tape.check(embedding_name)
                grads = torch.autograd.grad(
                    loss, tape.outputs, create_graph=True, allow_unused=True
                )
                # Squares in float32 at least (float64 stays float64): fp16 gradients
                # overflow when squared.
                squares = [g.to(work_dtype(g.dtype)).pow(2).sum() for g in grads if g is not None]
                if not squares:
                    return loss
                penalty = 0.5 * epsilon * torch.stack(squares).sum()
                if not torch.isfinite(penalty):
                    warnings.warn(
                        "gradient_penalty: the penalty is not finite (inf/nan, e.g. fp16 "
                        "overflow); this step trains on the plain loss",
                        RuntimeWarning,
                        stacklevel=2,
                    )
                    return loss
                return loss + penalty.to(loss.dtype)

            with _attribute(model, "compute_loss", compute_loss):
                return inner(data)

    _install(model, train_step, inner)
    return model


# -- machinery ------------------------------------------------------------------------------
@dataclass
class _Tape:
    """What went in and out of the embedding layer during one pass."""

    ids: list[Tensor] = field(default_factory=list)
    outputs: list[Tensor] = field(default_factory=list)

    def check(self, name: str) -> None:
        if not self.outputs:
            raise RuntimeError(
                f"the model's forward pass never called the Embedding layer {name!r} with "
                "gradients enabled: pass the layer that embeds the token ids"
            )


Offset = Callable[[int, Tensor, Tensor], Tensor]


@contextlib.contextmanager
def _tapped(layer: keras.layers.Layer, offset: Offset | None = None) -> Iterator[_Tape]:
    """Record (and shift by ``offset``) every output of ``layer`` while the block runs."""
    tape = _Tape()
    original = layer.call

    def call(inputs: Any, *args: Any, **kwargs: Any) -> Tensor:
        output = original(inputs, *args, **kwargs)
        if not torch.is_grad_enabled():
            return output
        # Keras casts the ids to int32 (truncating floats); the same rows, as int64.
        ids = keras.ops.convert_to_tensor(inputs).to(torch.long)
        if not output.requires_grad:  # a frozen embedding can still be perturbed
            output = output.detach().requires_grad_()
        if offset is not None:
            output = output + offset(len(tape.outputs), ids, output).to(output.dtype)
        tape.ids.append(ids)
        tape.outputs.append(output)
        return output

    with _attribute(layer, "call", call):
        yield tape


@contextlib.contextmanager
def _attribute(obj: Any, name: str, value: Any) -> Iterator[None]:
    """Set an instance attribute for the block; restore what the instance had before."""
    had = name in vars(obj)
    previous = vars(obj).get(name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        if had:
            setattr(obj, name, previous)
        else:
            delattr(obj, name)


def _direction(tape: _Tape, grads: list[Tensor | None], epsilon: float) -> Perturbation | None:
    """epsilon * g / (||g|| + 1e-8) per vocabulary row of g = dL/dE, one global norm; None
    (with a warning) if g is not finite: never scaled by 0, since inf * 0 is nan.

    No padding row is excluded: a Keras Embedding (even with ``mask_zero``) trains row 0.
    """
    pairs = zip(grads, tape.outputs, strict=True)
    grads = [torch.zeros_like(out) if g is None else g for g, out in pairs]
    direction = Perturbation.from_gradients("token", tape.ids, grads, padding_idx=None)
    if not direction.is_finite():
        warnings.warn(
            "adversarial_training: the gradient of the embedding is not finite (inf/nan, e.g. "
            "fp16 overflow); this step is not perturbed",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return direction.normalized(epsilon)


def _call_compute_loss(
    compute_loss: Callable[..., Tensor],
    x: Any,
    y: Any,
    y_pred: Any,
    sample_weight: Any,
    training: bool = True,
) -> Tensor:
    """``compute_loss``; overrides written before Keras 3.3 have no ``training`` argument."""
    if "training" in inspect.signature(compute_loss).parameters:
        return compute_loss(x, y, y_pred, sample_weight, training=training)
    return compute_loss(x, y, y_pred, sample_weight)


def _plain_train_step(model: keras.Model) -> Callable[[Any], dict[str, Any]]:
    """The model's train_step without any switch of ours (so a second call replaces)."""
    step = model.train_step
    return getattr(step, _MARK, step)


def _install(model: keras.Model, train_step: Callable, inner: Callable) -> None:
    setattr(train_step, _MARK, inner)
    model.train_step = train_step


def _layers(model: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """Every layer of ``model``, nested models included, outer first."""
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _layers(layer)


def _find_embedding(model: keras.Model, name: str) -> keras.layers.Embedding:
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    layers = list(_layers(model))
    embeddings = [layer.name for layer in layers if isinstance(layer, keras.layers.Embedding)]
    listing = (
        f"its Embedding layers: {', '.join(map(repr, embeddings))}"
        if embeddings
        else "it has no Embedding layer"
    )
    found = [layer for layer in layers if layer.name == name]
    if not found:
        raise ValueError(f"model {model.name!r} has no layer named {name!r}; {listing}")
    layer = found[0]
    if not isinstance(layer, keras.layers.Embedding):
        raise ValueError(
            f"layer {name!r} of model {model.name!r} is a {type(layer).__name__}, not a "
            f"keras.layers.Embedding; {listing}"
        )
    return layer
