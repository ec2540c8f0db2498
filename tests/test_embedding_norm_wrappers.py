"""Embedding, BatchNormalization, LayerNormalization and TimeDistributed against NumPy and Keras 3 facts."""
import warnings

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.serialization import serialize_object, get_from_registry

RTOL = ATOL = 1e-5
rng = np.random.default_rng(0)


def rand(*shape):
    return rng.standard_normal(shape).astype("float32")


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL)


# --- Embedding ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [1, 3])
def test_embedding_lookup_matches_numpy_in_a_model(batch):
    ids = graphc.Input(shape=(None,), dtype="int32")
    emb = layers.Embedding(7, 4)
    model = graphc.Model(ids, emb(ids))
    table = rand(7, 4)
    emb.set_weights([table])
    x = rng.integers(0, 7, size=(batch, 5)).astype("int32")
    out = model.predict(x)
    assert out.shape == (batch, 5, 4)
    close(out, table[x])
    x2 = rng.integers(0, 7, size=(batch, 2)).astype("int32")  # variable length: another sequence length
    close(model.predict(x2), table[x2])


def test_embedding_float_ids_are_truncated_to_int_like_keras():
    inp = graphc.Input(shape=(None,))  # float32, as in seed 002's ticket model
    emb = layers.Embedding(10, 3)
    model = graphc.Model(inp, emb(inp))
    table = emb.get_weights()[0]
    x = np.array([[0.0, 1.9, 9.0], [3.2, 4.0, 5.99]], "float32")
    close(model.predict(x), table[np.array([[0, 1, 9], [3, 4, 5]])])


def test_embedding_any_rank_and_eager_call():
    emb = layers.Embedding(6, 2)
    x = rng.integers(0, 6, size=(2, 3, 4))
    out = emb(x)
    table = emb.get_weights()[0]
    assert out.shape == (2, 3, 4, 2)
    close(out, table[x])
    close(emb(np.array([5, 0])), table[[5, 0]])


@pytest.mark.parametrize("bad", [10, 11, -1])
def test_embedding_out_of_range_ids_raise(bad):
    inp = graphc.Input(shape=(3,), dtype="int32")
    model = graphc.Model(inp, layers.Embedding(10, 2)(inp))
    x = np.array([[1, 2, 3], [4, bad, 0]], "int32")
    with pytest.raises(ValueError, match=rf"id {bad} at position \[1, 1\].*valid ids are 0 to 9"):
        model.predict(x)


def test_embedding_param_counts_from_seeds():
    inp = graphc.Input(shape=(None,))
    out = layers.Embedding(10000, 64)(inp)
    assert out.shape == (None, None, 64)
    assert graphc.Model(inp, out).count_params() == 640_000

    shared = layers.Embedding(1000, 128)
    a = graphc.Input(shape=(None,), dtype="int32")
    b = graphc.Input(shape=(None,), dtype="int32")
    model = graphc.Model([a, b], layers.concatenate([shared(a), shared(b)], axis=1))
    assert model.count_params() == 128_000
    assert len(model.weights) == 1
    table = shared.get_weights()[0]
    xa, xb = np.array([[1, 2]]), np.array([[999, 0, 5]])
    close(model.predict([xa, xb]), np.concatenate([table[xa], table[xb]], axis=1))


def test_embedding_options_and_config():
    with pytest.raises(ValueError, match="input_dim must be a positive integer"):
        layers.Embedding(0, 2)
    with pytest.warns(UserWarning, match="input_length"):
        emb = layers.Embedding(50, 8, input_length=20, name="words")
    emb.build()
    w = emb.weights[0]
    assert w.path == "words/embeddings" and w.shape == (50, 8)
    assert np.abs(w.numpy()).max() <= 0.05  # 'uniform' is RandomUniform(-0.05, 0.05)
    config = emb.get_config()
    assert config["input_dim"] == 50 and config["output_dim"] == 8 and config["mask_zero"] is False
    assert config["embeddings_initializer"]["class_name"] == "RandomUniform"
    clone = get_from_registry("layers", serialize_object(emb))
    assert isinstance(clone, layers.Embedding) and clone.output_dim == 8


def test_embedding_weights_argument_sets_the_table():
    table = rand(4, 3)
    emb = layers.Embedding(4, 3, weights=[table], trainable=False)
    close(emb(np.array([[3, 1]])), table[[[3, 1]]])
    assert emb.trainable_weights == [] and len(emb.non_trainable_weights) == 1


# --- BatchNormalization -------------------------------------------------------------------------------------
def numpy_bn(x, mean, var, gamma, beta, axis, eps):
    shape = [1] * x.ndim
    shape[axis] = -1
    r = lambda v: v.reshape(shape)  # noqa: E731
    return (x - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)


def bn_weights(c):
    return [rand(c), rand(c), rand(c), np.abs(rand(c)) + 0.1]


