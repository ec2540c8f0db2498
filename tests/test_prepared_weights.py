"""Prepared weights: compiled inference programs pack their Dense and convolution kernels once per set of
weights and reuse the packed copies on every call. Whatever changes a weight (set_weights, assign, a training
step) must be seen by the next prediction."""
import re

import numpy as np
import pytest

import graphc
import graphc.runtime.program as program_module
from graphc import layers


def _model():
    inputs = graphc.Input((9, 9, 4))
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3x3")(inputs)  # 36 products: implicit GEMM
    h = layers.Conv2D(8, 1, name="conv1x1")(h)                                           # a plain GEMM over cells
    h = layers.Flatten()(h)
    h = layers.Dense(12, activation="relu", name="hidden")(h)
    return graphc.Model(inputs, layers.Dense(5, name="out")(h))


def _reference(model, x, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("GRAPHC_BACKEND", "reference")
        return model.predict_on_batch(x)


def _program(model, x):
    return model._compiled([x])


@pytest.fixture
def data(rng):
    return rng.normal(size=(6, 9, 9, 4)).astype("float32")  # 6 rows for the Dense layers: their blocked path


def test_the_inference_program_packs_its_kernels_once(data):
    model = _model()
    model.predict_on_batch(data)
    program = _program(model, data)
    assert "_prepare(" in program.generated.cdef
    assert program.prepared_bytes() >= 4 * (3 * 3 * 4 * 16 + 4 * 16 + 9 * 9 * 8 * 12)  # the four kernels, packed
    assert model.memory_report(batch_size=6)["prepared_weights_bytes"] == program.prepared_bytes()
    source = program.generated.source
    for layer in ("conv3x3", "conv1x1", "hidden", "out"):
        assert re.search(rf"/\* {layer}: (conv|dense) kernel, packed for (the|its) GEMM", source), layer


def test_predictions_follow_every_change_of_the_weights(data, rng, monkeypatch):
    model = _model()
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    model.set_weights([0.1 * rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    kernel = model.get_layer("conv3x3").kernel
    kernel.assign(0.1 * rng.normal(size=kernel.shape))
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    model.compile(optimizer=graphc.optimizers.SGD(1e-3), loss="mse")
    model.train_on_batch(data, np.ones((6, 5), "float32"))  # (its first step also makes the optimizer's variables)
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)
    before = model.predict_on_batch(data)
    model.train_on_batch(data, np.ones((6, 5), "float32"))  # writes the weights in place, in C
    after = model.predict_on_batch(data)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)


def test_the_packed_copies_are_what_a_call_reads(data, rng, monkeypatch):
    """With the weights' version frozen, a changed kernel is not re-packed, so the prediction is the old one:
    the calls read the packed copies, and the version is what keeps them fresh."""
    model = _model()
    old = model.predict_on_batch(data)
    monkeypatch.setattr(program_module, "weights_version", lambda: -1)
    model.predict_on_batch(data)  # packs once more, under the frozen version
    hidden = model.get_layer("hidden").kernel
    hidden.assign(hidden.numpy() * 3.0)
    np.testing.assert_allclose(model.predict_on_batch(data), old, rtol=1e-6)
    monkeypatch.undo()
    assert not np.allclose(model.predict_on_batch(data), old)


def test_a_training_step_does_not_prepare_weights(data):
    model = _model()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(data, np.zeros((6, 5), "float32"))
    steps = [s.program for s in model._steps.values() if s.program]
    assert steps and all("_prepare(" not in s.generated.cdef and s.prepared_bytes() == 0 for s in steps)
    assert model.memory_report(batch_size=6, training=True)["prepared_weights_bytes"] == 0


def test_weights_change_only_through_assign(data):
    """The packed copies would go stale behind an in-place write, so a weight's value is read-only."""
    kernel = _model().get_layer("hidden").kernel
    with pytest.raises(ValueError, match="read-only"):
        kernel.value[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(kernel)[...] = 0.0
    kernel.assign(np.zeros(kernel.shape))
    assert not kernel.value.any()
