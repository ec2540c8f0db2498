"""C lowerings of gather (Embedding), batch_norm and layer_norm against the NumPy reference, the pass folding
inference BatchNormalization into the matmul/conv before it, and compiled models against the reference."""
import warnings

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.passes import fold_batch_norm
from graphc.runtime import compile_graph

from c_check import Weights, check


def positive(b, v):
    """A variance-like vector (> 0) made from a parameter."""
    return b.emit("add", [b.emit("abs", [v]), b.constant(np.float32(0.25))])


# --- gather -------------------------------------------------------------------------------------------------
def test_gather_int32_int64_and_float_ids(rng):
    def build(b, x, p):
        ids32, ids64, fids, tables = x
        table = p((10, 4))
        picks = b.constant(np.array([[9, 0, 3], [3, 3, 1]], "int32"))
        return [b.emit("gather", [table, ids32], axis=0),                                  # (None, 3, 4)
                b.emit("gather", [p((10, 3)), ids64], axis=0),                             # (None, 2, 2, 3)
                b.emit("gather", [table, b.emit("cast", [fids], dtype="int32")], axis=0),  # as Embedding does
                b.emit("gather", [tables, picks], axis=1),  # rows of axis 1 of a per-sample table: (None, 2, 3, 2)
                b.emit("gather", [p((10, 2048)), ids64], axis=0)]  # large enough for the parallel copy
    check(build, [(3,), (2, 2), (4,), (10, 2)], rng, dtypes=["int32", "int64", "float32", "float32"],
          low=0.0, high=9.99)


def _gather_program():
    b = GraphBuilder()
    ids = b.input("ids", TensorType((None, 3), "int32"))
    table = Weights(np.arange(20, dtype="float32").reshape(5, 4))
    b.scope = "embedding"
    out = b.emit("gather", [b.param(table, "embeddings", TensorType((5, 4))), ids], axis=0)
    return compile_graph(b.finish([out])), table


@pytest.mark.parametrize("bad", [5, -1, 2 ** 31 - 1, -2 ** 31])
def test_gather_rejects_out_of_range_ids_without_reading(bad):
    program, table = _gather_program()
    ids = np.array([[0, 1, 2], [3, bad, 4]], dtype="int32")
    with pytest.raises(RuntimeError, match=rf"error code 2: an id is out of range for an Embedding .*layer "
                                           rf"'embedding': gather: id {bad} at position \[1, 1\] .* valid ids are "
                                           rf"0 to 4 \(1 invalid id"):
        program.run([ids], [table.value])
    good = np.array([[4, 0, 1]], dtype="int32")
    np.testing.assert_array_equal(program.run([good], [table.value])[0], table.value[good])  # still usable