@pytest.mark.parametrize("batch", [1, 3])
def test_batchnorm_inference_uses_moving_statistics(batch):
    inp = graphc.Input(shape=(5, 6))
    bn = layers.BatchNormalization(epsilon=0.01)
    model = graphc.Model(inp, bn(inp))
    gamma, beta, mean, var = bn_weights(6)
    bn.set_weights([gamma, beta, mean, var])
    x = rand(batch, 5, 6)
    close(model.predict(x), numpy_bn(x, mean, var, gamma, beta, -1, 0.01))


def test_batchnorm_on_axis_1_and_without_center_scale():
    bn = layers.BatchNormalization(axis=1, center=False, scale=False)
    x = rand(3, 4, 2, 2)
    bn.build(x.shape)
    assert [w.name for w in bn.weights] == ["moving_mean", "moving_variance"]
    mean, var = rand(4), np.abs(rand(4)) + 0.5
    bn.set_weights([mean, var])
    close(bn(x), numpy_bn(x, mean, var, np.ones(4), np.zeros(4), 1, 1e-3))


def test_batchnorm_seed_param_counts_and_weight_layout():
    inp = graphc.Input(shape=(7, 7, 128))
    bn = layers.BatchNormalization(momentum=0.8)
    model = graphc.Model(inp, bn(inp))
    assert model.count_params() == 512
    assert sum(w.numpy().size for w in model.non_trainable_weights) == 256
    assert sum(w.numpy().size for w in model.trainable_weights) == 256
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    gamma, beta, mean, var = bn.get_weights()
    assert (gamma == 1).all() and (beta == 0).all() and (mean == 0).all() and (var == 1).all()
    config = bn.get_config()
    assert (config["momentum"], config["epsilon"], config["axis"], config["center"]) == (0.8, 0.001, -1, True)


def test_batchnorm_training_uses_batch_statistics():
    bn = layers.BatchNormalization()
    x = rand(3, 4) * 3 + 1
    bn.build(x.shape)
    gamma, beta, mean, var = bn_weights(4)
    bn.set_weights([gamma, beta, mean, var])
    expected = numpy_bn(x, x.mean(0), x.var(0), gamma, beta, -1, 1e-3)
    close(bn(x, training=True), expected)
    mean, var = _moved(mean, var, x, 0.99)  # (the training-mode call moved the statistics, as in Keras)
    close(bn(x, training=False), numpy_bn(x, mean, var, gamma, beta, -1, 1e-3))
    bn.trainable = False  # a frozen BatchNormalization runs in inference mode (Keras 3)
    close(bn(x, training=True), numpy_bn(x, mean, var, gamma, beta, -1, 1e-3))


def test_batchnorm_rejects_unknown_channel_axis():
    with pytest.raises(ValueError, match="axis -1 of the input must have a known size"):
        layers.BatchNormalization()(graphc.Input(shape=(None,)))


# --- LayerNormalization -------------------------------------------------------------------------------------
def numpy_ln(x, axes, eps, gamma=1.0, beta=0.0):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("batch", [1, 3])
def test_layernorm_last_axis(batch):
    inp = graphc.Input(shape=(5, 8))
    ln = layers.LayerNormalization()
    model = graphc.Model(inp, ln(inp))
    gamma, beta = rand(8), rand(8)
    ln.set_weights([gamma, beta])
    x = rand(batch, 5, 8) * 2 + 3
    close(model.predict(x), numpy_ln(x, (-1,), 1e-3, gamma, beta))
    assert [w.name for w in ln.weights] == ["gamma", "beta"] and model.count_params() == 16


def test_layernorm_axis_list_and_options():
    ln = layers.LayerNormalization(axis=[1, 2], epsilon=1e-5)
    x = rand(3, 4, 5)
    out = ln(x)
    assert ln.gamma.shape == (4, 5) and ln.beta.shape == (4, 5)
    gamma, beta = rand(4, 5), rand(4, 5)
    ln.set_weights([gamma, beta])
    close(ln(x), numpy_ln(x, (1, 2), 1e-5, gamma[None], beta[None]))
    close(out, numpy_ln(x, (1, 2), 1e-5))
    assert ln.get_config()["axis"] == [1, 2]

    plain = layers.LayerNormalization(center=False, scale=False)
    close(plain(x), numpy_ln(x, (-1,), 1e-3))
    assert plain.weights == []

    with pytest.warns(UserWarning, match="rms_scaling"):
        rms = layers.LayerNormalization(rms_scaling=True)
    rms.build(x.shape)
    assert [w.name for w in rms.weights] == ["gamma"]
    g = rand(5)
    rms.set_weights([g])
    close(rms(x), x / np.sqrt(x.var(-1, keepdims=True) + 1e-3) * g)  # Keras's (deprecated) arithmetic


