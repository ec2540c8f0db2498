"""Keras's masking: Embedding(mask_zero=True) and Masking make a (batch, steps) mask, layers pass it on or use
it. The recurrent layers skip masked steps (forward, training forward and backward, NumPy reference and C),
GlobalAveragePooling1D leaves them out, losses and metrics too. Keras's own numbers are in the golden cases
masking_* (tests/golden_cases.py) and the training golden 'masked'; here the rules, the C paths and the
gradients by finite differences."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import graphc
from graphc import layers
from grad_check import check_gradients

KINDS = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "simple_rnn"}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def padded(rng, n, steps, features):
    """Sequences with zero steps (padding) at the end, at the start and inside; one row all padding but a step."""
    x = rng.uniform(-1, 1, (n, steps, features)).astype(np.float32)
    keep = rng.uniform(size=(n, steps)) > 0.3
    keep[0, -3:] = False
    keep[min(1, n - 1), :2] = False
    keep[:, steps // 2] |= ~keep.any(1)  # (every row keeps a step)
    return x * keep[..., None], keep


# --- how masks propagate ------------------------------------------------------------------------------------------
def test_masks_propagate_as_in_keras():
    x = graphc.Input((6,), dtype="int32")
    e = layers.Embedding(5, 3, mask_zero=True)(x)
    assert e._keras_mask.shape == (None, 6) and e._keras_mask.dtype == "bool"
    assert layers.Embedding(5, 3)(x).__dict__.get("_keras_mask") is None  # (no mask_zero: none)
    d = layers.Dropout(0.5)(layers.Dense(4)(e))
    assert d._keras_mask.shape == (None, 6)  # passed on
    seq, h, c = layers.LSTM(2, return_sequences=True, return_state=True)(d)
    assert seq._keras_mask.shape == (None, 6) and getattr(h, "_keras_mask", None) is None
    assert getattr(layers.LSTM(2)(d), "_keras_mask", None) is None  # the last step: no mask
    assert getattr(layers.GlobalAveragePooling1D()(d), "_keras_mask", None) is None
    with pytest.warns(UserWarning, match=r"Layer 'flat' \(Flatten\) was passed an input with a mask, but it does not "
                                         "support masking"):
        flat = layers.Flatten(name="flat")(d)
    assert getattr(flat, "_keras_mask", None) is None


def test_a_recurrent_layer_given_initial_state_applies_no_mask(rng):
    # Keras fills `mask` from the inputs only for a call with one tensor argument: with initial_state it applies
    # none (and the output keeps the sequence's mask)
    x, h0 = graphc.Input((5, 2)), graphc.Input((3,))
    m = layers.Masking()(x)
    given, plain = layers.SimpleRNN(3, return_sequences=True), layers.SimpleRNN(3, return_sequences=True)
    out = given(m, initial_state=h0)
    model = graphc.Model([x, h0], [out, plain(x, initial_state=h0)])
    plain.set_weights(given.get_weights())
    xs, _ = padded(rng, 3, 5, 2)
    a, b = model.predict([xs, rng.normal(size=(3, 3)).astype("float32")], verbose=0)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert out._keras_mask.shape == (None, 5)


def test_wrong_masks_are_refused():
    with pytest.raises(ValueError, match=r"LSTM 'r': the mask must have shape \(batch, timesteps\) = \(2, 3\), "
                                         r"received \(2, 4\)"):
        layers.LSTM(2, name="r")(np.zeros((2, 3, 2), "float32"), mask=np.ones((2, 4), bool))
    with pytest.raises(ValueError, match=r"query_mask= is not supported"):
        q = graphc.Input((4, 2))
        layers.MultiHeadAttention(1, 2)(q, q, query_mask=np.ones((1, 4), bool))


# --- the recurrent layers skip masked steps: C (every kernel path) against the unmasked subsequences -------------
@pytest.mark.parametrize("layer", list(KINDS))
@pytest.mark.parametrize("n,units", [(1, 128), (3, 5), (40, 16)])  # threads share the units; few rows; row blocks
def test_masked_steps_are_skipped_in_c(rng, layer, n, units):
    """Each sample's outputs equal those of the layer run on its unmasked steps alone; at a masked step of a
    sequence output the previous output repeats (zeros before the first step)."""
    steps, features = 10, 3
    x, keep = padded(rng, n, steps, features)
    for go_backwards in (False, True):
        graphc.layers.clear_session()
        inp = graphc.Input((steps, features))
        rnn = getattr(layers, layer)(units, return_sequences=True, go_backwards=go_backwards)
        last = getattr(layers, layer)(units, go_backwards=go_backwards)
        m = layers.Masking()(inp)
        model = graphc.Model(inp, [rnn(m), last(m)])
        last.set_weights(rnn.get_weights())
        seq, final = model.predict(x, verbose=0)
        assert model._programs[None] is not None  # (compiled C, not the reference)
        for i in sorted({0, min(1, n - 1), n // 2, n - 1}):  # (rows with padding at the end, the start, inside)
            sub = x[i][keep[i]][None]
            alone = graphc.Model(s := graphc.Input(sub.shape[1:]), getattr(layers, layer)(
                units, return_sequences=True, go_backwards=go_backwards)(s))
            alone.layers[1].set_weights(rnn.get_weights())
            want = alone.predict(sub, verbose=0)[0]
            order = keep[i][::-1] if go_backwards else keep[i]
            np.testing.assert_allclose(seq[i][order], want, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(final[i], want[-1], rtol=1e-5, atol=1e-6)
            carried = np.maximum.accumulate(np.where(order, np.arange(steps), -1))  # the last kept step so far
            expected = np.where((carried >= 0)[:, None], seq[i][np.maximum(carried, 0)], 0.0)
            np.testing.assert_array_equal(seq[i], expected)


@pytest.mark.parametrize("layer", list(KINDS))
def test_zero_output_for_mask(rng, layer):
    x, keep = padded(rng, 4, 6, 2)
    inp = graphc.Input((6, 2))
    m = layers.Masking()(inp)
    zeros = getattr(layers, layer)(3, return_sequences=True, zero_output_for_mask=True, go_backwards=True)
    repeat = getattr(layers, layer)(3, return_sequences=True, go_backwards=True)
    model = graphc.Model(inp, [zeros(m), repeat(m)])
    repeat.set_weights(zeros.get_weights())
    a, b = model.predict(x, verbose=0)
    order = keep[:, ::-1]
    np.testing.assert_array_equal(a[~order], 0.0)
    np.testing.assert_allclose(a[order], b[order], rtol=1e-6)


# --- gradients of the masked training op: finite differences (float64) and C against the reference -------------
@pytest.mark.parametrize("kind,attrs", [("lstm", {}), ("lstm", dict(return_sequences=True, go_backwards=True)),
                                        ("gru", dict(reset_after=True, return_sequences=True)),
                                        ("gru", dict(reset_after=False, go_backwards=True)),
                                        ("simple_rnn", dict(return_sequences=True))])
def test_masked_training_op_gradients(rng, kind, attrs):
    from graphc.tracing import emit
    n, t, f, units = 3, 6, 2, 3
    g = GATES[kind] * units
    arrays = [rng.uniform(-1, 1, (n, t, f)), rng.uniform(-0.6, 0.6, (f, g)), rng.uniform(-0.6, 0.6, (units, g)),
              rng.uniform(-0.5, 0.5, (2, g) if kind == "gru" and attrs.get("reset_after") else (g,))]
    _, keep = padded(rng, n, t, f)
    arrays.append(keep.astype(np.float64))

    def fn(*xs):
        return list(emit(f"{kind}_train", *xs, units=units, masked=True, **attrs)[:1 + (kind == "lstm") + 1])
    grads = check_gradients(fn, arrays, batched=[True, False, False, False, True], wrt=[0, 1, 2, 3])
    dx = grads[0]
    assert np.all(dx[~keep] == 0) and np.abs(dx[keep]).min() > 0  # no gradient reaches a masked step's input


# --- losses and metrics leave out a masked output's padding -------------------------------------------------------
def test_losses_and_metrics_of_a_masked_output(rng):
    x, keep = padded(rng, 6, 5, 2)
    inp = graphc.Input((5, 2))
    out = layers.Dense(3, activation="softmax")(layers.Masking()(inp))
    model = graphc.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy", metrics=["accuracy"])
    y = rng.integers(0, 3, (6, 5)).astype("int32")
    loss, acc = model.evaluate(x, y, verbose=0)
    p = model.predict(x, verbose=0)
    ce = -np.log(np.take_along_axis(p, y[..., None], -1)[..., 0])
    np.testing.assert_allclose(loss, ce[keep].mean(), rtol=1e-5)  # the mean over the kept steps
    np.testing.assert_allclose(acc, (p.argmax(-1) == y)[keep].mean(), rtol=1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (the step compiles to C: no fallback warning)
        model.fit(x, y, epochs=1, verbose=0)
