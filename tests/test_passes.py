"""Each pass alone: identities, dead code, dense epilogue fusion, memory planning, specialization."""
import numpy as np
import pytest

import graphc as keras
from graphc import layers
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.passes import (eliminate_dead_code, eliminate_identities, fuse_dense_epilogue, plan_memory,
                           simplify, specialize)
from graphc.passes.memory import ALIGN


def _run(graph, feeds):
    params = {v.id: graph.param_keys[v.id].value for v in graph.params}
    return reference.run(graph, {v.id: a for v, a in zip(graph.inputs, feeds)}, params)


def _dense_relu_dropout():
    x = keras.Input((6,))
    h = layers.Dropout(0.5)(layers.Dense(5, activation="relu")(x))
    return keras.Model(x, layers.Dense(3)(h))


def test_dropout_is_removed_at_inference_and_numbers_stay(rng):
    model = _dense_relu_dropout()
    graph = model.build_graph()
    assert "dropout" in [op.kind for op in graph.ops]
    slim = eliminate_identities(graph)
    assert "dropout" not in [op.kind for op in slim.ops]
    x = rng.normal(size=(4, 6)).astype("float32")
    np.testing.assert_allclose(_run(slim, [x])[0], _run(graph, [x])[0])
    assert "dropout" in [op.kind for op in graph.ops]  # the pass made a new graph


def test_dead_code_is_removed():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    used = b.emit("relu", [x])
    b.emit("exp", [x])  # nobody reads it
    g = eliminate_dead_code(b.finish([used]))
    assert [op.kind for op in g.ops] == ["relu"]


def test_dense_relu_dropout_chain_becomes_one_kernel(rng):
    model = _dense_relu_dropout()
    fused = fuse_dense_epilogue(simplify(model.build_graph()))
    assert [(op.kind, op.attrs.get("activation")) for op in fused.ops] == [("dense", "relu"), ("dense", "linear")]
    x = rng.normal(size=(5, 6)).astype("float32")
    np.testing.assert_allclose(_run(fused, [x])[0], model.predict(x), rtol=1e-6, atol=1e-6)


def test_matmul_with_two_readers_is_not_fused():
    x = keras.Input((4,))
    d = layers.Dense(3)
    h = d(x)
    model = keras.Model(x, [layers.Activation("relu")(h), layers.Activation("tanh")(h)])
    kinds = [op.kind for op in fuse_dense_epilogue(simplify(model.build_graph())).ops]
    assert sorted(kinds) == ["dense", "relu", "tanh"]


