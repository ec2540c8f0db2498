"""Compiled C against the NumPy reference, op by op (rtol 1e-4, atol 1e-5), at batch 1 and an odd batch.

Many ops go into one graph with many outputs, so each test compiles once.
"""
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from graphc.codegen import CodegenError, generate_c
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.ir.ops.elementwise import C_EXPR, UNARY
from graphc.runtime import compile_graph

from c_check import Weights, check  # noqa: F401  (the compile-and-compare helper)


def test_every_unary_op(rng):
    unary = [k for k in UNARY if k != "clip"]
    check(lambda b, x, p: [b.emit(k, [x[0]]) for k in unary] + [b.emit("clip", [x[0]], min_value=-0.5, max_value=1.0),
                                                                b.emit("elu", [x[0]], alpha=0.3),
                                                                b.emit("gelu", [x[0]], approximate=True),
                                                                b.emit("leaky_relu", [x[0]], negative_slope=0.1)],
          [(3, 4)], rng, low=0.1, high=3.0)  # positive: sqrt/log/rsqrt are defined
    check(lambda b, x, p: [b.emit(k, [x[0]]) for k in unary if k not in ("sqrt", "log", "rsqrt")],
          [(7,)], rng, low=-4, high=4)


def test_binary_ops_with_broadcasting(rng):
    kinds = ["add", "subtract", "multiply", "divide", "maximum", "minimum"]

    def build(b, x, p):
        a, c = x
        bias, col = p((5,)), p((4, 1))
        return ([b.emit(k, [a, c]) for k in kinds] + [b.emit(k, [a, bias]) for k in kinds]
                + [b.emit("add", [a, col]), b.emit("multiply", [b.emit("reduce_sum", [a], axes=(2,), keepdims=True), a]),
                   b.emit("add", [p((1, 5)), b.emit("exp", [c])])])
    check(build, [(4, 5), (4, 5)], rng, low=0.5, high=2.0)


def test_general_broadcast_and_where(rng):
    def build(b, x, p):
        a, c = x  # (None, 3, 1, 4) and (None, 1, 2, 1)
        s = b.emit("add", [a, c])
        return [s, b.emit("where", [b.emit("greater", [s, b.constant(np.float32(0.5))]), s, b.emit("neg", [s])]),
                b.emit("broadcast_to", [p((4,))], shape=(3, 2, 4))]
    check(build, [(3, 1, 4), (1, 2, 1)], rng)


def test_fused_chain_is_one_loop(rng):
    def build(b, x, p):
        h = b.emit("tanh", [b.emit("add", [b.emit("multiply", [x[0], p((6,))]), p((6,))])])
        return b.emit("relu", [b.emit("subtract", [h, b.constant(np.float32(0.25))])])
    program = check(build, [(6,)], rng)
    assert program.generated.source.count("for (int64_t i = 0;") == 1


def test_a_chain_of_thousands_of_elementwise_ops_is_one_loop(rng):
    """A chain longer than Python's recursion limit (an unrolled recurrence's gates can make one) compiles
    into one loop: the fusion walks it without recursion."""
    def build(b, x, p):
        h = x[0]
        for _ in range(1500):
            h = b.emit("add", [b.emit("multiply", [h, b.constant(np.float32(0.999))]), b.constant(np.float32(0.001))])
        return b.emit("tanh", [h])
    program = check(build, [(6,)], rng)
    assert program.generated.source.count("for (int64_t i = 0;") == 1


def test_a_value_read_twice_in_one_loop_is_computed_once_there(rng):
    def build(b, x, p):
        h = b.emit("tanh", [x[0]])
        return b.emit("relu", [b.emit("subtract", [h, b.emit("square", [h])])])
    program = check(build, [(6,)], rng)
    assert program.generated.source.count("for (int64_t i = 0;") == 1
    assert program.generated.source.count("tanhf(") == 1


def test_a_value_read_by_a_loop_and_later_by_a_reduction_is_stored_by_that_loop(rng):
    def build(b, x, p):
        h = b.emit("tanh", [x[0]])
        y = b.emit("multiply", [h, h])
        return [y, b.emit("reduce_sum", [h], axes=(1,), keepdims=False)]
    source = check(build, [(6,)], rng).generated.source
    assert source.count("for (int64_t i = 0;") == 1 and "kept for later readers" in source


