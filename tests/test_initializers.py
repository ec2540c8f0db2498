"""Initializers: Keras names, fan computation, distributions, seeds."""
import numpy as np
import pytest

from graphc import initializers, layers
from graphc.initializers import compute_fans


def test_fans_follow_keras_kernel_layouts():
    assert compute_fans((784, 64)) == (784, 64)
    assert compute_fans((3, 3, 16, 32)) == (9 * 16, 9 * 32)
    assert compute_fans((5,)) == (5, 5)


def test_glorot_uniform_limits_and_spread():
    w = initializers.get("glorot_uniform")((400, 200))
    limit = np.sqrt(6 / 600)
    assert w.dtype == np.float32 and np.abs(w).max() <= limit
    assert abs(w.std() - limit / np.sqrt(3)) < 0.01 * limit


def test_he_normal_is_truncated_with_the_right_std():
    w = initializers.HeNormal(seed=3)((500, 300))
    std = np.sqrt(2 / 500)
    assert abs(w.std() - std) < 0.03 * std
    assert np.abs(w).max() <= 2 * std / 0.87962566103423978 + 1e-6


def test_orthogonal_columns_are_orthonormal():
    w = initializers.get("orthogonal")((64, 32))
    np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-5)
    w = initializers.Orthogonal(gain=2.0)((16, 48))
    np.testing.assert_allclose(w @ w.T, 4 * np.eye(16), atol=1e-4)


@pytest.mark.parametrize("name,check", [
    ("zeros", lambda w: (w == 0).all()), ("ones", lambda w: (w == 1).all()),
    ("random_normal", lambda w: abs(w.std() - 0.05) < 0.005),
    ("random_uniform", lambda w: np.abs(w).max() <= 0.05),
    ("truncated_normal", lambda w: np.abs(w).max() <= 0.1),
    ("identity", lambda w: (w == np.eye(100)).all()),
])
def test_named_initializers(name, check):
    assert check(initializers.get(name)((100, 100)))


def test_seeded_initializers_are_reproducible():
    a = initializers.GlorotUniform(seed=7)((4, 5))
    b = initializers.GlorotUniform(seed=7)((4, 5))
    c = initializers.GlorotUniform(seed=8)((4, 5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_layer_uses_its_initializers():
    d = layers.Dense(3, kernel_initializer="ones", bias_initializer=initializers.Constant(0.5))
    d.build((None, 2))
    k, b = d.get_weights()
    assert (k == 1).all() and (b == 0.5).all()


def test_unknown_initializer_name():
    with pytest.raises(ValueError, match="Unknown initializer 'glorot'"):
        initializers.get("glorot")
