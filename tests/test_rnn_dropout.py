"""Training with recurrent_dropout (graphc/layers/rnn_unrolled.py): with the same masks, the outputs and
gradients of Keras's cells (goldens); with no unit dropped, the fused recurrent ops' training step; in fit,
compiled C, new masks every step, none at inference."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.layers import rnn_unrolled
from graphc.tracing import Tensor, tracing
from grad_check import check_gradients
from rnn_dropout_cases import CASES, gates

GOLDEN = os.path.join(os.path.dirname(__file__), "goldens_grad", "rnn_dropout.npz")


def _case_fn(case):
    cls, kwargs = CASES[case]
    layer = getattr(layers, cls)(**kwargs)
    k = gates(cls)

    def fn(x, kernel, recurrent, bias, *masks):
        return rnn_unrolled.recurrence(layer, x, kernel, recurrent, bias, [], None, list(masks[:k]), list(masks[k:]))[0]
    return fn, k


def _forward(fn, arrays):
    b = GraphBuilder()
    with tracing(b):
        ins = [Tensor(b.input(f"x{i}", TensorType(a.shape, "float64"))) for i, a in enumerate(arrays)]
        graph = b.finish([fn(*ins).value])
    return reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)}, {})[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_same_masks_give_keras_outputs_and_gradients(case):
    with np.load(GOLDEN) as g:
        golden = {k[len(case) + 1:]: v for k, v in g.items() if k.startswith(case + "_")}
    fn, k = _case_fn(case)
    masks = [golden[f"in{i}"] for i in range(k)] + [golden[f"rec{i}"] for i in range(k)]
    arrays = [golden["x"], golden["w0"], golden["w1"], golden["w2"], *masks]
    x64 = [a.astype(np.float64) for a in arrays]
    np.testing.assert_allclose(_forward(fn, x64), golden["out"], rtol=1e-4, atol=1e-5)
    # the masks matter: with none dropped the output differs
    ones = [np.ones_like(m) for m in x64[4:]]
    assert not np.allclose(_forward(fn, x64[:4] + ones), golden["out"], atol=1e-3)
    # autodiff against finite differences and compiled C against the reference, then against Keras
    dx, dk, dr, db = check_gradients(fn, arrays, batched=[True, False, False, False] + [True] * 2 * k,
                                     wrt=[0, 1, 2, 3])
    for name, got, want in (("x", dx, golden["gx"]), ("kernel", dk, golden["gw0"]),
                            ("recurrent_kernel", dr, golden["gw1"]), ("bias", db, golden["gw2"])):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{case}: d{name}")


def _model(rnn, masking):
    inp = graphc.Input((5, 3))
    x = layers.Masking(0.0)(inp) if masking else inp
    out = layers.Dense(2, name="out")(rnn(x))
    model = graphc.Model(inp, out)
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("cls, kwargs, masking", [
    ("LSTM", dict(return_sequences=True), True),
    ("LSTM", dict(go_backwards=True), False),
    ("GRU", dict(return_sequences=True, zero_output_for_mask=True), True),
    ("GRU", dict(reset_after=False), False),
    ("SimpleRNN", dict(go_backwards=True, return_sequences=True), True),
])
def test_with_no_unit_dropped_the_step_is_the_fused_ops(rng, monkeypatch, cls, kwargs, masking):
    """The unrolled recurrence is the same cell as the whole-sequence kernels: with every mask all ones, a
    training step (Keras masks, go_backwards, zero_output_for_mask included) gives the same loss and weights."""
    monkeypatch.setattr(rnn_unrolled, "drop", lambda ones, rate, seed, shape: ones)
    plain = _model(getattr(layers, cls)(4, name="rnn", **kwargs), masking)
    unrolled = _model(getattr(layers, cls)(4, name="rnn", recurrent_dropout=0.5, **kwargs), masking)
    unrolled.set_weights(plain.get_weights())
    x = rng.normal(size=(6, 5, 3)).astype("float32")
    x[1, 3:] = 0.0  # padding, for the models with Masking
    x[4, :2] = 0.0
    y = rng.normal(size=(6, 5, 2) if kwargs.get("return_sequences") else (6, 2)).astype("float32")
    np.testing.assert_allclose(unrolled.train_on_batch(x, y), plain.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(unrolled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_initial_state_and_return_state_with_recurrent_dropout(rng, monkeypatch):
    monkeypatch.setattr(rnn_unrolled, "drop", lambda ones, rate, seed, shape: ones)

    def model(rate):
        seq, h0, c0 = graphc.Input((4, 3)), graphc.Input((5,)), graphc.Input((5,))
        out, h, c = layers.LSTM(5, recurrent_dropout=rate, return_state=True, name="rnn")(seq, initial_state=[h0, c0])
        m = graphc.Model([seq, h0, c0], layers.Concatenate()([out, h, c]))
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m
    plain, unrolled = model(0.0), model(0.2)
    unrolled.set_weights(plain.get_weights())
    xs = [rng.normal(size=(3, 4, 3)).astype("float32"), rng.normal(size=(3, 5)).astype("float32"),
          rng.normal(size=(3, 5)).astype("float32")]
    y = rng.normal(size=(3, 15)).astype("float32")
    np.testing.assert_allclose(unrolled.train_on_batch(xs, y), plain.train_on_batch(xs, y), rtol=1e-5)


def test_fit_draws_new_masks_each_step_and_inference_drops_nothing(rng, monkeypatch):
    def model():
        graphc.utils.set_random_seed(3)
        m = graphc.Sequential([graphc.Input((6, 2)), layers.LSTM(8, dropout=0.2, recurrent_dropout=0.5, name="rnn"),
                               layers.Dense(1)])
        m.compile(optimizer=graphc.optimizers.SGD(0.05), loss="mse")
        return m
    a = model()
    x, y = rng.normal(size=(16, 6, 2)).astype("float32"), rng.normal(size=(16, 1)).astype("float32")
    before = a.get_weights()
    predicted = a.predict(x, verbose=0)
    plain = graphc.Sequential([graphc.Input((6, 2)), layers.LSTM(8, name="rnn"), layers.Dense(1)])
    plain.set_weights(before)
    np.testing.assert_allclose(predicted, plain.predict(x, verbose=0), rtol=1e-6)  # no dropout at inference
    losses = [a.test_on_batch(x, y)] + [a.train_on_batch(x, y) for _ in range(2)]
    a.set_weights(before)
    again = a.train_on_batch(x, y)
    assert again != losses[1]  # the step counter moved on: other masks
    history = a.fit(x, y, epochs=20, batch_size=16, verbose=0).history["loss"]
    assert history[-1] < history[0]
    # the compiled step equals the reference backend's (same masks from the same counter and seeds)
    compiled = model().train_on_batch(x, y)
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    np.testing.assert_allclose(model().train_on_batch(x, y), compiled, rtol=1e-4)


def test_sequences_of_unknown_length_unroll_per_length(rng, monkeypatch):
    """An Input of unknown length trains: each length the step meets is specialized, as for the fused ops."""
    monkeypatch.setattr(rnn_unrolled, "drop", lambda ones, rate, seed, shape: ones)

    def model(rate):
        m = graphc.Sequential([graphc.Input((None, 3)), layers.GRU(4, recurrent_dropout=rate, name="rnn")])
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m
    plain, unrolled = model(0.0), model(0.2)
    unrolled.set_weights(plain.get_weights())
    for steps in (5, 2):
        x, y = rng.normal(size=(2, steps, 3)).astype("float32"), rng.normal(size=(2, 4)).astype("float32")
        np.testing.assert_allclose(unrolled.train_on_batch(x, y), plain.train_on_batch(x, y), rtol=1e-5)
