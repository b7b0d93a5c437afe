"""advnlp.keras: the seed's Keras switches give the PyTorch core's gradients on the same weights,
train under ``model.fit``, never leave a perturbation in a weight, and fail clearly."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

if importlib.util.find_spec("keras") is None:
    pytest.skip("keras is not installed (pip install -e '.[keras]')", allow_module_level=True)

import advnlp  # noqa: E402
import advnlp.keras  # noqa: E402  (selects Keras' torch backend, then imports keras)
from advnlp.keras import adversarial_training, gradient_penalty  # noqa: E402

keras = advnlp.keras.keras

# Keras' own numpy conversions under numpy 2 (not advnlp's).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

VOCAB, DIM, LENGTH, LABELS = 30, 8, 6, 3
NAME = "Embedding-Token"


def keras_model(seed: int = 0, amplify: float | None = None) -> keras.Model:
    keras.utils.set_random_seed(seed)
    ids = keras.Input(shape=(LENGTH,), dtype="int32")
    e = keras.layers.Embedding(VOCAB, DIM, name=NAME)(ids)
    if amplify is not None:  # the gradient at the embedding output, times amplify
        e = AmplifyGradient(amplify)(e)
    h = keras.layers.GlobalAveragePooling1D()(e)
    logits = keras.layers.Dense(LABELS, name="head")(h)
    return keras.Model(ids, logits, name="tiny")


def compiled(model: keras.Model, learning_rate: float = 0.0) -> keras.Model:
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


class TorchTwin(nn.Module):
    """The same network in plain PyTorch, holding copies of the Keras weights."""

    def __init__(self, model: keras.Model, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        matrix = model.get_layer(NAME).get_weights()[0]
        kernel, bias = model.get_layer("head").get_weights()
        self.tokens = nn.Embedding(VOCAB, DIM, dtype=dtype)
        self.head = nn.Linear(DIM, LABELS, dtype=dtype)
        with torch.no_grad():
            self.tokens.weight.copy_(torch.from_numpy(matrix))
            self.head.weight.copy_(torch.from_numpy(kernel.T))
            self.head.bias.copy_(torch.from_numpy(bias))

    def forward(self, ids: Tensor, labels: Tensor) -> Tensor:
        return F.cross_entropy(self.head(self.tokens(ids).mean(1)), labels)

    def grads(self) -> list[Tensor]:
        return [self.tokens.weight.grad, self.head.weight.grad.T, self.head.bias.grad]


def batch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 12, size=(4, LENGTH)).astype("int32")  # few ids: repeated tokens
    return ids, np.arange(4) % LABELS


def keras_grads(model: keras.Model) -> list[Tensor]:
    """The gradients Keras' step left on the weights (its zero_grad runs at the next step)."""
    return [v.value.grad.detach().clone() for v in model.trainable_weights]


def weights(model: keras.Model) -> list[Tensor]:
    return [v.value.detach().clone() for v in model.trainable_weights]