def test_embedding_model_bad_ids_raise_in_c_as_in_the_reference(monkeypatch):
    x = graphc.Input(shape=(4,))  # float ids: Embedding casts them to int32 first
    model = graphc.Model(x, layers.Embedding(7, 3, name="words")(x))
    ok = np.array([[0, 6, 2.9, 1]], dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # compiled, no fallback to the NumPy reference
        np.testing.assert_array_equal(model.predict(ok), model.get_weights()[0][[[0, 6, 2, 1]]])
    for bad, shown in ((7.0, 7), (-1.0, -1), (1e12, None)):
        data = np.array([[0, 1, 1, 1], [0, bad, 1, 1]], dtype="float32")
        with pytest.raises(RuntimeError, match=r"out of range for an Embedding .*'words': gather: id "
                                               rf"{shown if shown is not None else '-?[0-9]+'} at position "
                                               r"\[1, 1\].* valid ids are 0 to 6") as compiled:
            model.predict(data)
        assert isinstance(compiled.value, ValueError)  # what the reference raises for the same data
        monkeypatch.setenv("GRAPHC_BACKEND", "reference")
        with pytest.raises(ValueError, match=r"at position \[1, 1\] .* valid ids are 0 to 6"), \
                np.errstate(invalid="ignore"):
            model.predict(data)
        monkeypatch.delenv("GRAPHC_BACKEND")


# --- batch_norm and layer_norm --------------------------------------------------------------------------------
def test_batch_norm_on_any_axis(rng):
    def bn(b, p, x, axis, c, consts=False):
        gamma = b.constant(np.ones(c, "float32")) if consts else p((c,))
        beta = b.constant(np.zeros(c, "float32")) if consts else p((c,))
        return b.emit("batch_norm", [x, p((c,)), positive(b, p((c,))), gamma, beta], axis=axis, epsilon=1e-3)

    def build(b, x, p):
        a, c = x  # (None, 5, 6) and (None, 300, 4, 2)
        return [bn(b, p, a, 2, 6), bn(b, p, a, 1, 5), bn(b, p, a, -1, 6, consts=True),
                bn(b, p, c, 1, 300),    # channels first, more channels than one block of scale/shift
                bn(b, p, c, 3, 2),      # 2400 rows of 2 channels
                bn(b, p, b.emit("reshape", [c], shape=(None, 8)), 1, 8)]  # large enough to run in parallel
    check(build, [(5, 6), (300, 4, 2)], rng)


def test_layer_norm_axes_gamma_layouts_and_rms(rng):
    def build(b, x, p):
        a, big = x  # (None, 4, 6), (None, 64, 128)
        one, zero = b.constant(np.float32(1.0)), b.constant(np.float32(0.0))
        full = b.emit("reshape", [p((4, 6))], shape=(1, 4, 6))
        return [b.emit("layer_norm", [a, p((6,)), p((6,))], axes=(2,), epsilon=1e-3),
                b.emit("layer_norm", [a, full, full], axes=(1, 2), epsilon=1e-5),
                b.emit("layer_norm", [a, p((4, 1)), zero], axes=(1,), epsilon=0.5),  # middle axis: strided lines
                b.emit("layer_norm", [a, one, p((6,))], axes=(-1,), epsilon=1e-3, rms_scaling=True),
                b.emit("layer_norm", [big, p((128,)), p((128,))], axes=(2,), epsilon=1e-3)]  # parallel rows
    check(build, [(4, 6), (64, 128)], rng)


def test_layer_norm_keeps_precision_on_a_large_offset(rng):
    # Values near 1000 with a spread of 0.01: float accumulation of the mean or variance would lose it.
    check(lambda b, x, p: b.emit("layer_norm", [x[0], b.constant(np.float32(1.0)), b.constant(np.float32(0.0))],
                                 axes=(1,), epsilon=1e-6),
          [(256,)], rng, low=1000.0, high=1000.01, atol=1e-3, rtol=1e-3)


def test_layer_norm_on_non_adjacent_axes_is_a_codegen_error(rng):
    from graphc.codegen import CodegenError
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 2, 3, 4)))
    g = b.constant(np.float32(1.0))
    y = b.emit("layer_norm", [x, g, g], axes=(1, 3), epsilon=1e-3)
    with pytest.raises(CodegenError, match=r"layer_norm in C needs adjacent axes, received \(1, 3\)"):
        compile_graph(b.finish([y]))


# --- the folding pass ---------------------------------------------------------------------------------------------
def _bn_inputs(b, p, c):
    return [p((c,)), positive(b, p((c,))), p((c,)), p((c,))]


def _batched_ops(graph):
    return [op.kind for op in graph.ops if op.outputs[0].shape[:1] == (None,)]


def _run(graph, arrays):
    return reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)},
                         {v.id: graph.param_keys[v.id].value for v in graph.params})


def _builder(rng, shapes):
    b = GraphBuilder()
    xs = [b.input(f"x{i}", TensorType((None,) + s)) for i, s in enumerate(shapes)]

    def p(shape):
        return b.param(Weights(rng.uniform(-1, 1, shape).astype("float32")), "w", TensorType(shape))
    return b, xs, p