# --- TimeDistributed -----------------------------------------------------------------------------------------
def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("batch", [1, 3])
def test_timedistributed_dense_matches_numpy(batch):
    inp = graphc.Input(shape=(6, 4))
    dense = layers.Dense(3, activation="softmax")
    td = layers.TimeDistributed(dense)
    model = graphc.Model(inp, td(inp))
    kernel, bias = dense.get_weights()
    x = rand(batch, 6, 4)
    close(model.predict(x), softmax(x @ kernel + bias))
    assert td.weights[0] is dense.weights[0]


def test_timedistributed_seed_003_shape_and_params():
    inp = graphc.Input(shape=(784, 64))
    out = layers.TimeDistributed(layers.Dense(10, activation="softmax"), name="output2")(inp)
    model = graphc.Model(inp, out)
    assert out.shape == (None, 784, 10)
    assert model.count_params() == 650
    lines = []
    model.summary(print_fn=lines.append)
    assert any("output2 (TimeDistributed)" in line and "(None, 784, 10)" in line and "650" in line
               for line in "\n".join(lines).splitlines())


def test_timedistributed_over_sequential_model():
    inner = graphc.Sequential([layers.Dense(8, activation="relu", input_shape=(12,)), layers.Dense(5)])
    inp = graphc.Input(shape=(4, 12))
    model = graphc.Model(inp, layers.TimeDistributed(inner)(inp))
    (k1, b1, k2, b2) = inner.get_weights()
    x = rand(3, 4, 12)
    close(model.predict(x), np.maximum(x @ k1 + b1, 0) @ k2 + b2)
    assert model.count_params() == inner.count_params() == 12 * 8 + 8 + 8 * 5 + 5


def test_timedistributed_over_functional_model_seed_001():
    i = graphc.Input(shape=(784,))
    h = layers.Dense(32, activation="relu")(i)
    inner = graphc.Model(i, layers.Dense(10, activation="softmax")(h))
    sequences = graphc.Input(shape=(20, 784))
    processed = layers.TimeDistributed(inner)(sequences)
    assert processed.shape == (None, 20, 10)
    model = graphc.Model(sequences, processed)
    assert model.count_params() == 784 * 32 + 32 + 32 * 10 + 10
    k1, b1, k2, b2 = inner.get_weights()
    x = rand(2, 20, 784)
    close(model.predict(x), softmax(np.maximum(x @ k1 + b1, 0) @ k2 + b2))


def test_timedistributed_errors_name_the_layer():
    with pytest.raises(ValueError, match="'td'.*time axis.*known size"):
        layers.TimeDistributed(layers.Dense(2), name="td")(graphc.Input(shape=(None, 3)))
    with pytest.raises(ValueError, match="min_ndim=3"):
        layers.TimeDistributed(layers.Dense(2), name="td2")(graphc.Input(shape=(3,)))
    with pytest.raises(ValueError, match="layer or model instance"):
        layers.TimeDistributed("dense")


def test_timedistributed_config_round_trip():
    td = layers.TimeDistributed(layers.Dense(4, use_bias=False), name="td_cfg")
    config = td.get_config()
    assert config["layer"]["class_name"] == "Dense" and config["layer"]["config"]["units"] == 4
    clone = layers.TimeDistributed.from_config(config)
    assert clone.name == "td_cfg" and isinstance(clone.layer, layers.Dense) and clone.layer.use_bias is False
    out = clone(graphc.Input(shape=(3, 2)))
    assert out.shape == (None, 3, 4) and clone.count_params() == 8


def test_timedistributed_passes_training_to_the_inner_layer():
    bn = layers.BatchNormalization()
    td = layers.TimeDistributed(bn)
    x = rand(4, 2, 3) * 2 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = td(x, training=True)
    # Keras 3 calls the layer once per timestep, so batch statistics are per timestep.
    expected = np.stack([numpy_bn(x[:, t], x[:, t].mean(0), x[:, t].var(0), np.ones(3), np.zeros(3), -1, 1e-3)
                         for t in range(2)], axis=1)
    close(out, expected)
    mean, var = np.zeros(3), np.ones(3)
    for t in range(2):  # the training-mode call moved the statistics once per timestep, in order
        mean, var = _moved(mean, var, x[:, t], 0.99)
    close(td(x), numpy_bn(x, mean, var, np.ones(3), np.zeros(3), -1, 1e-3))  # inference: the moved ones


def test_time_distributed_is_one_call_on_the_folded_batch():
    """Time is folded into the batch: the wrapped Dense appears once in the IR, not once per step."""
    import graphc as keras
    from graphc import layers
    x = keras.Input((50, 8))
    model = keras.Model(x, layers.TimeDistributed(layers.Dense(3))(x))
    graph = model.build_graph()
    assert [op.kind for op in graph.ops].count("matmul") == 1
    v = np.random.default_rng(0).normal(size=(2, 50, 8)).astype("float32")
    k, b = model.layers[1].get_weights()
    np.testing.assert_allclose(model.predict(v), v @ k + b, rtol=1e-5, atol=1e-5)