def close(actual: list[Tensor], expected: list[Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, b in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def fgm_by_hand(twin: TorchTwin, ids: Tensor, labels: Tensor, epsilon: float) -> list[Tensor]:
    """The seed on the matrix itself: E += eps g/(||g||+1e-8), gradients at E + delta only."""
    matrix = twin.tokens.weight
    g = torch.autograd.grad(twin(ids, labels), matrix)[0]
    delta = epsilon * g / (g.norm() + 1e-8)
    params = [matrix, twin.head.weight, twin.head.bias]
    logits = F.linear(F.embedding(ids, matrix + delta).mean(1), twin.head.weight, twin.head.bias)
    out = torch.autograd.grad(F.cross_entropy(logits, labels), params)
    return [out[0], out[1].T, out[2]]


def test_fgm_step_matches_the_seed_and_the_pytorch_core():
    epsilon = 0.5
    model = adversarial_training(compiled(keras_model()), NAME, epsilon)
    twin = TorchTwin(model)  # copied before the step
    x, y = batch()
    before = weights(model)
    model.train_on_batch(x, y)
    got = keras_grads(model)

    ids, labels = torch.from_numpy(x).long(), torch.from_numpy(y)
    close(got, fgm_by_hand(twin, ids, labels, epsilon))
    core = advnlp.FGM(twin, epsilon, scope="token", adversarial_only=True, target="tokens")
    core.backward(lambda: twin(ids, labels))
    close(got, twin.grads())
    # The perturbation really moved the gradients, and was not left in a weight (lr = 0).
    plain = compiled(keras_model())
    plain.train_on_batch(x, y)
    assert not torch.allclose(keras_grads(plain)[0], got[0])
    for a, b in zip(weights(model), before, strict=True):
        assert torch.equal(a, b)
    assert "call" not in vars(model.get_layer(NAME))


def test_gradient_penalty_matches_the_pytorch_core():
    epsilon = 1.5
    model = gradient_penalty(compiled(keras_model(1)), NAME, epsilon)
    twin = TorchTwin(model)
    x, y = batch(1)
    logs = model.train_on_batch(x, y, return_dict=True)
    got = keras_grads(model)

    ids, labels = torch.from_numpy(x).long(), torch.from_numpy(y)
    core = advnlp.GradientPenalty(twin, epsilon, target="tokens")
    clean = core.backward(lambda: twin(ids, labels))
    close(got, twin.grads())
    # Keras logged the penalised loss, and the penalty changed the gradients.
    assert logs["loss"] == pytest.approx(float(clean + core.last_penalty), rel=1e-5)
    twin.zero_grad()
    twin(ids, labels).backward()
    assert not torch.allclose(twin.grads()[1], got[1])
    assert "compute_loss" not in vars(model)
    # Evaluation reports the plain loss (no penalty outside training).
    assert model.evaluate(x, y, verbose=0) == pytest.approx(float(clean), rel=1e-5)


def separable(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 uses tokens 1..14, class 1 tokens 15..29."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    x = np.where(
        y[:, None] == 0, rng.integers(1, 15, (n, LENGTH)), rng.integers(15, 30, (n, LENGTH))
    )
    return x.astype("int32"), y


@pytest.mark.parametrize("switch", [adversarial_training, gradient_penalty])
def test_fit_trains_with_the_switch_on(switch):
    x, y = separable()
    model = keras_model(2)
    model.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    switch(model, NAME, 0.5)
    history = model.fit(x, y, batch_size=16, epochs=6, verbose=0).history
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    assert history["accuracy"][-1] == 1.0
    layer = model.get_layer(NAME)
    assert "call" not in vars(layer) and "compute_loss" not in vars(model)


def test_weights_are_exactly_what_the_optimizer_made():
    """A huge epsilon must not leak into the weights: w_new == w - lr * g, bit for bit."""
    x, y = batch(3)
    model = adversarial_training(compiled(keras_model(3), learning_rate=0.1), NAME, 1e3)
    for _ in range(3):
        before = weights(model)
        model.train_on_batch(x, y)
        grads = keras_grads(model)
        for w, w0, g in zip(weights(model), before, grads, strict=True):
            assert torch.isfinite(w).all()
            # A leftover delta would be ~1e3 / sqrt(elements); rounding is ~1e-8.
            torch.testing.assert_close(w, w0 - 0.1 * g, rtol=0, atol=1e-6)


def test_calling_again_replaces_the_switch():
    x, y = batch(4)
    twice = keras_model(4)
    compiled(twice)
    adversarial_training(twice, NAME, 5.0)
    adversarial_training(twice, NAME, 0.5)
    once = adversarial_training(compiled(keras_model(4)), NAME, 0.5)
    twice.train_on_batch(x, y)
    once.train_on_batch(x, y)
    close(keras_grads(twice), keras_grads(once))


def test_errors_name_the_value():
    model = keras_model()
    with pytest.raises(ValueError, match=r"no layer named 'Embedding-Tokens'.*'Embedding-Token'"):
        adversarial_training(model, "Embedding-Tokens", 0.5)
    with pytest.raises(ValueError, match=r"'head' .* is a Dense.*'Embedding-Token'"):
        gradient_penalty(model, "head", 1.0)
    with pytest.raises(ValueError, match=r"epsilon.*-0\.5"):
        adversarial_training(model, NAME, -0.5)
    with pytest.raises(ValueError, match=r"epsilon.*-1"):
        gradient_penalty(model, NAME, -1)
    assert "train_step" not in vars(model)


PROGRAM = Path(__file__).with_name("keras_import.py")


def import_in_a_fresh_interpreter(
    folder: Path, backend: str | None, *args: str
) -> subprocess.CompletedProcess:
    """Run keras_import.py with KERAS_BACKEND=backend (None: unset) and keras' home in folder."""
    env = {name: value for name, value in os.environ.items() if name != "KERAS_BACKEND"}
    env["KERAS_HOME"] = str(folder)  # keras writes its keras.json there, not in ~/.keras
    if backend is not None:
        env["KERAS_BACKEND"] = backend
    return subprocess.run(
        [sys.executable, str(PROGRAM), *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_import_selects_the_torch_backend_without_keras_backend_set(tmp_path):
    done = import_in_a_fresh_interpreter(tmp_path, None)
    assert (done.returncode, done.stdout) == (0, "torch\n"), done.stdout + done.stderr
    assert "Warning" not in done.stderr


def test_import_overrides_another_backend_while_keras_is_not_imported(tmp_path):
    done = import_in_a_fresh_interpreter(tmp_path, "jax")  # jax itself is never imported
    assert (done.returncode, done.stdout) == (0, "torch\n"), done.stdout + done.stderr
    warning = "RuntimeWarning: advnlp.keras runs on Keras' torch backend: KERAS_BACKEND='jax' is "
    assert warning in done.stderr
    assert "keras_import.py" in done.stderr  # it points at the import, not at advnlp


def test_keras_imported_first_on_torch_is_fine(tmp_path):
    done = import_in_a_fresh_interpreter(tmp_path, "torch", "keras")
    assert (done.returncode, done.stdout) == (0, "torch\n"), done.stdout + done.stderr
    assert "Warning" not in done.stderr


# Keras' other backends each need their own package; none is a dependency of advnlp.
OTHER_BACKENDS = {"jax": "jax", "tensorflow": "tensorflow", "numpy": "jax"}


@pytest.mark.parametrize("backend", sorted(OTHER_BACKENDS))
def test_keras_imported_first_on_another_backend_is_refused_in_one_line(tmp_path, backend):
    if importlib.util.find_spec(OTHER_BACKENDS[backend]) is None:
        pytest.skip(f"Keras' {backend} backend needs {OTHER_BACKENDS[backend]}, not installed")
    done = import_in_a_fresh_interpreter(tmp_path, backend, "keras")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == (
        f"advnlp.keras needs Keras' torch backend, but keras was already imported with the "
        f"'{backend}' backend: import advnlp.keras before keras (it selects torch), or set "
        "KERAS_BACKEND=torch before keras is first imported\n"
    )
    assert "Warning" not in done.stderr  # keras was imported: KERAS_BACKEND is left alone


def test_the_refusal_names_the_backend_keras_reports():
    """Where no other backend is installed, the check that follows ``import keras`` is run on
    the names Keras' other backends report (what the test above does for real)."""
    advnlp.keras._require_torch("torch")
    for backend in sorted(OTHER_BACKENDS):
        with pytest.raises(ImportError) as error:
            advnlp.keras._require_torch(backend)
        message = str(error.value)
        assert "\n" not in message
        assert f"with the '{backend}' backend: import advnlp.keras before keras" in message


class OverflowWhenArmed(keras.layers.Layer):
    """Identity; while ``armed``, the next training call's gradient on the way back is +inf
    (an fp16-style overflow at the embedding output), then it disarms."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.armed = False

    def call(self, x):
        if self.armed and isinstance(x, Tensor) and torch.is_grad_enabled():
            from .test_nonfinite import InfGradient

            self.armed = False
            return InfGradient.apply(x)
        return x


def overflowing_model(seed: int = 5) -> keras.Model:
    """The tiny model with a frozen embedding (no weight sits before the overflow)."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input(shape=(LENGTH,), dtype="int32")
    e = keras.layers.Embedding(VOCAB, DIM, name=NAME, trainable=False)(ids)
    e = OverflowWhenArmed(name="overflow")(e)
    h = keras.layers.GlobalAveragePooling1D()(e)
    logits = keras.layers.Dense(LABELS, name="head")(h)
    return keras.Model(ids, logits, name="overflowing")


@pytest.mark.parametrize("switch", [adversarial_training, gradient_penalty])
def test_overflow_in_the_first_pass_gives_the_plain_step(switch):
    """An inf gradient at the embedding output in the first pass only: the step must be Keras'
    plain one (no nan from inf * 0 in a zeroed perturbation, no inf penalty)."""
    x, y = batch(5)
    model = switch(compiled(overflowing_model()), NAME, 0.5)
    model.get_layer("overflow").armed = True
    with pytest.warns(RuntimeWarning, match="not finite"):
        model.train_on_batch(x, y)
    got = keras_grads(model)
    plain = compiled(overflowing_model())
    plain.train_on_batch(x, y)
    for g in got:
        assert torch.isfinite(g).all()
    close(got, keras_grads(plain))


@pytest.fixture
def float64_keras():
    """Keras in float64 for one test (floatx for compiled losses, the policy for layers)."""
    floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(floatx)
    keras.config.set_dtype_policy(policy)


class Amplified(torch.autograd.Function):
    """Identity forward; the gradient times ``factor`` on the way back."""

    @staticmethod
    def forward(ctx, x: Tensor, factor: float) -> Tensor:
        ctx.factor = factor
        return x.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:
        return grad * ctx.factor, None


class AmplifyGradient(keras.layers.Layer):
    def __init__(self, factor: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.factor = factor

    def call(self, x):
        if isinstance(x, Tensor) and torch.is_grad_enabled():
            return Amplified.apply(x, self.factor)
        return x


# Gradients at the embedding output that are finite in float64 but not in float32 (largest
# value 3.4e38): 1e39 itself for FGM's direction; 1e20 for the penalty, whose squares (1e40)
# overflow float32 (and whose second-order gradient, 1e39 squared, float64 would not hold).
@pytest.mark.parametrize(
    ("switch", "factor"), [(adversarial_training, 1e39), (gradient_penalty, 1e20)]
)
def test_float64_stays_float64(float64_keras, switch, factor):
    """A float64 model's step uses gradients float32 cannot hold: no "not finite" skip, not
    Keras' plain step, float64 gradients; a float32 cast of the gradient, the direction or
    the penalty on the way would make it skip."""
    x, y = batch(7)
    model = switch(compiled(keras_model(7, amplify=factor)), NAME, 0.5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.train_on_batch(x, y)
    assert not [w for w in caught if "not finite" in str(w.message)]
    got = keras_grads(model)
    plain = compiled(keras_model(7, amplify=factor))
    plain.train_on_batch(x, y)
    assert all(g.dtype == torch.float64 and torch.isfinite(g).all() for g in got)
    assert not torch.allclose(got[1], keras_grads(plain)[1])  # the head's kernel


def test_gradient_penalty_keeps_float64(float64_keras):
    """A float64 model's penalty is squared in float64: with a loss of ~1e-24 the squared
    gradients (~1e-51) underflow to 0 in float32 but not in float64, and an epsilon of 1e26
    makes that penalty about as large as the loss, so a float32 cast would drop it."""
    x, y = batch(6)
    model, plain = keras_model(6), keras_model(6)
    for m in (model, plain):
        m.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss=lambda t, p: (
                1e-24 * keras.losses.sparse_categorical_crossentropy(t, p, from_logits=True)
            ),
        )
    gradient_penalty(model, NAME, 1e26)
    penalised = model.train_on_batch(x, y, return_dict=True)["loss"]
    loss = plain.train_on_batch(x, y, return_dict=True)["loss"]
    assert all(g.dtype == torch.float64 and torch.isfinite(g).all() for g in keras_grads(model))
    assert penalised > 1.1 * loss  # the penalty is there