def test_fold_pass_conv_matmul_conv_transpose(rng):
    b, (img, seq), p = _builder(rng, [(6, 6, 3), (16, 5)])
    h = b.emit("add", [b.emit("conv", [img, p((3, 3, 3, 4))], strides=(1, 1), padding="same", dilation=(1, 1)),
                       p((4,))])
    conv_out = b.emit("relu", [b.emit("batch_norm", [h, *_bn_inputs(b, p, 4)], axis=3, epsilon=1e-3)])
    grouped = b.emit("conv", [conv_out, p((1, 1, 2, 6))], strides=(1, 1), padding="valid", dilation=(1, 1), groups=2)
    grouped = b.emit("batch_norm", [grouped, *_bn_inputs(b, p, 6)], axis=-1, epsilon=0.1)
    t = b.emit("conv_transpose", [grouped, p((2, 2, 3, 6))], strides=(2, 2), padding="valid", output_padding=None,
               dilation=(1, 1))
    t = b.emit("batch_norm", [t, *_bn_inputs(b, p, 3)], axis=3, epsilon=1e-3)
    m = b.emit("add", [p((7,)), b.emit("matmul", [seq, p((5, 7))])])  # the bias first: either operand order
    m = b.emit("batch_norm", [m, *_bn_inputs(b, p, 7)], axis=2, epsilon=1e-3)
    graph = b.finish([t, m])
    folded = fold_batch_norm(graph)
    assert "batch_norm" not in [op.kind for op in folded.ops]
    assert _batched_ops(graph) == ["conv", "add", "batch_norm", "relu", "conv", "batch_norm", "conv_transpose",
                                   "batch_norm", "matmul", "add", "batch_norm"]
    assert _batched_ops(folded) == ["conv", "add", "relu", "conv", "add", "conv_transpose", "add", "matmul", "add"]
    arrays = [rng.uniform(-2, 2, (3, 6, 6, 3)).astype("float32"), rng.uniform(-2, 2, (3, 16, 5)).astype("float32")]
    for got, want in zip(_run(folded, arrays), _run(graph, arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(folded.params) == len(graph.params)  # every weight is still read, at run time


def test_fold_pass_leaves_what_it_cannot_fold(rng):
    b, (img, vec), p = _builder(rng, [(4, 4, 2), (30,)])
    conv = b.emit("conv", [img, p((3, 3, 2, 5))], strides=(1, 1), padding="same", dilation=(1, 1))
    shared = b.emit("batch_norm", [conv, *_bn_inputs(b, p, 5)], axis=3, epsilon=1e-3)  # conv output read twice
    side = b.emit("reduce_sum", [conv], axes=(1, 2))
    wrong_axis = b.emit("batch_norm", [b.emit("conv", [img, p((1, 1, 2, 4))], strides=(1, 1), padding="valid",
                                              dilation=(1, 1)), *_bn_inputs(b, p, 4)], axis=1, epsilon=1e-3)
    pairs = b.emit("reshape", [vec], shape=(None, 5, 6))
    batched_kernel = b.emit("matmul", [pairs, b.emit("transpose", [pairs], perm=(0, 2, 1))])  # (None, 5, 5)
    batched_kernel = b.emit("batch_norm", [batched_kernel, *_bn_inputs(b, p, 5)], axis=2, epsilon=1e-3)
    dense = b.emit("batch_norm", [b.emit("matmul", [vec, p((30, 8))]), *_bn_inputs(b, p, 8)], axis=1, epsilon=1e-3)
    graph = b.finish([shared, side, wrong_axis, batched_kernel, dense])
    assert [op.kind for op in fold_batch_norm(graph).ops] == [op.kind for op in graph.ops]
    # A one-row Dense: its 240-weight kernel is 30x its output, so the default leaves it; it folds on demand.
    every = fold_batch_norm(graph, max_kernel_ratio=None)
    assert [op.kind for op in every.ops].count("batch_norm") == 3
    arrays = [rng.uniform(-2, 2, (2, 4, 4, 2)).astype("float32"), rng.uniform(-2, 2, (2, 30)).astype("float32")]
    for got, want in zip(_run(every, arrays), _run(graph, arrays)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def _reference_predict(monkeypatch, model, x):
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    try:
        return model.predict(x)
    finally:
        monkeypatch.delenv("GRAPHC_BACKEND")


def test_folded_model_follows_set_weights_without_recompiling(rng, monkeypatch):
    x = graphc.Input(shape=(16, 5))
    h = layers.Dense(12)(x)  # 16 rows per sample: its 60-weight kernel folds
    h = layers.BatchNormalization(epsilon=1e-2)(h)
    model = graphc.Model(x, layers.Activation("relu")(h))
    data = rng.uniform(-2, 2, (5, 16, 5)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback to the NumPy reference
        first = model.predict(data)
    np.testing.assert_allclose(first, _reference_predict(monkeypatch, model, data), rtol=1e-5, atol=1e-5)
    (program,) = model._programs.values()
    kinds = [op.kind for op in program.graph.ops]
    assert "batch_norm" not in kinds and kinds.count("matmul") + kinds.count("dense") == 1
    # New weights, statistics included: the compiled model reads them at the next call.
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype("float32") for w in model.get_weights()])
    second = model.predict(data)
    assert list(model._programs.values()) == [program]  # the same compiled code, not a new build
    assert not np.allclose(first, second)
    np.testing.assert_allclose(second, _reference_predict(monkeypatch, model, data), rtol=1e-5, atol=1e-5)


# --- seed models: compiled C against GRAPHC_BACKEND=reference ---------------------------------------------------
def _seed(name):
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
    import seed_models
    return seed_models.SEED_MODELS[name]()


def _compiled_matches_reference(model, arrays, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every op has a C lowering: no fallback to the NumPy reference
        got = model.predict(arrays)
    want = _reference_predict(monkeypatch, model, arrays)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    return got


def test_seed000_dcgan_generator_folds_its_batch_norms(rng, monkeypatch):
    model = _seed("dcgan_generator")
    model.set_weights([w if w.ndim != 1 else rng.uniform(0.5, 1.5, w.shape).astype("float32")
                       for w in model.get_weights()])  # biases, gamma, beta, statistics: no neutral values
    noise = rng.normal(size=(5, 100)).astype("float32")
    first = _compiled_matches_reference(model, noise, monkeypatch)
    _compiled_matches_reference(model, noise[:1], monkeypatch)
    (program,) = model._programs.values()
    kinds = [op.kind for op in program.graph.ops]
    assert "batch_norm" not in kinds and kinds.count("conv_bias_act") == 3  # BN shift + relu in the conv epilogue
    # New statistics after compiling: the same compiled code follows them.
    model.set_weights([w * 1.5 if w.ndim == 1 else w for w in model.get_weights()])
    second = _compiled_matches_reference(model, noise, monkeypatch)
    assert list(model._programs.values()) == [program] and not np.allclose(first, second)


def test_seed002_shared_embedding_and_ticket_model(rng, monkeypatch):
    shared = _seed("shared_embedding_002")
    a, b = rng.integers(0, 1000, (5, 7)).astype("int32"), rng.integers(0, 1000, (5, 3)).astype("int32")
    _compiled_matches_reference(shared, [a, b], monkeypatch)
    _compiled_matches_reference(shared, [a[:1], b[:1]], monkeypatch)
    ticket = _seed("ticket_model_002")  # float32 inputs: the Embeddings cast the ids
    for n in (1, 5):
        title = rng.integers(0, 10000, (n, 6)).astype("float32")
        body = rng.integers(0, 10000, (n, 9)).astype("float32")
        tags = rng.integers(0, 2, (n, 12)).astype("float32")
        _compiled_matches_reference(ticket, [title, body, tags], monkeypatch)
    title[0, 3] = 10000  # the title's Embedding is the model's second ('embedding' is the shared model's)
    with pytest.raises(RuntimeError, match=r"'embedding_1': gather: id 10000 at position \[0, 3\]"):
        ticket.predict([title, body, tags])


def test_seed001_question_answering(rng, monkeypatch):
    model = _seed("question_answering_001")
    for n in (1, 5):
        text = rng.integers(0, 10000, (n, 8)).astype("int32")
        question = rng.integers(0, 10000, (n, 4)).astype("int32")
        _compiled_matches_reference(model, [text, question], monkeypatch)
