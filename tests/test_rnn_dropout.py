"""Training with recurrent_dropout (graphc/layers/rnn_dropout.py, the rdrop input of the fused recurrent
kernels): with the same masks, the outputs and gradients of Keras's cells (goldens), finite differences and
compiled C against the reference; with no unit dropped, the plain training step; in fit, new masks every
step and none at inference."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from graphc import layers, ops
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.layers import rnn_dropout
from graphc.tracing import Tensor, emit, tracing
from grad_check import check_gradients
from rnn_dropout_cases import CASES, gates

GOLDEN = os.path.join(os.path.dirname(__file__), "goldens_train", "rnn_dropout.npz")


def _case_fn(case):
    """fn(x, kernel, recurrent, bias, *input masks, *state masks) -> the layer's training output, the masks
    given (each (batch, n)) instead of drawn, as the layer passes them to its training op."""
    cls, kwargs = CASES[case]
    layer = getattr(layers, cls)(**kwargs)
    k = gates(cls)

    def fn(x, kernel, recurrent, bias, *masks):
        seq, kern = rnn_dropout.per_gate_inputs(x, kernel, ops.stack(list(masks[:k]), axis=1), layer.units)
        rdrop = ops.stack(list(masks[k:]), axis=1)
        return emit(f"{layer.op_kind}_train", seq, kern, recurrent, bias, rdrop, **layer._op_attrs(),
                    recurrent_masked=True)[0]
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


def _model(rnn, masking, features=3, steps=5, units_out=2):
    inp = graphc.Input((steps, features))
    x = layers.Masking(0.0)(inp) if masking else inp
    out = layers.Dense(units_out, name="out")(rnn(x))
    model = graphc.Model(inp, out)
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    return model


@pytest.mark.parametrize("cls, kwargs, masking", [
    ("LSTM", dict(return_sequences=True), True),
    ("LSTM", dict(go_backwards=True, dropout=0.3), False),
    ("LSTM", dict(activation="relu"), False),
    ("GRU", dict(return_sequences=True, zero_output_for_mask=True), True),
    ("GRU", dict(reset_after=False, dropout=0.3), False),
    ("SimpleRNN", dict(go_backwards=True, return_sequences=True), True),
])
def test_with_no_unit_dropped_the_step_is_the_plain_step(rng, monkeypatch, cls, kwargs, masking):
    """Per-gate products and the block-diagonal input kernel compute the plain cell: with every mask all ones,
    a training step (Keras masks, go_backwards, zero_output_for_mask included) gives the same loss and weights."""
    monkeypatch.setattr(rnn_dropout, "drop", lambda ones, rate, seed, shape: ones)
    plain = _model(getattr(layers, cls)(4, name="rnn", **{k: v for k, v in kwargs.items() if k != "dropout"}),
                   masking)
    dropped = _model(getattr(layers, cls)(4, name="rnn", recurrent_dropout=0.5, **kwargs), masking)
    dropped.set_weights(plain.get_weights())
    x = rng.normal(size=(6, 5, 3)).astype("float32")
    x[1, 3:] = 0.0  # padding, for the models with Masking
    x[4, :2] = 0.0
    y = rng.normal(size=(6, 5, 2) if kwargs.get("return_sequences") else (6, 2)).astype("float32")
    np.testing.assert_allclose(dropped.train_on_batch(x, y), plain.train_on_batch(x, y), rtol=1e-5)
    for a, b in zip(dropped.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("cls, kwargs", [
    ("LSTM", dict(dropout=0.2)),
    ("LSTM", dict(go_backwards=True, return_sequences=True, activation="relu")),
    ("GRU", dict(dropout=0.25)),
    ("GRU", dict(reset_after=False, go_backwards=True)),
    ("SimpleRNN", dict(dropout=0.1, return_sequences=True)),
])
def test_compiled_kernels_equal_the_reference_with_masks_drawn(rng, monkeypatch, cls, kwargs):
    """Wider than the goldens (37 units, not a multiple of the kernels' panels; 9 samples on two threads),
    with Masking: three compiled training steps equal the reference backend's, masks drawn alike."""
    def steps():
        graphc.utils.set_random_seed(5)
        m = _model(getattr(layers, cls)(37, name="rnn", recurrent_dropout=0.4, **kwargs), True, features=6, steps=7,
                   units_out=3)
        losses = [m.train_on_batch(x, y) for _ in range(3)]
        return losses, m.get_weights()
    x = rng.normal(size=(9, 7, 6)).astype("float32")
    x[2, 5:] = 0.0
    y = rng.normal(size=(9, 7, 3) if kwargs.get("return_sequences") else (9, 3)).astype("float32")
    compiled, weights = steps()
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    expected, want = steps()
    np.testing.assert_allclose(compiled, expected, rtol=1e-4)
    for a, b in zip(weights, want):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_initial_state_and_return_state_with_recurrent_dropout(rng, monkeypatch):
    monkeypatch.setattr(rnn_dropout, "drop", lambda ones, rate, seed, shape: ones)

    def model(rate):
        seq, h0, c0 = graphc.Input((4, 3)), graphc.Input((5,)), graphc.Input((5,))
        out, h, c = layers.LSTM(5, recurrent_dropout=rate, return_state=True, name="rnn")(seq, initial_state=[h0, c0])
        m = graphc.Model([seq, h0, c0], layers.Concatenate()([out, h, c]))
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m
    plain, dropped = model(0.0), model(0.2)
    dropped.set_weights(plain.get_weights())
    xs = [rng.normal(size=(3, 4, 3)).astype("float32"), rng.normal(size=(3, 5)).astype("float32"),
          rng.normal(size=(3, 5)).astype("float32")]
    y = rng.normal(size=(3, 15)).astype("float32")
    np.testing.assert_allclose(dropped.train_on_batch(xs, y), plain.train_on_batch(xs, y), rtol=1e-5)


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


def test_sequences_of_unknown_length_train_with_recurrent_dropout(rng, monkeypatch):
    """An Input of unknown length trains: each length the step meets is specialized, as without dropout."""
    monkeypatch.setattr(rnn_dropout, "drop", lambda ones, rate, seed, shape: ones)

    def model(rate):
        m = graphc.Sequential([graphc.Input((None, 3)), layers.GRU(4, recurrent_dropout=rate, name="rnn")])
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m
    plain, dropped = model(0.0), model(0.2)
    dropped.set_weights(plain.get_weights())
    for steps in (5, 2):
        x, y = rng.normal(size=(2, steps, 3)).astype("float32"), rng.normal(size=(2, 4)).astype("float32")
        np.testing.assert_allclose(dropped.train_on_batch(x, y), plain.train_on_batch(x, y), rtol=1e-5)


def test_a_rate_of_one_drops_nothing_as_keras(rng):
    """Keras applies an RNN's dropout and recurrent_dropout only for 0 < rate < 1."""
    def model(**kw):
        m = graphc.Sequential([graphc.Input((4, 3)), layers.LSTM(5, name="rnn", **kw), layers.Dense(1)])
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m
    plain, ones = model(), model(dropout=1.0, recurrent_dropout=1.0)
    ones.set_weights(plain.get_weights())
    x, y = rng.normal(size=(3, 4, 3)).astype("float32"), rng.normal(size=(3, 1)).astype("float32")
    np.testing.assert_allclose(ones.train_on_batch(x, y), plain.train_on_batch(x, y), rtol=1e-6)