def test_memory_plan_of_the_seed_mlp_reuses_buffers():
    """Seed 003's MLP: 784 -> 512 -> 216 -> 128 -> 10 (softmax)."""
    inp = keras.Input((784,))
    h = inp
    for units in (512, 216, 128):
        h = layers.Dense(units, activation="relu")(h)
    model = keras.Model(inp, layers.Dense(10, activation="softmax")(h))
    graph = fuse_dense_epilogue(simplify(model.build_graph()))
    plan = plan_memory(graph)
    sizes = sorted((op.outputs[0].type.shape[1] for op in graph.ops), reverse=True)
    aligned = lambda n: -(-n // ALIGN) * ALIGN * 4  # noqa: E731
    assert plan.per_sample_bytes <= aligned(sizes[0]) + aligned(sizes[1])
    assert plan.per_sample_bytes < plan.total_per_sample  # buffers are reused
    assert plan.peak_live_per_sample <= plan.per_sample_bytes
    assert plan.arena_bytes(32) == plan.fixed_bytes + 32 * plan.per_sample_bytes
    offsets = [plan.scaled_offset[op.outputs[0].id] for op in graph.ops]
    assert all(o % (ALIGN * 4) == 0 for o in offsets)


def test_live_values_never_overlap(rng):
    """Any two values alive at the same op occupy disjoint bytes."""
    x = keras.Input((8,))
    a = layers.Dense(8, activation="relu")(x)
    b = layers.Dense(8, activation="tanh")(a)
    c = layers.add([a, b])
    model = keras.Model(x, layers.concatenate([c, layers.Dense(4)(c), a]))
    graph = simplify(model.build_graph())
    plan = plan_memory(graph)
    span = {}
    for i, op in enumerate(graph.ops):
        for v in op.outputs:
            span.setdefault(v.id, [i, i])
        for v in op.inputs:
            if v.id in span:
                span[v.id][1] = i
    for v in graph.outputs:
        span[v.id][1] = len(graph.ops)
    size = {v.id: -(-v.type.shape[1] // ALIGN) * ALIGN * 4 for op in graph.ops for v in op.outputs}
    ids = list(span)
    for i, p in enumerate(ids):
        for q in ids[i + 1:]:
            overlap_time = not (span[p][1] < span[q][0] or span[q][1] < span[p][0])
            op_, oq = plan.scaled_offset[p], plan.scaled_offset[q]
            overlap_mem = op_ < oq + size[q] and oq < op_ + size[p]
            assert not (overlap_time and overlap_mem), (p, q)


def test_reshape_is_a_view_in_the_plan():
    x = keras.Input((4, 4))
    y = layers.Dense(3)(layers.Reshape((16,))(layers.Dense(4)(x)))
    graph = simplify(keras.Model(x, y).build_graph())
    plan = plan_memory(graph)
    reshape = next(op for op in graph.ops if op.kind == "reshape")
    assert plan.scaled_offset[reshape.outputs[0].id] == plan.scaled_offset[reshape.inputs[0].id]


def test_folded_batch_counts_rows_per_sample():
    x = keras.Input((7, 5))
    model = keras.Model(x, layers.TimeDistributed(layers.Dense(3))(x))
    graph = simplify(model.build_graph())
    plan = plan_memory(graph)
    folded = next(op.outputs[0] for op in graph.ops if op.kind == "matmul")
    assert folded.type.shape == (None, 3) and plan.rows[folded.id] == 7


def test_specialize_fixes_sequence_length(rng):
    x = keras.Input((None, 3))
    model = keras.Model(x, layers.GlobalAveragePooling1D()(layers.Dense(4)(x)))
    graph = specialize(model.build_graph(), [(6, 3)])
    assert graph.inputs[0].type.shape == (None, 6, 3)
    assert all(None not in v.type.shape[1:] for op in graph.ops for v in op.outputs)
    v = rng.normal(size=(2, 6, 3)).astype("float32")
    np.testing.assert_allclose(_run(graph, [v])[0], model.predict(v), rtol=1e-6)
    with pytest.raises(ValueError, match="cannot take per-sample shape"):
        specialize(model.build_graph(), [(6, 4)])


def test_cse_merges_identical_ops(rng):
    from graphc.passes import eliminate_common_subexpressions
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    a1, a2 = b.emit("exp", [x]), b.emit("exp", [x])
    s1, s2 = b.emit("softmax", [x], axis=-1), b.emit("softmax", [x], axis=0)  # attrs differ: both stay
    g = b.finish([b.emit("add", [a1, a2]), s1, s2])
    out = eliminate_common_subexpressions(g)
    assert [op.kind for op in out.ops] == ["exp", "softmax", "softmax", "add"]
    v = rng.normal(size=(2, 3)).astype("float32")
    for got, want in zip(_run(out, [v]), _run(g, [v])):
        np.testing.assert_allclose(got, want)


def test_constant_folding_keeps_parameters_live(rng):
    from graphc.passes import fold_constants
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 2)))
    c = b.emit("exp", [b.constant(np.array([0.0, 1.0], "float32"))])  # foldable
    w = b.param(object(), "w", TensorType((2,)))
    g = b.finish([b.emit("add", [b.emit("multiply", [x, c]), b.emit("neg", [w])])])
    out = fold_constants(g)
    assert [op.kind for op in out.ops] == ["multiply", "neg", "add"]  # neg(w) is not folded: w may change
    assert [op.kind for op in g.ops] == ["exp", "multiply", "neg", "add"]  # input graph untouched
    folded = next(a for a in out.constants.values() if a.shape == (2,))
    np.testing.assert_allclose(folded, np.exp([0.0, 1.0]), rtol=1e-6)
