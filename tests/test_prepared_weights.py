"""Prepared weights: compiled inference programs pack their Dense, convolution and recurrent kernels once per
set of weights and reuse the packed copies on every call; train steps do so for their Dense kernels, packing the
ones they update again at their end. Whatever changes a weight (set_weights, assign, a training step) must be seen
by the next prediction and the next step."""
import re

import numpy as np
import pytest

import graphc
import graphc.runtime.program as program_module
from graphc.runtime import threads as threads_module
from graphc import layers


def _model():
    inputs = graphc.Input((9, 9, 4))
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv3x3")(inputs)  # 36 products: implicit GEMM
    h = layers.Conv2D(8, 1, name="conv1x1")(h)                                           # a plain GEMM over cells
    h = layers.Flatten()(h)
    h = layers.Dense(12, activation="relu", name="hidden")(h)
    return graphc.Model(inputs, layers.Dense(5, name="out")(h))


def _reference(model, x, monkeypatch):
    with monkeypatch.context() as m:
        m.setenv("GRAPHC_BACKEND", "reference")
        return model.predict_on_batch(x)


def _program(model, x):
    return model._compiled([x])


@pytest.fixture
def data(rng):
    return rng.normal(size=(6, 9, 9, 4)).astype("float32")  # 6 rows for the Dense layers: their blocked path


def test_the_inference_program_packs_its_kernels_once(data):
    model = _model()
    model.predict_on_batch(data)
    program = _program(model, data)
    assert "_prepare(" in program.generated.cdef
    assert program.prepared_bytes() >= 4 * (3 * 3 * 4 * 16 + 4 * 16 + 9 * 9 * 8 * 12)  # the four kernels, packed
    assert model.memory_report(batch_size=6)["prepared_weights_bytes"] == program.prepared_bytes()
    source = program.generated.source
    for layer in ("conv3x3", "conv1x1", "hidden", "out"):
        assert re.search(rf"/\* {layer}: (conv|dense) kernel, packed for (the|its) GEMM", source), layer


def test_predictions_follow_every_change_of_the_weights(data, rng, monkeypatch):
    model = _model()
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    model.set_weights([0.1 * rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    kernel = model.get_layer("conv3x3").kernel
    kernel.assign(0.1 * rng.normal(size=kernel.shape))
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)

    model.compile(optimizer=graphc.optimizers.SGD(1e-3), loss="mse")
    model.train_on_batch(data, np.ones((6, 5), "float32"))  # (its first step also makes the optimizer's variables)
    np.testing.assert_allclose(model.predict_on_batch(data), _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)
    before = model.predict_on_batch(data)
    model.train_on_batch(data, np.ones((6, 5), "float32"))  # writes the weights in place, in C
    after = model.predict_on_batch(data)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, _reference(model, data, monkeypatch), rtol=1e-4, atol=1e-5)


def test_the_packed_copies_are_what_a_call_reads(data, rng, monkeypatch):
    """With the weights' version frozen, a changed kernel is not re-packed, so the prediction is the old one:
    the calls read the packed copies, and the version is what keeps them fresh."""
    model = _model()
    old = model.predict_on_batch(data)
    monkeypatch.setattr(program_module, "weights_version", lambda: -1)
    model.predict_on_batch(data)  # packs once more, under the frozen version
    hidden = model.get_layer("hidden").kernel
    hidden.assign(hidden.numpy() * 3.0)
    np.testing.assert_allclose(model.predict_on_batch(data), old, rtol=1e-6)
    monkeypatch.undo()
    assert not np.allclose(model.predict_on_batch(data), old)


def _train_program(model):
    programs = [s.program for key, s in model._steps.items() if key[0] and s.program]
    assert len(programs) == 1
    return programs[0]


def test_a_training_step_keeps_its_dense_kernels_packed(data):
    """A train step packs only its Dense kernels (the copies it can derive again on its threads) and, at its end,
    packs again those it has just updated, for the next step's forward pass."""
    model = _model()
    model.compile(optimizer="adam", loss="mse")
    model.train_on_batch(data, np.zeros((6, 5), "float32"))
    program = _train_program(model)
    source = program.generated.source
    assert program.prepared_bytes() >= 4 * (9 * 9 * 8 * 12 + 12 * 5)
    assert model.memory_report(batch_size=6, training=True)["prepared_weights_bytes"] == program.prepared_bytes()
    assert not re.search(r"conv\w*: conv kernel, packed", source)  # convolutions pack in the step, as before
    refresh = source[source.index("/* the updated weights' prepared copies"):]
    for layer in ("hidden", "out"):
        assert re.search(rf"/\* {layer}: dense kernel, packed for the GEMM \*/\s+float \*dst = .*\s+"
                         r"graphc_sgemm_pack_b_threads\(", refresh), layer


