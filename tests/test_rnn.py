"""SimpleRNN, LSTM, GRU: Keras 3 weights, shapes, param counts and numbers (vs a step-by-step NumPy RNN)."""
import os
import sys

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.ir import GraphBuilder, ShapeError, TensorType, reference

TOL = dict(rtol=1e-5, atol=1e-5)
TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
import golden_cases  # noqa: E402  (model builders shared with the Keras golden generator)


# --- an independent NumPy implementation: float64, one gate at a time, one timestep at a time -------------
def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def numpy_rnn(kind, x, weights, units, *, use_bias=True, go_backwards=False, reset_after=True, states=None,
              activation=np.tanh, recurrent_activation=sigmoid):
    """Returns (outputs in processing order (N, T, u), final states)."""
    x = x.astype(np.float64)
    kernel, recurrent = (w.astype(np.float64) for w in weights[:2])
    n, steps, _ = x.shape
    k = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    bias = weights[2].astype(np.float64) if use_bias else np.zeros((2, k * units) if kind == "gru" and reset_after
                                                                   else (k * units,))
    h = np.zeros((n, units)) if states is None else states[0].astype(np.float64)
    c = np.zeros((n, units)) if states is None or kind != "lstm" else states[1].astype(np.float64)

    def cols(m, g):
        return m[..., g * units:(g + 1) * units]

    outputs = []
    for t in (range(steps - 1, -1, -1) if go_backwards else range(steps)):
        xt = x[:, t]
        if kind == "simple_rnn":
            h = activation(xt @ kernel + h @ recurrent + bias)
        elif kind == "lstm":
            gate = [xt @ cols(kernel, g) + h @ cols(recurrent, g) + cols(bias, g) for g in range(4)]
            i, f, o = recurrent_activation(gate[0]), recurrent_activation(gate[1]), recurrent_activation(gate[3])
            c = f * c + i * activation(gate[2])
            h = o * activation(c)
        else:
            input_bias, rec_bias = (bias[0], bias[1]) if reset_after else (bias, np.zeros(3 * units))
            z = recurrent_activation(xt @ cols(kernel, 0) + cols(input_bias, 0) + h @ cols(recurrent, 0)
                                     + cols(rec_bias, 0))
            r = recurrent_activation(xt @ cols(kernel, 1) + cols(input_bias, 1) + h @ cols(recurrent, 1)
                                     + cols(rec_bias, 1))
            if reset_after:
                rec_h = r * (h @ cols(recurrent, 2) + cols(rec_bias, 2))
            else:
                rec_h = (r * h) @ cols(recurrent, 2)
            h = z * h + (1 - z) * activation(xt @ cols(kernel, 2) + cols(input_bias, 2) + rec_h)
        outputs.append(h)
    return np.stack(outputs, axis=1), ([h, c] if kind == "lstm" else [h])


KINDS = {  # test id -> (numpy kind, layer factory, reset_after)
    "simple_rnn": ("simple_rnn", layers.SimpleRNN, True),
    "lstm": ("lstm", layers.LSTM, True),
    "gru": ("gru", layers.GRU, True),
    "gru_reset_before": ("gru", lambda *a, **kw: layers.GRU(*a, reset_after=False, **kw), False),
}