def test_matmul_dense_and_batched(rng):
    def build(b, x, p):
        a, c = x  # (None, 3, 4), (None, 4, 2)
        w = p((4, 6))
        return [b.emit("matmul", [a, w]), b.emit("matmul", [a, c]),
                b.emit("relu", [b.emit("add", [b.emit("matmul", [a, p((4, 6))]), p((6,))])]),
                b.emit("matmul", [p((2, 5, 3)), b.emit("reshape", [a], shape=(None, 1, 3, 4))])]
    program = check(build, [(3, 4), (4, 2)], rng)
    assert "graphc_sgemm_bias_act" in program.generated.source


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (17, 33, 65), (64, 128, 10)])
def test_dense_shapes(rng, m, k, n):
    check(lambda b, x, p: b.emit("sigmoid", [b.emit("add", [b.emit("matmul", [x[0], p((k, n))]), p((n,))])]),
          [(k,)], rng, batches=(1, m))


def test_shape_ops(rng):
    def build(b, x, p):
        a = x[0]  # (None, 2, 3, 4)
        return [b.emit("transpose", [a], perm=(0, 3, 1, 2)),
                b.emit("concat", [a, b.emit("neg", [a])], axis=2),
                b.emit("concat", [a, a, a], axis=-1),
                b.emit("pad", [a], pads=((0, 0), (1, 0), (0, 2), (1, 1)), value=0.5),
                b.emit("repeat", [a], repeats=3, axis=2),
                b.emit("slice", [a], begin=(None, 1, None, 3), end=(None, None, None, 0), step=(None, 1, 2, -1)),
                b.emit("reshape", [b.emit("exp", [a])], shape=(None, 24)),
                b.emit("reshape", [a], shape=(None, 4)),  # folds (N, 2, 3, 4) into (N*6, 4)
                b.emit("cast", [b.emit("multiply", [a, b.constant(np.float32(3))])], dtype="int32")]
    check(build, [(2, 3, 4)], rng)


def test_reductions_softmax_argmax(rng):
    def build(b, x, p):
        a = x[0]  # (None, 3, 4, 5)
        outs = [b.emit(k, [a], axes=ax, keepdims=kd) for k in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
                for ax, kd in (((3,), False), ((1, 2), True), ((2,), False))]
        return outs + [b.emit("softmax", [a], axis=-1), b.emit("softmax", [a], axis=1),
                       b.emit("log_softmax", [a], axis=2), b.emit("argmax", [a], axis=3)]
    check(build, [(3, 4, 5)], rng)


def test_user_names_cannot_break_the_c_source(rng):
    b = GraphBuilder()
    x = b.input('in"put */ #include <evil.h>\n', TensorType((None, 3)))
    b.scope = "layer */ exit(1); /* \\"
    g = b.finish([b.emit("relu", [x])])
    src = generate_c(g, prefix="bad name!").source
    code = re.sub(r"/\*.*?\*/", "", src, flags=re.S)  # what the compiler sees outside comments
    assert "<evil.h>" not in code and "exit(1)" not in code  # identifiers keep only [A-Za-z0-9_]
    assert src.count("*/") == src.count("/*")  # no comment closed early
    program = compile_graph(g, name="weird */ name")
    v = rng.normal(size=(2, 3)).astype("float32")
    np.testing.assert_array_equal(program.run([v], [])[0], np.maximum(v, 0))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("*/\\?\n ab")), max_size=12))
def test_a_comment_cannot_close_or_continue(text):
    from graphc.codegen.context import c_comment
    out = c_comment(text)
    assert "*/" not in out and "/*" not in out and "\\" not in out and "??" not in out and out.isprintable()


@pytest.mark.parametrize("word", ["batch", "arena", "int", "NULL", "memcpy", "i", "graphc_concat"])
def test_layer_names_never_become_the_run_functions_own_names(word, rng):
    # a name cut to its first word (the rest punctuation) once became that word: a keyword, a macro, a libc
    # function, one of the run function's variables; and "*\\" in a name once closed the comment it was in
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    b.scope = word + "." * 40
    y = b.emit("relu", [x])
    b.scope = "h*\\ int injected; /\\*"
    g = b.finish([b.emit("concat", [y, x], axis=1)])
    src = generate_c(g).source
    assert "int injected;" not in re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    v = rng.normal(size=(2, 3)).astype("float32")
    np.testing.assert_array_equal(compile_graph(g, name="names").run([v], [])[0],
                                  np.concatenate([np.maximum(v, 0), v], axis=1))


def test_missing_lowering_is_reported():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    g = b.finish([b.emit("dropout", [b.emit("relu", [x])], rate=0.5)])
    assert "dropout" not in generate_c(g).source  # removed at inference
    from graphc.ir import OPS
    lower = OPS["relu"].c_expr
    OPS["relu"].c_expr = None
    try:
        with pytest.raises(CodegenError, match=r"no C lowering yet for: relu"):
            generate_c(g)
    finally:
        OPS["relu"].c_expr = lower


