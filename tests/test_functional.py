"""Functional API: graphs of layer calls, shared layers, nesting, multi-IO, layer order, predict."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers


def _mlp(n_in=8):
    inputs = keras.Input(shape=(n_in,))
    h = layers.Dense(6, activation="relu")(inputs)
    return keras.Model(inputs, layers.Dense(3)(h))


def _np_dense(x, layer, act=lambda v: v):
    w, b = layer.get_weights()
    return act(x @ w + b)


def test_input_is_symbolic_with_none_batch():
    x = keras.Input(shape=(32, 32, 3))
    assert x.shape == (None, 32, 32, 3) and x.dtype == "float32"
    assert keras.Input(shape=(4,), batch_size=8).shape == (8, 4)
    assert keras.Input(shape=(None,), dtype="int32").dtype == "int32"


def test_predict_matches_numpy_and_any_batch_size(rng):
    model = _mlp()
    d1, d2 = model.layers[1], model.layers[2]
    for n in (1, 7, 40):
        x = rng.normal(size=(n, 8)).astype("float32")
        want = _np_dense(_np_dense(x, d1, lambda v: np.maximum(v, 0)), d2)
        np.testing.assert_allclose(model.predict(x, batch_size=16), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model(x), want, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.predict_on_batch(x), want, rtol=1e-5, atol=1e-6)


def test_shared_layer_is_one_set_of_weights(rng):
    a, b = keras.Input(shape=(4,), name="a"), keras.Input(shape=(4,), name="b")
    shared = layers.Dense(5, name="shared")
    out = layers.add([shared(a), shared(b)])
    model = keras.Model([a, b], out)
    assert model.count_params() == 25
    assert len(shared._inbound_nodes) == 2
    xa, xb = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    want = _np_dense(xa, shared) + _np_dense(xb, shared)
    np.testing.assert_allclose(model.predict([xa, xb]), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict({"a": xa, "b": xb}), want, rtol=1e-5, atol=1e-6)


def test_nested_models_and_ensemble(rng):
    m1, m2 = _mlp(), _mlp()
    inputs = keras.Input(shape=(8,))
    model = keras.Model(inputs, layers.average([m1(inputs), m2(inputs)]))
    assert [type(l).__name__ for l in model.layers] == ["InputLayer", "Functional", "Functional", "Average"]
    x = rng.normal(size=(5, 8)).astype("float32")
    np.testing.assert_allclose(model.predict(x), (m1.predict(x) + m2.predict(x)) / 2, rtol=1e-5, atol=1e-6)
    assert model.count_params() == m1.count_params() * 2


def test_sequential_wrapped_in_functional_model_dcgan_style(rng):
    gen = keras.Sequential()
    gen.add(layers.Dense(12, activation="relu", input_dim=4))
    gen.add(layers.Reshape((2, 2, 3)))
    gen.add(layers.Activation("tanh"))
    noise = keras.Input(shape=(4,))
    model = keras.Model(noise, gen(noise))
    assert model.output.shape == (None, 2, 2, 3)
    z = rng.normal(size=(3, 4)).astype("float32")
    np.testing.assert_allclose(model.predict(z), gen.predict(z), rtol=1e-6)
    want = np.tanh(np.maximum(z @ gen.layers[0].get_weights()[0] + gen.layers[0].get_weights()[1], 0))
    np.testing.assert_allclose(model.predict(z), want.reshape(3, 2, 2, 3), rtol=1e-5, atol=1e-6)


def test_multi_output_lists_and_dicts(rng):
    inputs = keras.Input(shape=(6,), name="x")
    h = layers.Dense(4, activation="relu")(inputs)
    a, b = layers.Dense(1, name="age")(h), layers.Dense(3, activation="softmax", name="income")(h)
    model = keras.Model(inputs, [a, b])
    assert model.output_names == ["age", "income"]
    out = model.predict(rng.normal(size=(5, 6)))
    assert isinstance(out, list) and out[0].shape == (5, 1) and out[1].shape == (5, 3)
    np.testing.assert_allclose(out[1].sum(-1), 1, rtol=1e-6)
    dmodel = keras.Model({"x": inputs}, {"age": a, "income": b})
    dout = dmodel.predict({"x": rng.normal(size=(2, 6))})
    assert set(dout) == {"age", "income"} and dout["income"].shape == (2, 3)


def test_feature_extraction_from_intermediate_outputs(rng):
    model = _mlp()
    features = keras.Model(inputs=model.input, outputs=[layer.output for layer in model.layers])
    x = rng.normal(size=(2, 8)).astype("float32")
    outs = features.predict(x)
    assert [o.shape for o in outs] == [(2, 8), (2, 6), (2, 3)]
    np.testing.assert_allclose(outs[0], x)
    np.testing.assert_allclose(outs[-1], model.predict(x), rtol=1e-6)


def test_layers_ordered_by_depth_like_keras():
    """Seed 003's shared feature extractor: Keras lists interp21, interp22, interp1, interp23."""
    inputs = keras.Input(shape=(12,), name="input")
    extract = layers.Dense(8, name="lstm1")(inputs)
    interp1 = layers.Dense(10, activation="relu", name="interp1")(extract)
    interp21 = layers.Dense(64, activation="relu", name="interp21")(extract)
    interp22 = layers.Dense(32, activation="relu", name="interp22")(interp21)
    interp23 = layers.Dense(16, activation="relu", name="interp23")(interp22)
    merge = layers.concatenate([interp1, interp23], name="merge")
    output = layers.Dense(10, activation="softmax", name="output")(merge)
    model = keras.Model(inputs, output)
    assert [l.name for l in model.layers] == ["input", "lstm1", "interp21", "interp22", "interp1",
                                              "interp23", "merge", "output"]
    # get_weights follows the same order
    assert [w.shape for w in model.get_weights()][2:4] == [(8, 64), (64,)]