def _train_both(model, rng, steps, between=None):
    """``steps`` train steps of ``model`` in C and of a copy on the NumPy reference, from the same weights and
    with the same layers frozen; ``between(model)`` (if given) runs on both after each step."""
    twin = _model()
    twin.set_weights(model.get_weights())
    for mine, theirs in zip(model.layers, twin.layers):
        theirs.trainable = mine.trainable
    x = rng.normal(size=(6, 9, 9, 4)).astype("float32")
    y = rng.normal(size=(6, 5)).astype("float32")
    for m in (model, twin):
        m.compile(optimizer=graphc.optimizers.Adam(0.05), loss="mse")
    for _ in range(steps):
        model.train_on_batch(x, y)
        with pytest.MonkeyPatch.context() as m:
            m.setenv("GRAPHC_BACKEND", "reference")
            twin.train_on_batch(x, y)
        if between is not None:
            between(model)
            between(twin)
    for got, want in zip(model.get_weights(), twin.get_weights()):
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=2e-5)


def test_training_steps_read_the_kernels_the_last_step_packed(rng):
    """Each step's forward pass reads the packed kernels: were they not packed again after the last update, the
    step would train on stale weights and drift from the reference."""
    _train_both(_model(), rng, steps=4)


def test_training_steps_follow_weights_changed_between_them(rng):
    """A weight changed between steps (assign, set_weights, a callback restoring weights) is packed again."""
    def scale_hidden(model):
        kernel = model.get_layer("hidden").kernel
        kernel.assign(kernel.numpy() * 0.5)
    _train_both(_model(), rng, steps=3, between=scale_hidden)


def test_a_frozen_dense_layer_stays_packed_across_steps(rng):
    """A frozen kernel is not updated, so its packed copy stays valid step after step."""
    model = _model()
    model.get_layer("hidden").trainable = False
    frozen = model.get_layer("hidden").kernel.numpy()
    _train_both(model, rng, steps=3)
    np.testing.assert_array_equal(model.get_layer("hidden").kernel.numpy(), frozen)


def test_training_steps_pack_the_kernels_only_once(data, rng):
    """Steady training re-packs no kernel on the Python side: the step keeps its copies current, and
    the optimizer's step counter (another weight) does not touch them. A change of one of its weights does."""
    model = _model()
    model.compile(optimizer="adam", loss="mse")
    y = np.zeros((6, 5), "float32")
    model.train_on_batch(data, y)
    program = _train_program(model)
    calls = []
    prepare = program._prepare
    program._prepare = lambda *args: (calls.append(1), prepare(*args))[1]
    for _ in range(3):
        model.train_on_batch(data, y)
    assert calls == []
    model.predict_on_batch(data)  # another program: its own copies
    model.train_on_batch(data, y)
    assert calls == []
    model.get_layer("out").bias.assign(np.ones(5))
    model.train_on_batch(data, y)
    assert calls == [1]


def test_a_step_on_arrays_of_its_own_keeps_the_copies_it_is_given(data, rng):
    """Model.profile(training=True) runs the train step on copies of the weights, with prepared copies of
    those (program.prepared_copies): the step keeps them current, so three steps on the copies give the
    weights three real steps give; copies prepared from other weights are what the step reads."""
    model = _model()
    model.compile(optimizer=graphc.optimizers.SGD(0.05), loss="mse")  # (the same inputs at every step)
    y = rng.normal(size=(6, 5)).astype("float32")
    model.train_on_batch(data, y)
    program = _train_program(model)
    step = next(s for key, s in model._steps.items() if key[0])
    arrays = model._step_inputs(step, True, [data], [y], [None], 0)

    def on_copies(prepared_from=None):
        copies = {id(k): np.array(k.value) for k in program.param_keys}
        params = [copies[id(k)] for k in program.param_keys]
        outputs = [None] * (len(step.graph.outputs) - len(step.updated)) + [copies[id(v)] for v in step.updated]
        prepared = program.prepared_copies(params if prepared_from is None else prepared_from(params))
        for _ in range(3):
            program.run(arrays, params, outputs=outputs, prepared=prepared)
        return [copies[id(v)] for v in step.updated]

    got = on_copies()
    stale = on_copies(lambda params: [p * 0.5 for p in params])
    for _ in range(3):
        model.train_on_batch(data, y)
    want = [v.value for v in step.updated]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    assert not all(np.allclose(g, w, rtol=1e-5, atol=1e-6) for g, w in zip(stale, want))


def test_weights_change_only_through_assign(data):
    """The packed copies would go stale behind an in-place write, so a weight's value is read-only."""
    kernel = _model().get_layer("hidden").kernel
    with pytest.raises(ValueError, match="read-only"):
        kernel.value[0, 0] = 1.0
    with pytest.raises(ValueError, match="read-only"):
        np.asarray(kernel)[...] = 0.0
    kernel.assign(np.zeros(kernel.shape))
    assert not kernel.value.any()