def random_weights(layer, rng, scale=0.6):
    """Random values for every weight (biases too, so a misplaced bias shows)."""
    weights = [rng.uniform(-scale, scale, w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    return weights


def make(test_kind, units, features, rng, **kwargs):
    kind, factory, reset_after = KINDS[test_kind]
    layer = factory(units, **kwargs)
    layer.build((None, None, features))
    return kind, layer, random_weights(layer, rng), reset_after


# --- numbers ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("test_kind", list(KINDS))
def test_layer_matches_numpy(test_kind, batch, use_bias, go_backwards, return_sequences, rng):
    kind, layer, weights, reset_after = make(test_kind, 4, 3, rng, use_bias=use_bias, go_backwards=go_backwards,
                                             return_sequences=return_sequences)
    assert len(weights) == (3 if use_bias else 2)
    x = rng.uniform(-1, 1, (batch, 6, 3)).astype("float32")
    got = layer(x)
    seq, (h, *_) = numpy_rnn(kind, x, weights, 4, use_bias=use_bias, go_backwards=go_backwards,
                             reset_after=reset_after)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, seq if return_sequences else h, **TOL)


@pytest.mark.parametrize("test_kind", list(KINDS))
def test_return_state_and_initial_state_eager(test_kind, rng):
    kind, layer, weights, reset_after = make(test_kind, 5, 2, rng, return_sequences=True, return_state=True,
                                             go_backwards=True)
    x = rng.uniform(-1, 1, (3, 4, 2)).astype("float32")
    states = [rng.uniform(-1, 1, (3, 5)).astype("float32") for _ in range(2 if kind == "lstm" else 1)]
    got = layer(x, initial_state=states)
    seq, final = numpy_rnn(kind, x, weights, 5, go_backwards=True, reset_after=reset_after, states=states)
    assert isinstance(got, list) and len(got) == 1 + len(final)
    np.testing.assert_allclose(got[0], seq, **TOL)
    for g, want in zip(got[1:], final):
        np.testing.assert_allclose(g, want, **TOL)
    # Without initial_state the states start at zero, so the results differ.
    assert not np.allclose(layer(x)[1], got[1])


def test_single_tensor_initial_state_for_gru(rng):
    kind, layer, weights, _ = make("gru", 3, 2, rng)
    x = rng.uniform(-1, 1, (2, 5, 2)).astype("float32")
    h0 = rng.uniform(-1, 1, (2, 3)).astype("float32")
    np.testing.assert_allclose(layer(x, initial_state=h0), numpy_rnn(kind, x, weights, 3, states=[h0])[1][0], **TOL)


def test_go_backwards_equals_forward_on_reversed_input(rng):
    x = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    back = layers.LSTM(4, go_backwards=True, return_sequences=True)
    fwd = layers.LSTM(4, return_sequences=True)
    back.build((None, 5, 3))
    fwd.build((None, 5, 3))
    fwd.set_weights(random_weights(back, rng))
    # Keras returns the sequence in processing order: step 0 has seen only the last timestep.
    np.testing.assert_allclose(back(x), fwd(x[:, ::-1]), **TOL)


@pytest.mark.parametrize("activation,recurrent_activation,np_act,np_ract", [
    ("relu", "sigmoid", lambda v: np.maximum(v, 0), sigmoid),
    (None, "hard_sigmoid", lambda v: v, lambda v: np.clip(v / 6 + 0.5, 0, 1)),
    ("softsign", "tanh", lambda v: v / (1 + np.abs(v)), np.tanh),
])
def test_other_activations(activation, recurrent_activation, np_act, np_ract, rng):
    x = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    for test_kind in ("lstm", "gru"):
        kind, layer, weights, _ = make(test_kind, 4, 3, rng, activation=activation,
                                       recurrent_activation=recurrent_activation)
        want = numpy_rnn(kind, x, weights, 4, activation=np_act, recurrent_activation=np_ract)[1][0]
        np.testing.assert_allclose(layer(x), want, **TOL)
    kind, layer, weights, _ = make("simple_rnn", 4, 3, rng, activation=activation)
    np.testing.assert_allclose(layer(x), numpy_rnn(kind, x, weights, 4, activation=np_act)[1][0], **TOL)


def test_seed_length_lstm_matches_numpy(rng):
    """The seed's LSTM(128) over 784 timesteps of one feature (its default initialisation)."""
    layer = layers.LSTM(128)
    x = rng.uniform(0, 1, (2, 784, 1)).astype("float32")
    got = layer(x)
    np.testing.assert_allclose(got, numpy_rnn("lstm", x, layer.get_weights(), 128)[1][0], **TOL)


# --- functional API ---------------------------------------------------------------------------------------
def test_functional_initial_state_and_return_state(rng):
    x = graphc.Input(shape=(6, 3), name="seq")
    h0, c0 = graphc.Input(shape=(4,), name="h0"), graphc.Input(shape=(4,), name="c0")
    lstm = layers.LSTM(4, return_state=True, name="enc")
    out, h, c = lstm(x, initial_state=[h0, c0])
    assert [t.shape for t in (out, h, c)] == [(None, 4)] * 3
    assert lstm._inbound_nodes[0].input_tensors == [x, h0, c0]  # the states are recorded inputs
    model = graphc.Model([x, h0, c0], [out, layers.Dense(2)(h), c])
    weights = random_weights(lstm, rng)
    xs = rng.uniform(-1, 1, (3, 6, 3)).astype("float32")
    states = [rng.uniform(-1, 1, (3, 4)).astype("float32") for _ in range(2)]
    got_out, _, got_c = model.predict([xs, *states])
    _, (want_h, want_c) = numpy_rnn("lstm", xs, weights, 4, states=states)
    np.testing.assert_allclose(got_out, want_h, **TOL)
    np.testing.assert_allclose(got_c, want_c, **TOL)
    kinds = [op.kind for op in model.build_graph().ops]
    assert kinds.count("lstm") == 1  # one whole-sequence op, not one op per timestep


def test_decoder_takes_encoder_states(rng):
    """The classic seq2seq wiring: encoder states become the decoder's initial_state."""
    enc_in, dec_in = graphc.Input(shape=(5, 3)), graphc.Input(shape=(4, 2))
    _, h, c = layers.LSTM(6, return_state=True)(enc_in)
    dec_seq = layers.LSTM(6, return_sequences=True)(dec_in, initial_state=[h, c])
    model = graphc.Model([enc_in, dec_in], dec_seq)
    assert model.output_shape == (None, 4, 6)
    enc, dec = [layer for layer in model.layers if isinstance(layer, layers.LSTM)]
    we, wd = random_weights(enc, rng), random_weights(dec, rng)
    a = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    b = rng.uniform(-1, 1, (2, 4, 2)).astype("float32")
    _, states = numpy_rnn("lstm", a, we, 6)
    np.testing.assert_allclose(model.predict([a, b]), numpy_rnn("lstm", b, wd, 6, states=states)[0], **TOL)


def test_variable_length_sequences(rng):
    x = graphc.Input(shape=(None, 8))
    lstm = layers.LSTM(4, return_sequences=True)
    model = graphc.Model(x, layers.GRU(3)(lstm(x)))
    assert lstm.output.shape == (None, None, 4) and model.output_shape == (None, 3)
    gru = model.layers[-1]
    wl, wg = random_weights(lstm, rng), random_weights(gru, rng)
    for steps in (3, 9):
        xs = rng.uniform(-1, 1, (2, steps, 8)).astype("float32")
        seq, _ = numpy_rnn("lstm", xs, wl, 4)
        np.testing.assert_allclose(model.predict(xs), numpy_rnn("gru", seq, wg, 3)[1][0], **TOL)


def test_sequential(rng):
    model = graphc.Sequential([layers.SimpleRNN(5, return_sequences=True, input_shape=(4, 3)), layers.GRU(2)])
    assert model.output_shape == (None, 2)
    w1, w2 = random_weights(model.layers[0], rng), random_weights(model.layers[1], rng)
    xs = rng.uniform(-1, 1, (3, 4, 3)).astype("float32")
    seq, _ = numpy_rnn("simple_rnn", xs, w1, 5)
    np.testing.assert_allclose(model.predict(xs), numpy_rnn("gru", seq, w2, 2)[1][0], **TOL)


# --- param counts, weights, initialisation -------------------------------------------------------------------
def test_seed_param_counts_and_shapes():
    x = graphc.Input(shape=(784, 1))
    lstm1 = layers.LSTM(128)
    assert lstm1(x).shape == (None, 128) and lstm1.count_params() == 66560
    extract = layers.LSTM(64, return_sequences=True)
    seq = extract(x)
    assert seq.shape == (None, 784, 64) and extract.count_params() == 16896
    class11 = layers.LSTM(32)
    assert class11(seq).shape == (None, 32) and class11.count_params() == 12416
    emb = graphc.Input(shape=(None, 64))  # 64-d embeddings of a variable-length text
    for layer, count in [(layers.LSTM(128), 98816), (layers.LSTM(32), 12416),
                         (layers.GRU(32), 9408), (layers.GRU(32, reset_after=False), 9312),
                         (layers.SimpleRNN(32), 3104), (layers.SimpleRNN(32, use_bias=False), 3072)]:
        assert layer(emb).shape == (None, 32 if layer.units == 32 else 128)
        assert layer.count_params() == count, type(layer).__name__


def test_seed_model_summary():
    x = graphc.Input(shape=(784, 1), name="input")
    hidden = layers.Dense(128, activation="relu", name="hidden1")(layers.LSTM(128, name="lstm1")(x))
    model = graphc.Model(x, layers.Dense(10, activation="softmax", name="output")(hidden))
    lines = []
    model.summary(print_fn=lines.append)
    row = next(line for line in lines if line.startswith("lstm1 (LSTM)"))
    assert row.split()[2:] == ["(None,", "128)", "66560"]
    assert "Total params: 84,362" in lines


def test_weight_layout_names_and_initialisation():
    lstm = layers.LSTM(3)
    lstm.build((None, 5, 2))
    assert [w.shape for w in lstm.weights] == [(2, 12), (3, 12), (12,)]
    assert [w.path for w in lstm.weights] == ["lstm/lstm_cell/kernel", "lstm/lstm_cell/recurrent_kernel",
                                              "lstm/lstm_cell/bias"]
    np.testing.assert_array_equal(lstm.bias.numpy(), [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0])  # forget gate: ones
    no_ufb = layers.LSTM(3, unit_forget_bias=False)
    no_ufb.build((None, 5, 2))
    np.testing.assert_array_equal(no_ufb.bias.numpy(), np.zeros(12))
    gru, gru_v1 = layers.GRU(3), layers.GRU(3, reset_after=False)
    gru.build((None, 5, 2))
    gru_v1.build((None, 5, 2))
    assert [w.shape for w in gru.weights] == [(2, 9), (3, 9), (2, 9)]
    assert [w.shape for w in gru_v1.weights] == [(2, 9), (3, 9), (9,)]
    rnn = layers.SimpleRNN(4, use_bias=False)
    rnn.build((None, 5, 2))
    assert [w.name for w in rnn.weights] == ["kernel", "recurrent_kernel"]
    u = rnn.recurrent_kernel.numpy()
    np.testing.assert_allclose(u @ u.T, np.eye(4), atol=1e-5)  # orthogonal recurrent kernel


def test_config_round_trip():
    lstm = layers.LSTM(7, return_sequences=True, go_backwards=True, dropout=0.2, recurrent_dropout=0.1, name="l")
    config = lstm.get_config()
    assert set(config) == {
        "name", "trainable", "dtype", "return_sequences", "return_state", "go_backwards", "stateful", "unroll",
        "zero_output_for_mask", "units", "activation", "recurrent_activation", "use_bias", "kernel_initializer",
        "recurrent_initializer", "bias_initializer", "unit_forget_bias", "kernel_regularizer",
        "recurrent_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint",
        "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "seed"}
    assert (config["activation"], config["recurrent_activation"], config["dropout"]) == ("tanh", "sigmoid", 0.2)
    assert config["recurrent_initializer"]["class_name"] == "Orthogonal"
    assert layers.LSTM.from_config(config).get_config() == config
    gru_config = layers.GRU(2, reset_after=False).get_config()
    assert gru_config["reset_after"] is False and "unit_forget_bias" not in gru_config
    assert layers.GRU.from_config(gru_config).reset_after is False
    rnn_config = layers.SimpleRNN(2, activation=None).get_config()
    assert rnn_config["activation"] == "linear" and "recurrent_activation" not in rnn_config
    assert layers.SimpleRNN.from_config(rnn_config).get_config() == rnn_config


def test_dropout_and_unroll_do_not_change_inference(rng):
    x = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    plain, other = layers.GRU(4), layers.GRU(4, dropout=0.5, recurrent_dropout=0.5, unroll=True)
    plain.build((None, 5, 3))
    other.build((None, 5, 3))
    other.set_weights(random_weights(plain, rng))
    np.testing.assert_allclose(other(x), plain(x), **TOL)


# --- errors ----------------------------------------------------------------------------------------------------
def test_2d_input_is_rejected():
    with pytest.raises(ValueError, match=r'"encoder".*expected ndim=3, found ndim=2'):
        layers.LSTM(4, name="encoder")(graphc.Input(shape=(8,)))


def test_wrong_feature_count_after_build():
    lstm = layers.LSTM(4)
    lstm(graphc.Input(shape=(5, 3)))
    with pytest.raises(ValueError, match=r'"lstm".*axis -1 of the input to have value 3'):
        lstm(graphc.Input(shape=(5, 6)))


def test_wrong_initial_state_shape():
    x = graphc.Input(shape=(5, 3))
    with pytest.raises(ValueError, match=r"LSTM 'dec': initial_state\[0\] must have shape \(None, 4\), "
                                         r"received \(None, 5\)"):
        layers.LSTM(4, name="dec")(x, initial_state=[graphc.Input(shape=(5,)), graphc.Input(shape=(4,))])
    with pytest.raises(ValueError, match=r"LSTM 'lstm' expects 2 initial state tensor\(s\).*received 1"):
        layers.LSTM(4)(x, initial_state=[graphc.Input(shape=(4,))])
    with pytest.raises(ValueError, match=r"GRU 'gru': initial_state\[0\] must have shape \(2, 3\), received \(4, 3\)"):
        layers.GRU(3)(np.zeros((2, 5, 3)), initial_state=np.zeros((4, 3)))


def test_unsupported_options_fail_loudly():
    with pytest.raises(ValueError, match="LSTM 'lstm': stateful=True is not supported"):
        layers.LSTM(4, stateful=True)
    with pytest.raises(ValueError, match=r"GRU 'g': activation='softmax' is not supported.*'tanh'"):
        layers.GRU(4, activation="softmax", name="g")
    with pytest.raises(ValueError, match=r"recurrent_activation='<lambda>' is not supported"):
        layers.LSTM(4, recurrent_activation=lambda v: v)
    with pytest.raises(ValueError, match="units must be a positive integer"):
        layers.SimpleRNN(0)
    with pytest.raises(ValueError, match="kernel_constraint='non_neg' is not supported"):
        layers.LSTM(4, kernel_constraint="non_neg")
    with pytest.raises(ValueError, match="use_cudnn"):
        layers.GRU(4, use_cudnn="yes")
    with pytest.raises(ValueError, match=r"cannot unroll an RNN whose number of timesteps is unknown"):
        layers.SimpleRNN(2, unroll=True)(graphc.Input(shape=(None, 3)))
    with pytest.raises(ValueError, match=r"LSTM 'm': the mask must have shape \(batch, timesteps\)"):
        layers.LSTM(2, name="m")(np.zeros((1, 3, 2)), mask=np.ones((1, 4), bool))


# --- the IR ops ------------------------------------------------------------------------------------------------
def _types(*shapes):
    return [TensorType(s) for s in shapes]


def test_op_shape_rules():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, None, 3)))
    kernel, rec, bias = (b.input(n, TensorType(s)) for n, s in [("k", (3, 16)), ("r", (4, 16)), ("b", (16,))])
    out, h, c = b.emit("lstm", [x, kernel, rec, bias], units=4, activation="tanh", recurrent_activation="sigmoid",
                       use_bias=True, return_sequences=True, go_backwards=False)
    assert (out.shape, h.shape, c.shape) == ((None, None, 4), (None, 4), (None, 4))
    gru = b.emit("gru", [x, b.input("k3", TensorType((3, 12))), b.input("r3", TensorType((4, 12)))],
                 units=4, use_bias=False, return_sequences=False, reset_after=True)
    assert [v.shape for v in gru] == [(None, 4), (None, 4)]
    with pytest.raises(ShapeError, match=r"lstm: kernel must have shape \(3, 16\), received \(5, 16\)"):
        b.emit("lstm", [x, b.input("k5", TensorType((5, 16))), rec, bias], units=4, use_bias=True,
               return_sequences=False)
    with pytest.raises(ShapeError, match=r"gru: bias must have shape \(2, 12\), received \(12,\)"):
        b.emit("gru", [x, b.input("k3b", TensorType((3, 12))), b.input("r3b", TensorType((4, 12))),
                       b.input("b12", TensorType((12,)))], units=4, use_bias=True, return_sequences=False)
    with pytest.raises(ShapeError, match="simple_rnn takes .* 3 or 4 inputs, received 5"):
        b.emit("simple_rnn", [x, kernel, rec, bias, bias], units=4, use_bias=False, return_sequences=False)
    with pytest.raises(ShapeError, match="activation='softmax' is not an elementwise op"):
        b.emit("simple_rnn", [x, b.input("k4", TensorType((3, 4))), b.input("r4", TensorType((4, 4)))],
               units=4, activation="softmax", use_bias=False, return_sequences=False)


