"""Every Keras activation by name, against its formula."""
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from graphc import activations, layers, utils
from graphc.ir.ops.elementwise import broadcast_shapes

X = np.linspace(-6, 6, 49, dtype=np.float32).reshape(7, 7)
sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
erf = np.vectorize(math.erf)

FORMULAS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": sig,
    "tanh": np.tanh,
    "softmax": lambda x: np.exp(x) / np.exp(x).sum(-1, keepdims=True),
    "elu": lambda x: np.where(x > 0, x, np.exp(x) - 1),
    "selu": lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * (np.exp(x) - 1)),
    "gelu": lambda x: 0.5 * x * (1 + erf(x / np.sqrt(2))),
    "swish": lambda x: x * sig(x),
    "silu": lambda x: x * sig(x),
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "softplus": lambda x: np.log1p(np.exp(x)),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "exponential": np.exp,
    "relu6": lambda x: np.clip(x, 0, 6),
}


@pytest.mark.parametrize("name", sorted(FORMULAS))
def test_activation_layer_by_name(name):
    got = layers.Activation(name)(X)
    np.testing.assert_allclose(got, FORMULAS[name](X.astype(np.float64)), rtol=1e-5, atol=1e-6)


def test_relu_options():
    np.testing.assert_allclose(activations.relu(X, max_value=2.0), np.clip(X, 0, 2))
    np.testing.assert_allclose(activations.relu(X, negative_slope=0.1), np.where(X > 0, X, 0.1 * X), rtol=1e-6)
    np.testing.assert_allclose(activations.relu(X, threshold=1.0), np.where(X > 1, X, 0), rtol=1e-6)


def test_sigmoid_and_softplus_do_not_overflow():
    big = np.array([[-100.0, 100.0]], np.float32)
    np.testing.assert_allclose(activations.sigmoid(big), [[0, 1]], atol=1e-30)
    np.testing.assert_allclose(activations.softplus(big), [[0, 100]], atol=1e-6)


def test_to_categorical():
    np.testing.assert_array_equal(utils.to_categorical([0, 2, 1]), np.eye(3, dtype="float32")[[0, 2, 1]])
    y = utils.to_categorical(np.array([[1], [3]]), num_classes=5)
    assert y.shape == (2, 5) and y.dtype == np.float32 and y[1, 3] == 1
    with pytest.raises(ValueError, match="out of range"):
        utils.to_categorical([5], num_classes=3)


dims = st.lists(st.sampled_from([1, 2, 3, None]), max_size=4)


@given(dims, dims)
def test_broadcast_rule_agrees_with_numpy(a, b):
    """For every concrete size a None may take, our static rule predicts NumPy's result."""
    concrete = lambda s, n: tuple(n if d is None else d for d in s)  # noqa: E731
    try:
        out = broadcast_shapes(tuple(a), tuple(b))
    except ValueError:
        with pytest.raises(ValueError):
            for n in (2, 3):
                np.broadcast_shapes(concrete(a, n), concrete(b, n))
        return
    for n in (2, 3):  # None matched with a known size: the data must have that size
        try:
            want = np.broadcast_shapes(concrete(a, n), concrete(b, n))
        except ValueError:
            continue
        assert all(o is None or o == w for o, w in zip(out, want)) and len(out) == len(want)
