"""Custom layers: subclass Layer with build/add_weight/call written with graphc.ops and operators."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers, ops

from seed_layers import CustomDense  # noqa: E402  (the seed's custom layer)


def test_seed_custom_dense_builds_and_computes(rng):
    inputs = keras.Input((4,))
    outputs = CustomDense(10)(inputs)
    model = keras.Model(inputs, outputs)
    assert outputs.shape == (None, 10) and model.count_params() == 50
    layer = model.layers[1]
    assert layer.name == "custom_dense"
    x = rng.normal(size=(3, 4)).astype("float32")
    w, b = layer.get_weights()
    np.testing.assert_allclose(model.predict(x), x @ w + b, rtol=1e-5, atol=1e-6)


def test_seed_custom_dense_from_config(rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, CustomDense(10)(inputs))
    config = model.get_config()
    new_model = keras.Model.from_config(config, custom_objects={"CustomDense": CustomDense})
    assert new_model.count_params() == 50
    assert new_model.output_shape == (None, 10)


class Scaled(layers.Layer):
    """Every operator on symbolic tensors and weights, plus sublayers and a training flag."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.inner = layers.Dense(3)

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(3,), initializer="ones", name="scale")
        self.gate = self.add_weight(shape=(3, 3), initializer="identity", name="gate", trainable=False)

    def call(self, x, training=None):
        h = self.inner(x)
        y = (h * self.scale - 1.0) / 2.0 + h @ self.gate
        return -ops.relu(y) + 2 * ops.sigmoid(y) ** 2


def test_operators_sublayers_and_weight_tracking(rng):
    inp = keras.Input((5,))
    layer = Scaled()
    model = keras.Model(inp, layer(inp))
    assert [w.name for w in layer.weights] == ["scale", "gate", "kernel", "bias"]
    assert len(layer.trainable_weights) == 3 and len(layer.non_trainable_weights) == 1
    assert model.count_params() == 3 + 9 + 15 + 3
    x = rng.normal(size=(4, 5)).astype("float32")
    k, b = layer.inner.get_weights()
    h = x @ k + b
    y = (h * 1.0 - 1.0) / 2.0 + h
    want = -np.maximum(y, 0) + 2 * (1 / (1 + np.exp(-y))) ** 2
    np.testing.assert_allclose(model.predict(x), want, rtol=1e-5, atol=1e-6)


def test_custom_layer_shape_error_names_the_layer():
    class Bad(layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(7, 2))

        def call(self, x):
            return ops.matmul(x, self.w)

    with pytest.raises(ValueError, match=r"Layer 'bad' \(Bad\).*inner dimensions differ.*\(None, 4\)"):
        Bad()(keras.Input((4,)))


def test_eager_layer_call_on_numpy(rng):
    layer = layers.Dense(3, activation="relu")
    x = rng.normal(size=(2, 4)).astype("float32")
    y = layer(x)
    w, b = layer.get_weights()
    np.testing.assert_allclose(y, np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-6)


def test_ops_eager_and_shapes(rng):
    a = rng.normal(size=(2, 3)).astype("float32")
    np.testing.assert_allclose(ops.softmax(a), np.exp(a) / np.exp(a).sum(-1, keepdims=True), rtol=1e-6)
    assert ops.reshape(a, (3, -1)).shape == (3, 2)
    np.testing.assert_array_equal(ops.concatenate([a, a], axis=1), np.concatenate([a, a], 1))
    np.testing.assert_array_equal(ops.transpose(a), a.T)
    np.testing.assert_allclose(ops.sum(a, axis=0), a.sum(0), rtol=1e-6)
    np.testing.assert_array_equal(ops.tile(a, (1, 2)), np.tile(a, (1, 2)))
    np.testing.assert_array_equal(ops.getitem(a, (slice(None), 1)), a[:, 1])
    np.testing.assert_array_equal(ops.where(ops.greater(a, 0.0), a, 0.0), np.where(a > 0, a, 0))