def test_get_layer_and_accessors():
    model = _mlp()
    assert model.get_layer("dense") is model.layers[1]
    assert model.get_layer(index=2) is model.layers[2]
    with pytest.raises(ValueError, match="No such layer: 'nope'"):
        model.get_layer("nope")
    assert model.inputs == [model.input] and model.outputs == [model.output]
    assert model.layers[1].input is model.input
    assert model.layers[1].output_shape == (None, 6)


def test_automatic_names_follow_keras():
    a = layers.Dense(2)
    b = layers.Dense(2)
    c = layers.GlobalMaxPooling2D() if hasattr(layers, "GlobalMaxPooling2D") else layers.Flatten()
    assert (a.name, b.name) == ("dense", "dense_1")
    assert c.name in ("global_max_pooling2d", "flatten")


def test_set_weights_checks_count_and_shapes():
    model = _mlp()
    w = model.get_weights()
    assert [x.shape for x in w] == [(8, 6), (6,), (6, 3), (3,)]
    model.set_weights([np.ones_like(x) for x in w])
    assert all((x == 1).all() for x in model.get_weights())
    with pytest.raises(ValueError, match="expects 4 weight arrays"):
        model.set_weights(w[:2])
    with pytest.raises(ValueError, match=r"shape \(8, 6\).*\(6, 8\)"):
        model.set_weights([w[0].T] + w[1:])


def test_dense_on_nd_input_acts_on_last_axis(rng):
    inputs = keras.Input(shape=(4, 4, 64))
    dense = layers.Dense(10)
    model = keras.Model(inputs, dense(inputs))
    assert model.output_shape == (None, 4, 4, 10) and dense.count_params() == 650
    x = rng.normal(size=(2, 4, 4, 64)).astype("float32")
    np.testing.assert_allclose(model.predict(x), _np_dense(x, dense), rtol=1e-5, atol=1e-5)


def test_trainable_flag_moves_weights_to_non_trainable():
    model = _mlp()
    model.layers[1].trainable = False
    assert len(model.trainable_weights) == 2 and len(model.non_trainable_weights) == 2
    model.trainable = False
    assert model.trainable_weights == [] and len(model.non_trainable_weights) == 4


def test_ops_on_functional_tensors_become_layers(rng):
    x = keras.Input(shape=(3,))
    y = keras.ops.mean(x * 2.0 + 1.0, axis=-1, keepdims=True)
    model = keras.Model(x, y)
    v = rng.normal(size=(4, 3)).astype("float32")
    np.testing.assert_allclose(model.predict(v), (v * 2 + 1).mean(-1, keepdims=True), rtol=1e-6)



def test_layers_cast_floating_inputs_to_their_dtype_as_keras():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5)).astype("float32")
    inp = keras.Input((5,))
    wide = keras.Model(inp, layers.Dense(2, dtype="float64")(inp))
    with pytest.warns(UserWarning, match="no float64 C lowering for: matmul of layer 'dense"):
        y = wide.predict(x, verbose=0)  # (graphc's C kernels are float32: the NumPy reference computes it)
    kernel, bias = wide.get_weights()
    assert y.dtype == np.float64 and kernel.dtype == np.float64
    np.testing.assert_allclose(y, x.astype(np.float64) @ kernel + bias, rtol=1e-12)
    wide.compile(optimizer="sgd", loss="mse")
    with pytest.warns(UserWarning, match="test step runs on the NumPy reference"):
        np.testing.assert_allclose(wide.evaluate(x, np.zeros((3, 2)), verbose=0), np.mean(y ** 2), rtol=1e-6)
    with pytest.raises(TypeError, match=r"trains float32 weights only; received \['dense.*/kernel \(float64\)"):
        wide.train_on_batch(x, np.zeros((3, 2)))

    inp = keras.Input((5,), dtype="float64")
    narrow = keras.Model(inp, layers.Dense(2)(inp))  # a float32 layer on float64 data: cast down, in C
    y = narrow.predict(x.astype(np.float64), verbose=0)
    kernel, bias = narrow.get_weights()
    assert y.dtype == np.float32 and narrow._programs[None] is not None
    np.testing.assert_allclose(y, x @ kernel + bias, rtol=1e-5, atol=1e-6)


def test_float64_ops_behind_float_kernels_are_refused_by_codegen():
    from graphc.codegen import CodegenError
    from graphc.runtime import compile_graph
    inp = keras.Input((5,), dtype="float64")
    model = keras.Model(inp, layers.Dense(2, dtype="float64")(inp))
    with pytest.raises(CodegenError, match="no float64 C lowering for: matmul"):
        compile_graph(model.build_graph())


def test_a_subclassed_model_without_a_graph_is_refused_with_the_way_to_pass_one(rng):
    class ByCall(keras.Model):  # Keras's subclassing API: graphc compiles graphs, not call() methods
        def __init__(self):
            super().__init__()
            self.dense = layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(TypeError, match=r"ByCall subclasses Model without passing inputs and outputs.*"
                                        r"super\(\).__init__\(inputs=inputs, outputs=outputs\)"):
        ByCall()  # (it failed later, with "'ByCall' object has no attribute '_output_struct'")

    class WithGraph(keras.Model):
        def __init__(self):
            inputs = keras.Input((3,))
            super().__init__(inputs=inputs, outputs=layers.Dense(2, name="d")(inputs))

    model = WithGraph()
    x = rng.normal(size=(4, 3)).astype("float32")
    kernel, bias = model.get_layer("d").get_weights()
    np.testing.assert_allclose(model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5, atol=1e-6)