def test_every_pointwise_entry_has_a_reference():
    for name in C_EXPR:
        assert name in UNARY or name in ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power",
                                         "greater", "less", "equal", "greater_equal", "less_equal", "not_equal",
                                         "logical_and", "logical_or", "where", "broadcast_like")


def test_comparisons_and_logic_compiled(rng):
    # what masks are made of: C against the reference (NumPy) on ties, NaN and broadcasting
    from graphc import ops
    from graphc.tracing import Tensor, tracing
    b = GraphBuilder()
    with tracing(b):
        x, y = Tensor(b.input("x", TensorType((None, 4)))), Tensor(b.input("y", TensorType((1, 4))))
        ne, gt = ops.not_equal(x, y), ops.greater(x, y)
        outs = [ne, ops.logical_and(ne, gt), ops.logical_or(gt, ops.less(x, y)), ops.logical_not(gt),
                ops.any(ne, axis=-1), ops.all(ne, axis=-1), ops.cast(ops.logical_or(ne, gt), "float32")]
        g = b.finish([t.value for t in outs])
    xv = rng.integers(-1, 2, (5, 4)).astype("float32")
    xv[0, 0] = np.nan
    yv = np.array([[0, 1, -1, 0]], "float32")
    want = reference.run(g, {v.id: a for v, a in zip(g.inputs, [xv, yv])}, {})
    got = compile_graph(g, name="logic").run([xv, yv], [])
    np.testing.assert_array_equal(want[0], xv != yv)
    np.testing.assert_array_equal(want[4], (xv != yv).any(-1))
    for w, c in zip(want, got):
        np.testing.assert_array_equal(np.asarray(c), np.asarray(w))


# --- random small DAGs ---------------------------------------------------------------------------------------
UNARY_OK = ["relu", "tanh", "sigmoid", "neg", "abs", "square", "softsign", "silu", "exp"]
BINARY_OK = ["add", "subtract", "multiply", "maximum", "minimum"]


@st.composite
def dags(draw):
    steps = draw(st.lists(st.tuples(st.sampled_from(["unary", "binary", "reduce", "matmul", "softmax"]),
                                    st.integers(0, 10), st.integers(0, 10), st.sampled_from(UNARY_OK),
                                    st.sampled_from(BINARY_OK)), min_size=1, max_size=8))
    return steps, draw(st.integers(1, 6)), draw(st.integers(0, 2 ** 31 - 1))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dags())
def test_random_graphs_match_numpy(spec):
    steps, batch, seed = spec
    rng = np.random.default_rng(seed)

    def build(b, x, p):
        vals = [x[0]]  # all (None, 4); reductions keep dims so shapes stay compatible
        for kind, i, j, u, bi in steps:
            a, c = vals[i % len(vals)], vals[j % len(vals)]
            if kind == "unary":
                vals.append(b.emit(u, [a]))
            elif kind == "binary":
                vals.append(b.emit(bi, [a, c]))
            elif kind == "reduce":
                vals.append(b.emit("add", [a, b.emit("reduce_mean", [c], axes=(1,), keepdims=True)]))
            elif kind == "matmul":
                vals.append(b.emit("matmul", [a, p((4, 4))]))
            else:
                vals.append(b.emit("softmax", [a], axis=-1))
        return vals[1:]
    check(build, [(4,)], rng, batches=(batch,), low=-1.5, high=1.5, rtol=2e-4, atol=2e-5)


def test_model_memory_report_and_threads(rng):
    import graphc as keras
    from graphc import layers
    x = keras.Input((784,))
    h = layers.Dense(512, activation="relu")(x)
    h = layers.Dense(216, activation="relu")(h)
    model = keras.Model(x, layers.Dense(10, activation="softmax")(layers.Dense(128, activation="relu")(h)))
    report = model.memory_report(batch_size=64)
    assert report["peak_live_bytes"] <= report["arena_bytes"] < report["all_intermediates_bytes"]
    assert report["arena_bytes"] == 64 * (512 + 224) * 4  # the two largest live tensors (216 -> 224 aligned)
    before = keras.get_num_threads()
    keras.set_num_threads(1)
    try:
        assert keras.get_num_threads() == 1
        v = rng.normal(size=(3, 784)).astype("float32")
        np.testing.assert_allclose(model.predict(v), model.predict_on_batch(v), rtol=1e-6)
    finally:
        keras.set_num_threads(before)


def test_float_to_int_cast_is_defined_for_nan_and_huge_values():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 4)))
    program = compile_graph(b.finish([b.emit("cast", [x], dtype="int32")]))
    got = program.run([np.array([[np.nan, 3e12, -3e12, -2.7]], "float32")], [])[0]
    np.testing.assert_array_equal(got, [[-2 ** 31, 2 ** 31 - 1, -2 ** 31, -2]])


