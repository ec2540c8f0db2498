"""Normalization: adapt computes Keras's statistics; the layer standardizes (or inverts) with them, compiled;
given statistics broadcast to the kept axes; the statistics are weights that training leaves alone."""
import numpy as np
import pytest

import graphc
from graphc import layers


def _data(rng):
    return (rng.normal(size=(40, 4, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, -1.0]).astype("float32")


@pytest.mark.parametrize("axis, reduce", [(-1, (0, 1)), ((1, 2), (0,)), (None, (0, 1, 2))])
def test_adapt_then_standardize(rng, axis, reduce):
    x = _data(rng)
    norm = layers.Normalization(axis=axis)
    norm.adapt(x)
    mean, var = x.astype(np.float64).mean(reduce, keepdims=True), x.astype(np.float64).var(reduce, keepdims=True)
    inp = graphc.Input((4, 3))
    model = graphc.Model(inp, norm(inp))
    np.testing.assert_allclose(model.predict(x, verbose=0), (x - mean) / np.sqrt(var), rtol=1e-4, atol=1e-5)
    assert int(norm.count.numpy()) == int(np.prod([x.shape[a] for a in reduce]))
    assert norm.trainable_weights == [] and len(norm.non_trainable_weights) == 3  # mean, variance, count


def test_given_statistics_invert_and_a_zero_variance(rng):
    x = _data(rng)
    inp = graphc.Input((4, 3))
    given = layers.Normalization(mean=[0.0, 1.0, 2.0], variance=[1.0, 4.0, 0.0])
    model = graphc.Model(inp, [given(inp), layers.Normalization(mean=1.0, variance=4.0, invert=True)(inp)])
    out, inverted = model.predict(x, verbose=0)
    np.testing.assert_allclose(out, (x - [0.0, 1.0, 2.0]) / [1.0, 2.0, 1e-7], rtol=1e-5)  # std floored at 1e-7
    np.testing.assert_allclose(inverted, 1.0 + x * 2.0, rtol=1e-6)
    assert model.count_params() == 0
    with pytest.raises(ValueError, match="both `mean` and `variance` must be set"):
        layers.Normalization(mean=1.0)
    with pytest.raises(ValueError, match="cannot adapt"):
        given.adapt(x)


def test_fit_leaves_the_statistics_alone(rng):
    x = _data(rng).reshape(40, 12)
    norm = layers.Normalization()
    norm.adapt(x)
    stats = [w.copy() for w in norm.get_weights()]
    inp = graphc.Input((12,))
    model = graphc.Model(inp, layers.Dense(1)(norm(inp)))
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, np.ones((40, 1), "float32"), verbose=0)
    for got, want in zip(norm.get_weights(), stats):
        np.testing.assert_array_equal(got, want)