def test_ops_follow_keras_on_integers_and_defaults(rng):
    # Keras: true division and means of integers are float32, a Python float makes an integer tensor float,
    # argmax without an axis indexes the flattened tensor, tile pads short repeats on the left (as NumPy)
    i = np.array([[1, 2], [4, 7]], dtype="int32")
    for got, want in [(ops.divide(i, 2), i / 2), (ops.mean(i, axis=1), [1.5, 5.5]), (ops.mean(i), 3.5),
                      (ops.multiply(i, 0.5), i * 0.5), (ops.add(i, 0.5), i + 0.5), (ops.divide(i, i), i / i)]:
        assert np.asarray(got).dtype == np.float32
        np.testing.assert_array_equal(got, np.asarray(want, dtype="float32"))
    assert ops.add(i, 1).dtype == np.int32  # (an int stays an int)
    for f, ref in [(ops.tanh, np.tanh), (ops.exp, np.exp), (ops.sqrt, np.sqrt)]:  # real-valued functions: float32
        np.testing.assert_allclose(f(np.abs(i)), ref(np.abs(i)).astype("float32"), rtol=1e-6)
        assert f(i).dtype == np.float32
    a, m = np.arange(3, dtype="float32"), np.arange(6, dtype="float32").reshape(3, 2)
    for x1, x2 in [(a, m), (m.T, a), (a, a)]:  # NumPy's 1-D operands: row, column, dot
        np.testing.assert_array_equal(ops.matmul(x1, x2), np.matmul(x1, x2))
        assert np.shape(ops.matmul(x1, x2)) == np.matmul(x1, x2).shape
    x = rng.normal(size=(2, 3, 4)).astype("float32")
    assert int(ops.argmax(x)) == int(np.argmax(x)) and ops.argmax(x, keepdims=True).shape == (1, 1, 1)
    np.testing.assert_array_equal(ops.argmax(x, axis=1, keepdims=True), np.argmax(x, axis=1)[:, None])
    for reps in [(2, 1), 3, (2, 1, 1, 3)]:
        np.testing.assert_array_equal(ops.tile(x, reps), np.tile(x, reps))
    y = rng.normal(size=(2, 3, 4)).astype("float32")
    assert int(ops.argmin(y)) == int(np.argmin(y))
    np.testing.assert_array_equal(ops.argmin(y, axis=1), np.argmin(y, axis=1))
    ids = np.array([[0, 2], [3, 1]])
    np.testing.assert_array_equal(ops.one_hot(ids, 3), (ids[..., None] == np.arange(3)).astype("float32"))  # 3: zeros
    assert ops.one_hot(ids, 3, axis=1).shape == (2, 3, 2)
    for parts in (2, [1, 3]):
        for got, want in zip(ops.split(y, parts, axis=2), np.split(y, parts, axis=2)):
            np.testing.assert_array_equal(got, want)
    inp = keras.Input((2,), dtype="int32")  # the same in a compiled model
    model = keras.Model(inp, [ops.divide(inp, 2), inp * 0.5])
    for out in model.predict(i):
        np.testing.assert_array_equal(out, i / 2)


