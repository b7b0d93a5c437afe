"""Keras 3 (torch backend): the one-line switches of Su's original (bert4keras) for ``model.fit``.

    from advnlp.keras import adversarial_training, gradient_penalty  # selects Keras' torch backend

    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    adversarial_training(model, "Embedding-Token", 0.5)  # FGM, as bert4keras
    # or: gradient_penalty(model, "Embedding-Token", 1.0)
    model.fit(x, y)

Both wrap the model's own ``train_step`` (assigned on the instance, a public override point),
so Keras still does everything it normally does in a step: loss tracking, metrics,
loss scaling, ``optimizer.apply``. They can be called before or after ``compile``; calling
either again replaces the previous switch (one at a time).

- ``adversarial_training``: FGM as in bert4keras. A first pass gives g = dL/dE, the gradient of the
  compiled loss w.r.t. the embedding matrix (only the batch's rows are non-zero); then
  delta = epsilon * g / (||g|| + 1e-8) with one L2 norm over the whole matrix, and Keras'
  step runs at E + delta, so the optimizer gets the gradients of the perturbed loss only
  (as bert4keras; the logged loss and metrics are the perturbed ones too). About 2x a step.
- ``gradient_penalty``: Su's original: loss' = loss + 0.5 * epsilon * ||dL/de||^2, e being the
  embedding layer's outputs, with a real second-order gradient. It wraps ``compute_loss``
  during training steps only, so it applies to whatever loss ``compile`` was given
  (sample weights and regularisers included); evaluation reports the plain loss.

A non-finite gradient (inf/nan, e.g. fp16 overflow) is never used: with a RuntimeWarning,
``adversarial_training`` runs Keras' plain step unperturbed, and ``gradient_penalty`` trains
on the plain loss.

Keras chooses its backend once, when first imported: importing this module first selects
torch (it sets KERAS_BACKEND=torch); if keras was already imported with another backend, the
import fails with an ImportError that says so.

Keras layers under the torch backend bypass ``nn.Module.__call__``, so torch forward hooks do
not fire: the embedding layer's ``call`` is wrapped for the duration of a step instead, and
records its calls with the core's :class:`~advnlp.passes.Pass`. Like the PyTorch core, the
perturbation is added to the lookup output, never written into the weight: E[ids] + delta[ids]
equals (E + delta)[ids], without a matrix-sized backup, and a head that reuses the matrix is
not perturbed. Dropout draws new masks in each pass.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .errors import check_number
from .passes import Offset, Pass, ascent_step, penalty_term


def _select_torch_backend() -> None:
    """Keras reads KERAS_BACKEND once, when it is first imported: make it torch before that."""
    if "keras" in sys.modules:
        return
    asked = os.environ.get("KERAS_BACKEND") or "torch"
    if asked != "torch":
        warnings.warn(
            f"advnlp.keras runs on Keras' torch backend: KERAS_BACKEND={asked!r} is replaced "
            "by 'torch' (keras was not imported yet)",
            RuntimeWarning,
            stacklevel=3,  # the line that imports advnlp.keras
        )
    os.environ["KERAS_BACKEND"] = "torch"


def _require_torch(backend: str) -> None:
    """Refuse a keras already imported with another backend: one line, saying what to do."""
    if backend != "torch":
        raise ImportError(
            f"advnlp.keras needs Keras' torch backend, but keras was already imported with the "
            f"{backend!r} backend: import advnlp.keras before keras (it selects torch), or set "
            "KERAS_BACKEND=torch before keras is first imported"
        )


_select_torch_backend()
try:
    import keras
except ImportError as error:  # pragma: no cover - depends on the environment
    missing = getattr(error, "name", None) == "keras"
    reason = "keras is not installed" if missing else f"importing keras failed: {error}"
    raise ImportError(
        f"advnlp.keras needs Keras 3 with its torch backend: `pip install 'keras>=3.3'` ({reason})"
    ) from error
_require_torch(keras.backend.backend())

__all__ = ["adversarial_training", "gradient_penalty"]

_MARK = "_advnlp_inner"  # set on our train_step: the train_step it wraps


def adversarial_training(model: keras.Model, embedding_name: str, epsilon: float) -> keras.Model:
    """Turn on bert4keras' FGM for ``model.fit`` / ``train_on_batch``; returns ``model``.

    Args:
        model: a Keras 3 model (torch backend).
        embedding_name: name of its token ``keras.layers.Embedding`` layer (bert4keras:
            ``"Embedding-Token"``); nested models are searched too.
        epsilon: L2 length of the perturbation of the whole matrix (bert4keras uses 0.5).

    Raises:
        ValueError: no Embedding layer of that name (the message lists them), or epsilon < 0.
    """
    epsilon, layer, inner = _checked(model, embedding_name, epsilon)

    def train_step(data: Any) -> dict[str, Any]:
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with _tapped(layer) as clean:
            y_pred = model(x, training=True)
            loss = _call_compute_loss(model.compute_loss, x, y, y_pred, sample_weight)
        _check_called(clean, embedding_name)
        # The loss scale Keras' backward uses (mixed precision); the direction ignores it.
        scale_loss = getattr(model.optimizer, "scale_loss", None)
        if scale_loss is not None:
            loss = scale_loss(loss)
        grads = torch.autograd.grad(loss, clean.outputs, allow_unused=True)
        # No padding row is excluded: a Keras Embedding (even with mask_zero) trains row 0.
        gradient = clean.gradient("token", grads, padding_idx=None)
        delta = ascent_step(gradient, epsilon, who="adversarial_training")
        if delta is None:  # not finite: Keras' own step, unperturbed
            return inner(data)
        with _tapped(layer, delta.offset):
            return inner(data)

    _install(model, train_step, inner)
    return model


def gradient_penalty(model: keras.Model, embedding_name: str, epsilon: float) -> keras.Model:
    """Train ``model`` on ``loss + 0.5 * epsilon * ||dL/de||^2``; returns ``model``.

    ``e`` are the outputs of the Embedding layer ``embedding_name`` (one row per token
    occurrence, padding included, as in bert4keras) and ``loss`` is what ``model.compute_loss``
    returns in a training step. The penalty's gradient is a true second-order one
    (``create_graph=True``); one computed from a detached gradient would be a silent no-op.

    Args:
        model: a Keras 3 model (torch backend).
        embedding_name: name of its token ``keras.layers.Embedding`` layer.
        epsilon: weight of the penalty (the reference (bert4keras) uses 1).

    Raises:
        ValueError: no Embedding layer of that name (the message lists them), or epsilon < 0.
    """
    epsilon, layer, inner = _checked(model, embedding_name, epsilon)

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
                _check_called(tape, embedding_name)
                grads = torch.autograd.grad(
                    loss, tape.outputs, create_graph=True, allow_unused=True
                )
                penalty = penalty_term(grads, epsilon, who="gradient_penalty")
                return loss + penalty.to(loss.dtype)

            with _attribute(model, "compute_loss", compute_loss):
                return inner(data)

    _install(model, train_step, inner)
    return model


# -- machinery ------------------------------------------------------------------------------
@contextlib.contextmanager
def _tapped(layer: keras.layers.Layer, offset: Offset | None = None) -> Iterator[Pass]:
    """Record (and shift by ``offset``) every output of ``layer`` while the block runs."""
    tape = Pass()
    original = layer.call

    def call(inputs: Any, *args: Any, **kwargs: Any) -> Tensor:
        output = original(inputs, *args, **kwargs)
        if not torch.is_grad_enabled():
            return output
        # Keras casts the ids to int32 (truncating floats); the same rows, as int64.
        return tape.add(keras.ops.convert_to_tensor(inputs).to(torch.long), output, offset)

    with _attribute(layer, "call", call):
        yield tape


def _check_called(tape: Pass, name: str) -> None:
    if not tape.outputs:
        raise RuntimeError(
            f"the model's forward pass never called the Embedding layer {name!r} with "
            "gradients enabled: pass the layer that embeds the token ids"
        )


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


def _checked(
    model: keras.Model, embedding_name: str, epsilon: float
) -> tuple[float, keras.layers.Embedding, Callable[[Any], dict[str, Any]]]:
    """A switch's arguments, checked: epsilon, the Embedding layer, the train_step to wrap."""
    epsilon = check_number("epsilon", epsilon)
    return epsilon, _find_embedding(model, embedding_name), _plain_train_step(model)


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