def test_op_reference_zero_states_by_default(rng):
    x = rng.uniform(-1, 1, (2, 5, 3)).astype("float32")
    k, r, bias = (rng.uniform(-1, 1, s).astype("float32") for s in [(3, 16), (4, 16), (16,)])
    attrs = dict(units=4, use_bias=True, return_sequences=True)
    b = GraphBuilder()
    ins = [b.input(n, TensorType(a.shape)) for n, a in zip("xkrb", (x, k, r, bias))]
    zeros = [b.input(n, TensorType((2, 4))) for n in ("h", "c")]
    plain = b.emit("lstm", ins, **attrs)
    explicit = b.emit("lstm", ins + zeros, **attrs)
    graph = b.finish(list(plain) + list(explicit))
    feeds = {v.id: a for v, a in zip(graph.inputs, (x, k, r, bias, np.zeros((2, 4)), np.zeros((2, 4))))}
    results = reference.run(graph, feeds, {})
    for a, e in zip(results[:3], results[3:]):
        np.testing.assert_array_equal(a, e)
    np.testing.assert_array_equal(results[0][:, -1], results[1])  # last output is the final h


# --- real Keras 3 (TensorFlow) results, written by tools/make_goldens.py -----------------------------------
KERAS_CASES = ["simple_rnn", "simple_rnn_state_backwards", "lstm", "lstm_return_sequences_stacked",
               "lstm_return_state", "lstm_go_backwards", "gru", "gru_reset_after_false", "gru_state_backwards",
               "seed003_rnn"]