def test_sublayers_in_a_list_are_tracked(rng):
    class Stack(layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.blocks = [layers.Dense(4, activation="relu"), layers.Dense(2)]

        def call(self, x):
            for block in self.blocks:
                x = block(x)
            return x

    inp = keras.Input((3,))
    stack = Stack()
    model = keras.Model(inp, stack(inp))
    assert model.count_params() == 3 * 4 + 4 + 4 * 2 + 2
    x = rng.normal(size=(2, 3)).astype("float32")
    (k0, b0), (k1, b1) = (b.get_weights() for b in stack.blocks)
    np.testing.assert_allclose(model.predict(x), np.maximum(x @ k0 + b0, 0) @ k1 + b1, rtol=1e-5, atol=1e-6)


def test_conv_and_pool_ops_match_the_layers(rng):
    x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
    conv = layers.Conv2D(6, 3, strides=2, padding="same", use_bias=False)
    y = conv(x)
    np.testing.assert_allclose(ops.conv(x, conv.kernel.numpy(), strides=2, padding="same"), y, rtol=1e-5, atol=1e-5)
    tconv = layers.Conv2DTranspose(3, 3, strides=2, use_bias=False)
    ty = tconv(y)
    np.testing.assert_allclose(ops.conv_transpose(y, tconv.kernel.numpy(), strides=2), ty, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ops.max_pool(x, 3, strides=2), layers.MaxPooling2D(3, 2)(x))
    np.testing.assert_allclose(ops.average_pool(x, 2, padding="same"), layers.AveragePooling2D(2, padding="same")(x),
                               rtol=1e-6)


def test_a_layer_that_makes_a_mask_is_honoured_one_that_returns_none_is_not(rng):
    # Keras: a custom layer's compute_mask reaches the layers after it (GlobalAveragePooling1D averages the
    # unmasked steps); one whose compute_mask returns None leaves no mask
    class MakeMask(layers.Layer):
        def call(self, x):
            return x * 1.0

        def compute_mask(self, x, mask=None):
            return ops.greater(ops.max(ops.abs(x), axis=-1), 0.0)

    class NoMask(MakeMask):
        def compute_mask(self, x, mask=None):
            return None

    x = rng.normal(size=(2, 5, 2)).astype("float32")
    x[0, 3:] = 0
    for layer, expected in ((MakeMask(), np.stack([x[0, :3].mean(0), x[1].mean(0)])), (NoMask(), x.mean(1))):
        inp = keras.Input((5, 2))
        model = keras.Model(inp, layers.GlobalAveragePooling1D()(layer(inp)))
        np.testing.assert_allclose(model.predict(x), expected, rtol=1e-5, atol=1e-6)


def test_a_variable_assigned_in_call_is_written_by_the_step():
    # Keras: a non-trainable weight assigned in call (a step counter) changes with every training step
    class Counter(layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], 2), initializer="ones", name="w")
            self.n = self.add_weight(shape=(), initializer="zeros", trainable=False, name="n")

        def call(self, x, training=None):
            if training:
                self.n.assign(self.n + 1.0)
            return ops.matmul(x, self.w)

    inp = keras.Input((4,))
    counter = Counter(name="c")
    model = keras.Model(inp, counter(inp))
    model.compile(keras.optimizers.SGD(0.01), "mse")
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 2), "float32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    assert float(counter.n) == 4.0
    model.predict(x, verbose=0)
    model(x, training=True)  # an eager training-mode call writes it too
    assert float(counter.n) == 5.0
    counter.n.assign_add(2.0)
    counter.n.assign_sub(1.0)
    assert float(counter.n) == 6.0


def test_multi_head_attention_matches_its_formula_and_refuses_explicit_masks(rng):
    q_in = keras.Input((4, 6))
    mha = layers.MultiHeadAttention(num_heads=2, key_dim=3)
    out, scores = mha(q_in, q_in, use_causal_mask=True, return_attention_scores=True)
    model = keras.Model(q_in, [out, scores])
    x = rng.normal(size=(2, 4, 6)).astype("float32")
    got, got_scores = model.predict(x, verbose=0)
    wq, bq, wk, bk, wv, bv, wo, bo = mha.get_weights()  # Keras's layouts: (6, 2, 3) ... (2, 3, 6)
    q = np.einsum("btd,dhk->bthk", x, wq) + bq
    k = np.einsum("btd,dhk->bthk", x, wk) + bk
    v = np.einsum("btd,dhk->bthk", x, wv) + bv
    logits = np.einsum("bqhk,bshk->bhqs", q / np.sqrt(3), k) + np.where(np.tril(np.ones((4, 4))), 0, -1e9)
    p = np.exp(logits - logits.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    want = np.einsum("bhqs,bshv->bqhv", p, v)
    np.testing.assert_allclose(got_scores, p, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, np.einsum("bqhv,hvd->bqd", want, wo) + bo, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="query_mask= is not supported by graphc yet"):
        layers.MultiHeadAttention(2, 3)(q_in, q_in, query_mask=np.ones((1, 4), bool))


def test_add_loss_is_in_the_loss_evaluate_reports(rng):
    # Keras: a layer's add_loss(...) in call joins the compiled loss (fit minimizes it, evaluate reports it);
    # tests/train_cases.py's added_losses checks a training epoch against Keras
    class Penalty(layers.Layer):
        def call(self, x):
            self.add_loss(0.5 * ops.mean(ops.square(x)))
            return x

    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(1)(Penalty()(inp)))
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    mse = np.mean((model.predict(x, verbose=0) - y) ** 2)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), mse + 0.5 * np.mean(x ** 2), rtol=1e-5)
    with pytest.raises(ValueError, match=r"Layer 'penalty\w*': add_loss\(\) can only be called from inside call\(\)"):
        Penalty().add_loss(1.0)