def _moved(mean, var, x, momentum):
    """Keras's moving-average rule for one training-mode call on x (channels last)."""
    axes = tuple(range(x.ndim - 1))
    x64 = x.astype(np.float64)
    return mean * momentum + x64.mean(axes) * (1 - momentum), var * momentum + x64.var(axes) * (1 - momentum)


@pytest.mark.parametrize("how", ["model", "sequential", "layer"])
def test_batchnorm_called_in_training_mode_updates_its_moving_statistics(how):
    # Keras: model(x, training=True) outside fit normalizes with the batch's statistics and moves the moving
    # ones; later inference calls use the moved statistics.
    bn = layers.BatchNormalization(momentum=0.9, epsilon=0.01)
    if how == "model":
        inp = graphc.Input(shape=(5, 6))
        call = graphc.Model(inp, bn(inp))
    elif how == "sequential":
        call = graphc.Sequential([graphc.Input(shape=(5, 6)), bn])
    else:
        bn.build((None, 5, 6))
        call = bn
    gamma, beta, mean, var = bn_weights(6)
    bn.set_weights([gamma, beta, mean, var])
    x = rand(4, 5, 6) * 3 + 1
    y = call(x, training=True)
    batch_mean, batch_var = x.astype(np.float64).mean((0, 1)), x.astype(np.float64).var((0, 1))
    close(y, numpy_bn(x, batch_mean, batch_var, gamma, beta, -1, 0.01))  # the batch's own statistics
    mean1, var1 = _moved(mean, var, x, 0.9)
    close(bn.get_weights()[2], mean1)
    close(bn.get_weights()[3], var1)
    close(bn.get_weights()[0], gamma)  # the trainable weights stay
    x2 = rand(2, 5, 6)
    close(call(x2), numpy_bn(x2, mean1, var1, gamma, beta, -1, 0.01))  # inference sees the moved statistics
    if how != "layer":
        close(call.predict(x2), numpy_bn(x2, mean1, var1, gamma, beta, -1, 0.01))


def test_batchnorm_frozen_or_in_inference_mode_keeps_its_moving_statistics():
    inp = graphc.Input(shape=(6,))
    bn = layers.BatchNormalization()
    model = graphc.Model(inp, bn(inp))
    weights = bn_weights(6)
    bn.set_weights(weights)
    x = rand(4, 6) * 3 + 1
    model(x)
    model(x, training=False)
    bn.trainable = False  # Keras: a frozen BatchNormalization runs in inference mode
    model(x, training=True)
    for got, want in zip(bn.get_weights(), weights):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["sequential", "functional"])
def test_freezing_a_nested_model_freezes_its_batchnorm_in_fit(kind):
    # Transfer learning: base.trainable = False reaches every layer inside (Keras), so the base's
    # BatchNormalization runs in inference mode in fit and its moving statistics stay.
    if kind == "sequential":
        base = graphc.Sequential([graphc.Input(shape=(3,)), layers.Dense(3, name="d"),
                                  layers.BatchNormalization(name="bn")])
    else:
        i = graphc.Input(shape=(3,))
        base = graphc.Model(i, layers.BatchNormalization(name="bn")(layers.Dense(3, name="d")(i)))
    inp = graphc.Input(shape=(3,))
    model = graphc.Model(inp, layers.Dense(1, name="head")(base(inp)))
    base.trainable = False
    assert not base.get_layer("bn").trainable and not base.get_layer("d").trainable
    bn = base.get_layer("bn")
    gamma, beta, mean, var = bn_weights(3)
    bn.set_weights([gamma, beta, mean, var])
    frozen = [w.copy() for w in base.get_weights()]
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    x, y = rand(8, 3) * 3 + 1, rand(8, 1)
    h = x @ base.get_layer("d").get_weights()[0] + base.get_layer("d").get_weights()[1]
    kernel, bias = model.get_layer("head").get_weights()
    pred = numpy_bn(h, mean, var, gamma, beta, -1, 1e-3) @ kernel + bias  # inference-mode statistics
    np.testing.assert_allclose(model.train_on_batch(x, y), ((pred - y) ** 2).mean(), rtol=1e-5)
    for got, want in zip(base.get_weights(), frozen):
        np.testing.assert_array_equal(got, want)
    base.trainable = True  # unfreezing reaches them too
    assert bn.trainable and base.get_layer("d").trainable
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")  # (as Keras, a new optimizer for them)
    model.train_on_batch(x, y)
    assert not np.array_equal(bn.get_weights()[2], mean)