def test_results_go_into_the_arrays_the_caller_gives(rng):
    """A train step passes the variables' own arrays as outputs on every call: each call writes there (the
    checked pointers are reused), a different array is written when given, and a wrong one is refused."""
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    program = compile_graph(b.finish([b.emit("exp", [x]), b.emit("neg", [x])]))
    v = rng.normal(size=(4, 3)).astype("float32")
    first, second = np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")
    for target, value in [(first, v), (first, v + 1), (second, v - 1)]:
        out = program.run([value], [], outputs=[None, target])
        assert out[1] is target
        np.testing.assert_allclose(target, -value, rtol=1e-6)
        np.testing.assert_allclose(out[0], np.exp(value), rtol=1e-5)
    np.testing.assert_allclose(first, -(v + 1), rtol=1e-6)  # untouched by the call that got `second`
    out = program.run([v[:2]], [], outputs=None)
    assert out[1].shape == (2, 3)
    for wrong in [np.zeros((4, 3), "float64"), np.zeros((3, 3), "float32"), np.zeros((3, 4), "float32").T]:
        with pytest.raises(ValueError, match=r"output 1: expected a writeable C-contiguous float32 array of shape \(4, 3\)"):
            program.run([v], [], outputs=[None, wrong])


def test_operands_of_inlined_ops_stay_alive_until_their_loop_runs(rng):
    """exp(x) is computed inside the later add's loop, so x must not be overwritten by the matmul
    scheduled in between, even though no op reads x after exp in program order."""
    def build(b, x, p):
        h = b.emit("matmul", [x[0], p((8, 8))])          # h: an intermediate buffer
        e = b.emit("exp", [h])                           # inlined into the add below
        m = b.emit("matmul", [x[0], p((8, 8))])          # scheduled between exp and add
        return b.emit("add", [e, m])
    check(build, [(8,)], rng, batches=(1, 7))


def test_elementwise_loop_writes_in_place_when_its_input_dies(rng):
    from graphc.codegen import generate_c
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 64)))
    w = b.param(Weights(np.ones((64, 64), "float32")), "w", TensorType((64, 64)))
    h = b.emit("matmul", [x, w])
    h2 = b.emit("matmul", [h, w])
    y = b.emit("add", [b.emit("tanh", [h2]), b.emit("sigmoid", [h])])  # both inputs die here
    gen = generate_c(b.finish([y]))
    add = next(op for op in gen.graph.ops if op.kind == "add")
    offsets = gen.plan.scaled_offset
    assert offsets[add.outputs[0].id] in [offsets[v.id] for v in add.inputs if v.id in offsets]
    check(lambda b, x, p: b.emit("add", [b.emit("tanh", [b.emit("matmul", [b.emit("matmul", [x[0], p((64, 64))]),
                                                                              p((64, 64))])]),
                                        b.emit("sigmoid", [b.emit("matmul", [x[0], p((64, 64))])])]),
          [(64,)], rng, low=-0.1, high=0.1)


def test_a_stored_value_is_read_not_recomputed_by_a_loop_of_another_shape(rng):
    """scale = gamma / sqrt(var): computed and stored by the (C,) loop; the (K, C) loop after it reads it
    (recomputing there would also store it out of bounds, as BatchNormalization folding once showed)."""
    def build(b, x, p):
        gamma, var, kernel = p((6,)), p((6,)), p((5, 6))
        scale = b.emit("divide", [gamma, b.emit("sqrt", [b.emit("exp", [var])])])  # a positive variance
        shift = b.emit("multiply", [scale, p((6,))])
        folded = b.emit("multiply", [kernel, scale])
        return [b.emit("add", [b.emit("matmul", [x[0], folded]), shift])]
    source = check(build, [(5,)], rng).generated.source
    assert source.count("kept for later readers") == 1 and source.count("sqrtf(") == 1


@pytest.mark.parametrize("kind", ["reduce_sum", "reduce_mean"])
@pytest.mark.parametrize("shape,axes", [((700,), (0,)), ((3, 5), (0, 1)), ((6, 40), (1,)), ((), (0,))])
def test_sums_over_the_batch_split_rows_in_fixed_chunks(rng, kind, shape, axes):
    """A bias gradient sums batch x positions: many rows, few slabs. The rows are split into chunks summed in
    parallel (whatever the thread count, the same chunks: the result is reproducible)."""
    check(lambda b, x, p: b.emit(kind, [x[0]], axes=axes, keepdims=False), [shape], rng, batches=(1, 3, 301))
