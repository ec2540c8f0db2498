"""SpatialDropout, GaussianNoise, GaussianDropout: identities at inference; in training, the statistics Keras
documents (their random numbers cannot equal Keras's, which come from TensorFlow's generators), reproducible
under set_random_seed, and the same in compiled C as in the NumPy reference."""
import numpy as np
import pytest

import graphc
from graphc import layers


@pytest.mark.parametrize("cls, shape", [(layers.SpatialDropout1D, (64, 30, 8)), (layers.SpatialDropout2D, (32, 5, 6, 8)),
                                        (layers.SpatialDropout3D, (16, 3, 4, 5, 8))])
def test_spatial_dropout_drops_whole_channels(cls, shape):
    x = np.ones(shape, "float32")
    np.testing.assert_array_equal(cls(0.5)(x), x)  # inference: the identity
    y = cls(0.4, seed=3)(x, training=True)
    per_channel = y.reshape(shape[0], -1, shape[-1])
    assert np.all(per_channel.min(axis=1) == per_channel.max(axis=1))  # one draw per sample and channel
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.6)}
    assert abs((per_channel[:, 0] == 0).mean() - 0.4) < 0.1
    assert "noise_shape" not in cls(0.4).get_config()


def test_gaussian_noise_and_dropout_statistics():
    graphc.utils.set_random_seed(1)
    z = np.random.default_rng(0).normal(size=(300, 200)).astype("float32")
    np.testing.assert_array_equal(layers.GaussianNoise(0.3)(z), z)
    noise = layers.GaussianNoise(0.3)(z, training=True) - z
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.3) < 0.01
    assert abs(np.mean(np.abs(noise) < 0.3) - 0.6827) < 0.01  # normal, not just the right variance
    factor = layers.GaussianDropout(0.2)(np.ones((300, 200), "float32"), training=True)
    assert abs(factor.mean() - 1) < 0.01 and abs(factor.std() - 0.5) < 0.01  # sqrt(0.2 / 0.8)


def _noisy_model():
    inp = graphc.Input((6,))
    h = layers.GaussianNoise(0.5, name="noise")(layers.Dense(6, name="d")(inp))
    h = layers.GaussianDropout(0.3)(h)
    return graphc.Model(inp, layers.Dense(1)(h))


def test_training_with_noise_is_reproducible_and_c_equals_the_reference(monkeypatch):
    x, y = np.random.default_rng(0).normal(size=(16, 6)).astype("float32"), np.ones((16, 1), "float32")
    runs = []
    for backend in ("c", "c", "reference"):
        monkeypatch.setenv("GRAPHC_BACKEND", backend)
        graphc.utils.set_random_seed(5)
        model = _noisy_model()
        model.compile(optimizer=graphc.optimizers.SGD(0.05), loss="mse")
        runs.append(model.fit(x, y, batch_size=8, epochs=2, verbose=0, shuffle=False).history["loss"])
    assert runs[0] == runs[1]
    np.testing.assert_allclose(runs[0], runs[2], rtol=1e-5)


def test_cos_and_sin_ops():
    x = np.linspace(-4, 4, 17, dtype="float32")
    np.testing.assert_allclose(graphc.ops.cos(x), np.cos(x), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(graphc.ops.sin(x), np.sin(x), rtol=1e-6, atol=1e-7)
