"""Sequential API: list or add(), input_shape/input_dim/Input first, pop(), deferred build."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers


def test_list_and_add_build_the_same_model():
    m1 = keras.Sequential([layers.Dense(2, input_shape=(1,)), layers.Dense(1)])
    m2 = keras.Sequential()
    m2.add(layers.Dense(2, input_shape=(1,)))
    m2.add(layers.Dense(1))
    for m in (m1, m2):
        assert m.built and m.output_shape == (None, 1) and m.count_params() == 7
        assert [type(l).__name__ for l in m.layers] == ["Dense", "Dense"]


def test_input_dim_and_input_first():
    m = keras.Sequential([layers.Dense(32, activation="relu", input_dim=100), layers.Dense(10, activation="softmax")])
    assert m.input_shape == (None, 100) and m.count_params() == 100 * 32 + 32 + 330
    m2 = keras.Sequential()
    m2.add(keras.Input(shape=(784,)))
    m2.add(layers.Dense(64, activation="relu"))
    assert m2.output_shape == (None, 64)
    assert m2.layers[0].input.shape == (None, 784)


def test_deferred_build_on_first_call(rng):
    m = keras.Sequential([layers.Dense(4), layers.Dense(2)])
    assert not m.built
    with pytest.raises(ValueError, match="not been built"):
        m.summary()
    x = rng.normal(size=(3, 5)).astype("float32")
    y = m.predict(x)
    assert m.built and y.shape == (3, 2)
    w0, b0, w1, b1 = m.get_weights()
    np.testing.assert_allclose(y, (x @ w0 + b0) @ w1 + b1, rtol=1e-5, atol=1e-6)


def test_deferred_build_when_called_on_a_tensor():
    m = keras.Sequential([layers.Dense(4), layers.Dense(2)])
    inp = keras.Input(shape=(6,))
    out = m(inp)
    assert out.shape == (None, 2) and m.count_params() == 6 * 4 + 4 + 10


def test_get_layer_by_index_counts_the_layers_without_the_input():
    m = keras.Sequential([keras.Input(shape=(3,)), layers.Dense(4, name="d1"), layers.Dense(2, name="d2")])
    assert [m.get_layer(index=i).name for i in (0, 1, -1)] == ["d1", "d2", "d2"]  # (index 0 was the InputLayer)
    with pytest.raises(ValueError, match="has 2 layers; index 2 is out of range"):
        m.get_layer(index=2)


def test_pop_removes_the_last_layer():
    m = keras.Sequential([layers.Dense(4, input_shape=(3,)), layers.Dense(5), layers.Dense(6)])
    popped = m.pop()
    assert popped.units == 6 and m.output_shape == (None, 5) and len(m.layers) == 2
    with pytest.raises(TypeError, match="no layers"):
        keras.Sequential().pop()


def test_summary_has_no_connected_to_column(capsys):
    m = keras.Sequential([layers.Dense(2, input_shape=(1,), name="a"), layers.Dense(1, name="b")])
    m.summary()
    out = capsys.readouterr().out
    assert "Connected to" not in out and "a (Dense)" in out and "Total params: 7" in out
    assert "InputLayer" not in out


def test_bad_add_arguments():
    m = keras.Sequential()
    with pytest.raises(TypeError, match="expects a Layer"):
        m.add("dense")
    m.add(layers.Dense(2, input_shape=(3,), name="d"))
    with pytest.raises(ValueError, match="unique names"):
        m.add(layers.Dense(2, name="d"))
    with pytest.raises(ValueError, match="only be the first"):
        m.add(layers.InputLayer(shape=(2,)))


def test_sequential_inside_functional_model(rng):
    block = keras.Sequential([layers.Dense(4, activation="relu"), layers.Dense(4)])
    a = keras.Input(shape=(4,))
    out = layers.add([block(a), a])
    model = keras.Model(a, out)
    x = rng.normal(size=(2, 4)).astype("float32")
    np.testing.assert_allclose(model.predict(x), block.predict(x) + x, rtol=1e-5, atol=1e-6)