@pytest.mark.parametrize("name", KERAS_CASES)
def test_matches_keras_goldens(name):
    data = np.load(os.path.join(TESTS_DIR, "goldens", f"{name}.npz"))
    model = golden_cases.CASES[name](graphc)
    model.set_weights([data[f"w{i}"] for i in range(len(model.weights))])
    for batch in golden_cases.BATCH_SIZES:
        inputs = [data[f"in{j}_b{batch}"] for j in range(len(model.inputs))]
        outputs = model.predict(inputs if len(inputs) > 1 else inputs[0])
        outputs = outputs if isinstance(outputs, list) else [outputs]
        assert len(outputs) == sum(k.startswith("out") and k.endswith(f"_b{batch}") for k in data.files)
        for j, got in enumerate(outputs):
            np.testing.assert_allclose(got, data[f"out{j}_b{batch}"], **TOL, err_msg=f"{name} output {j}")


@pytest.mark.parametrize("cls", [layers.LSTM, layers.GRU, layers.SimpleRNN])
def test_input_dropout_in_training_is_one_mask_per_sample_and_feature(cls, rng):
    # Keras: in training, dropout= drops input features with one mask per sample, shared by all steps. The
    # same draw as a Dropout(noise_shape=(batch, 1, features)) with the same seed: both models train alike
    def model(dropout_first):
        inp = graphc.Input((5, 3))
        x = layers.Dropout(0.4, noise_shape=(None, 1, 3), seed=7)(inp) if dropout_first else inp
        rnn = cls(4, dropout=0.0 if dropout_first else 0.4, seed=7, name="rnn")
        m = graphc.Model(inp, layers.Dense(1, name="out")(rnn(x)))
        m.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
        return m

    a, b = model(False), model(True)
    b.set_weights(a.get_weights())
    x, y = rng.normal(size=(8, 5, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    np.testing.assert_allclose(a.train_on_batch(x, y), b.train_on_batch(x, y), rtol=1e-6)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    plain = model(False)
    plain.get_layer("rnn").dropout = 0.0  # (without the mask the step differs: the mask is applied)
    plain.set_weights(a.get_weights())
    assert not np.isclose(plain.train_on_batch(x, y), a.train_on_batch(x, y))