def _conv_float64(x, w, bias, pad):
    """A 3x3 stride-1 convolution + bias + ReLU by direct loops in float64 (independent of graphc)."""
    x = np.pad(x.astype("float64"), ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = x.shape[1] - 2, x.shape[2] - 2
    y = sum(np.tensordot(x[:, r:r + oh, s:s + ow], w[r, s].astype("float64"), axes=([3], [0]))
            for r in range(3) for s in range(3))
    return np.maximum(y + bias, 0.0)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_prepared_3x3_kernels_take_winograd_from_few_tiles(rng, threads):
    """With its kernel prepared (transformed once per set of weights), a 3x3 stride-1 convolution runs by
    Winograd from 16 tiles of 2x2 output cells (batch 1 of a 9x9 output) instead of 128; one block of tiles
    splits its output channels between the threads, in micro-panels of 16 (40 channels: 16 + 24, or 16 each
    and a short last one for three threads). Odd outputs (edge tiles) and the pooled variant, at batches 1-3,
    against float64 loops; and a prepared call against one that packs nothing (the implicit GEMM), whose
    block splits its 16 positions instead."""
    inputs = graphc.Input((11, 11, 32))
    same = layers.Conv2D(40, 3, padding="same", activation="relu", name="same")(inputs)       # 11x11: 36 tiles
    pooled = layers.MaxPooling2D(2)(layers.Conv2D(32, 3, activation="relu", name="valid")(same))  # 9x9 -> 4x4: 16
    model = graphc.Model(inputs, [same, pooled])
    graphc.set_num_threads(threads)
    try:
        for batch in (1, 2, 3):
            x = rng.uniform(-1, 1, (batch, 11, 11, 32)).astype("float32")
            got_same, got_pooled = model.predict_on_batch(x)
            w1, b1 = model.get_layer("same").get_weights()
            w2, b2 = model.get_layer("valid").get_weights()
            want_same = _conv_float64(x, w1, b1, 1)
            want_valid = _conv_float64(want_same, w2, b2, 0)
            want_pooled = want_valid[:, :8, :8].reshape(batch, 4, 2, 4, 2, 32).max(axis=(2, 4))
            np.testing.assert_allclose(got_same, want_same, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(got_pooled, want_pooled, rtol=1e-4, atol=1e-4)
            program = _program(model, x)
            unprepared = program.run([x], [w.value for w in program.param_keys])  # explicit params: nothing prepared
            np.testing.assert_allclose(unprepared[0], got_same, rtol=1e-4, atol=1e-5)
    finally:
        graphc.set_num_threads(threads_module.default_num_threads())


@pytest.mark.parametrize("threads", [2, 3])
def test_recurrent_kernels_prepared_for_the_threads_that_share_the_units(rng, monkeypatch, threads):
    """At batch 1 the threads share a recurrent layer's units, and at every step each multiplies h by its
    columns of the recurrent kernel. Prepared (packed once per set of weights, graphc_rnn_pack_recurrent),
    the kernel is read in place of a per-call packing of those columns where every thread's units are the same
    number of whole 64-unit panels: 2 threads, an LSTM(128) and a SimpleRNN(256); 3 threads, a GRU(192). The
    others (and an LSTM(100) for both) pack per call. Against the reference backend, against a call without
    prepared weights, and after a weight changes."""
    inputs = graphc.Input((16, 6))
    seq = layers.LSTM(128, return_sequences=True, name="lstm")(inputs)
    gru = layers.GRU(192, go_backwards=True, name="gru")(seq)
    simple = layers.SimpleRNN(256, name="simple")(seq)
    odd = layers.LSTM(100, name="odd")(inputs)
    model = graphc.Model(inputs, [gru, simple, odd])
    x = rng.uniform(-1, 1, (1, 16, 6)).astype("float32")
    graphc.set_num_threads(threads)
    try:
        got = model.predict_on_batch(x)
        program = _program(model, x)
        for layer in ("lstm", "gru", "simple", "odd"):
            assert f"/* {layer}: recurrent kernel, packed for the per-step products" in program.generated.source
        for g, w in zip(got, _reference(model, x, monkeypatch)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
        for g, w in zip(got, program.run([x], [w.value for w in program.param_keys])):  # nothing prepared
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
        for layer in ("lstm", "gru"):
            recurrent = model.get_layer(layer).recurrent_kernel
            recurrent.assign(recurrent.numpy()[::-1])
        changed = model.predict_on_batch(x)
        assert not np.allclose(changed[0], got[0])
        for g, w in zip(changed, _reference(model, x, monkeypatch)):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    finally:
        graphc.set_num_threads(threads_module.default_num_threads())
