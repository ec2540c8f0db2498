"""Gradients of batch_norm, batch_norm_train, layer_norm and gather; BatchNormalization's training updates.

Every op: float64 autodiff vs finite differences and the compiled float32 gradient graph vs the reference
(check_gradients), for channel positions, axes, batch 1 and odd batches. Large inputs exercise the
kernels' parallel and multi-block paths (compiled C vs reference only).
"""
from __future__ import annotations

import numpy as np
import pytest

import graphc
from graphc import runtime
from graphc.autodiff import gradients
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.layers import BatchNormalization
from graphc.runtime.program import IdOutOfRangeError
from graphc.tracing import Tensor, emit, tracing
from grad_check import check_gradients

rng = np.random.default_rng(0)


def bn_train(axis, eps=1e-3, outputs=1):
    def fn(x, g, b):
        y, m, v = emit("batch_norm_train", x, g, b, axis=axis, epsilon=eps)
        return (y, m, v)[:outputs] if outputs > 1 else y
    return fn


def vectors(c, n):
    return [rng.uniform(0.5, 1.5, c) if k == 0 else rng.standard_normal(c) for k in range(n)]


# --- batch_norm_train ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((3, 4, 5), -1), ((5, 3), -1), ((1, 2, 3, 4), -1), ((3, 4, 5), 1),
                                         ((1, 3, 4), 1)])
def test_batch_norm_train_gradients(shape, axis):
    x = rng.standard_normal(shape) * 2 + 0.5
    check_gradients(bn_train(axis), [x, *vectors(shape[axis], 2)], batched=[True, False, False])


def test_batch_norm_train_gradients_through_the_statistics():
    """A loss reading the batch mean and variance too (their gradients flow back to x)."""
    x = rng.standard_normal((3, 2, 4))
    check_gradients(bn_train(-1, outputs=3), [x, *vectors(4, 2)], batched=[True, False, False])


def test_batch_norm_train_gradient_matches_numpy_formula():
    """dx against the textbook batch-norm backward written here with NumPy."""
    x = rng.standard_normal((6, 3))
    g, b = vectors(3, 2)
    grads = check_gradients(bn_train(-1), [x, g, b], batched=[True, False, False], check_c=False)
    r = np.random.default_rng(0).standard_normal((6, 3))  # check_gradients' fixed output weights (seed 0)
    mu, var = x.mean(0), x.var(0)
    xhat = (x - mu) / np.sqrt(var + 1e-3)
    dxhat = r * g
    dx = (dxhat - dxhat.mean(0) - xhat * (dxhat * xhat).mean(0)) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(grads[0], dx, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(grads[1], (r * xhat).sum(0), rtol=1e-9)
    np.testing.assert_allclose(grads[2], r.sum(0), rtol=1e-9)


# --- batch_norm (inference form) -------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axis", [((3, 2, 4), -1), ((1, 4), -1), ((3, 3, 2, 2), 1)])
def test_batch_norm_gradients(shape, axis):
    c = shape[axis]
    x = rng.standard_normal(shape)
    mean, var = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    check_gradients(lambda x, m, v, g, b: emit("batch_norm", x, m, v, g, b, axis=axis, epsilon=1e-3),
                    [x, mean, var, *vectors(c, 2)], batched=[True] + [False] * 4)


def test_batch_norm_dx_is_a_per_channel_scale():
    x = rng.standard_normal((3, 4))
    mean, var, g, b = rng.standard_normal(4), rng.uniform(0.5, 2.0, 4), *vectors(4, 2)
    grads = check_gradients(lambda x, m, v, g, b: emit("batch_norm", x, m, v, g, b, axis=-1, epsilon=1e-3),
                            [x, mean, var, g, b], batched=[True] + [False] * 4, check_c=False)
    r = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(grads[0], r * g / np.sqrt(var + 1e-3), rtol=1e-12)
    np.testing.assert_allclose(grads[3], (r * (x - mean) / np.sqrt(var + 1e-3)).sum(0), rtol=1e-12)
    np.testing.assert_allclose(grads[4], r.sum(0), rtol=1e-12)


# --- layer_norm ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, axes, pshape, rms", [
    ((3, 4, 5), (-1,), (5,), False),
    ((3, 4, 5), (1, 2), (4, 5), False),
    ((1, 6), (-1,), (6,), False),
    ((3, 4, 5), (-1,), (5,), True),
    ((2, 3, 4), (1,), (3, 1), False),
    ((3, 5), (-1,), (), False),        # center=False / scale=False: scalar neutral gamma and beta
])
def test_layer_norm_gradients(shape, axes, pshape, rms):
    x = rng.standard_normal(shape) * 1.5 + 0.3
    g = rng.uniform(0.5, 1.5, pshape)
    b = rng.standard_normal(pshape)
    check_gradients(lambda x, g, b: emit("layer_norm", x, g, b, axes=axes, epsilon=1e-3, rms_scaling=rms),
                    [x, g, b], batched=[True, False, False])


def test_layer_norm_gradients_on_non_adjacent_axes_reference_only():
    """The C lowering needs adjacent axes (as the forward's); the reference handles any axes."""
    x = rng.standard_normal((2, 3, 2, 4))
    g = rng.uniform(0.5, 1.5, (3, 1, 4))
    check_gradients(lambda x, g, b: emit("layer_norm", x, g, b, axes=(1, 3), epsilon=1e-3),
                    [x, g, rng.standard_normal((3, 1, 4))], batched=[True, False, False], check_c=False)


# --- gather ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ids_dtype", ["int32", "int64"])
def test_gather_gradient_adds_repeated_ids(ids_dtype):
    table = rng.standard_normal((6, 3))
    ids = np.array([[1, 1, 5], [0, 1, 2], [5, 5, 5]], ids_dtype)
    grads = check_gradients(lambda t, i: emit("gather", t, i), [table, ids], batched=[False, True])
    r = np.random.default_rng(0).standard_normal((3, 3, 3))
    expected = np.zeros((6, 3))
    for (j, k), i in np.ndenumerate(ids):
        expected[i] += r[j, k]
    np.testing.assert_allclose(grads[0], expected, rtol=1e-12)
    assert not grads[0][[3, 4]].any()  # rows never looked up get exactly zero


@pytest.mark.parametrize("ids_shape", [(1,), (1, 4)])
def test_gather_gradient_batch_one(ids_shape):
    ids = rng.integers(0, 5, ids_shape).astype("int32")
    check_gradients(lambda t, i: emit("gather", t, i), [rng.standard_normal((5, 2)), ids], batched=[False, True])


def test_gather_gradient_on_a_middle_axis():
    table = rng.standard_normal((2, 4, 3))
    ids = np.array([3, 0, 3], "int32")
    check_gradients(lambda t, i: emit("gather", t, i, axis=1), [table, ids], batched=[False, False])


def test_scatter_add_rejects_bad_ids_in_reference_and_c():
    b = GraphBuilder()
    with tracing(b):
        ids = Tensor(b.input("ids", TensorType((None,), "int32")))
        dy = Tensor(b.input("dy", TensorType((None, 2), "float32")))
        graph = b.finish([emit("scatter_add", ids, dy, rows=4).value])
    program = runtime.compile_graph(graph)
    good = [np.array([3, 0, 3], np.int32), np.ones((3, 2), np.float32)]
    np.testing.assert_array_equal(program.run(good, [])[0], [[1, 1], [0, 0], [0, 0], [2, 2]])
    for bad in (4, -1):
        arrays = [np.array([0, bad], np.int32), np.ones((2, 2), np.float32)]
        with pytest.raises(IdOutOfRangeError):
            program.run(arrays, [])
        with pytest.raises(ValueError, match="out of range"):
            reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)}, {})


# --- large inputs: parallel and multi-block kernel paths, compiled C vs reference ---------------------------
def c_matches_reference(fn, arrays, batched, out_shape):
    b = GraphBuilder()
    with tracing(b):
        ins = [Tensor(b.input(f"x{i}", TensorType((None,) + a.shape[1:] if bt else a.shape, str(a.dtype))))
               for i, (a, bt) in enumerate(zip(arrays, batched))]
        out = fn(*ins)
        r = Tensor(b.input("r", TensorType(out.shape, "float32")))
        loss = emit("reduce_sum", out * r, axes=tuple(range(len(out.shape))), keepdims=False)
        wrt = [t for t, a in zip(ins, arrays) if a.dtype.kind == "f"]
        graph = b.finish([out.value] + [g.value for g in gradients(loss, wrt)])
    feeds = list(arrays) + [rng.standard_normal(out_shape).astype(np.float32)]
    expected = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, feeds)}, {})
    got = runtime.compile_graph(graph).run(feeds, [])
    for k, (g, e) in enumerate(zip(got, expected)):
        scale = np.abs(e).max()
        np.testing.assert_allclose(g, e, rtol=1e-4, atol=1e-5 * max(scale, 1.0), err_msg=f"output {k}")
    return lambda: runtime.compile_graph(graph).run(feeds, [])


@pytest.mark.parametrize("shape, axis", [((4097, 16), -1), ((300, 130), -1), ((3, 70, 200), 1)])
def test_batch_norm_train_large_inputs_in_c(shape, axis):
    x = (rng.standard_normal(shape) * 3 + 5).astype(np.float32)
    g, b = (v.astype(np.float32) for v in vectors(shape[axis], 2))
    run = c_matches_reference(bn_train(axis), [x, g, b], [True, False, False], shape)
    # statistics are summed in fixed chunks in a fixed order: bit-identical for any thread count
    before = graphc.get_num_threads()
    try:
        graphc.set_num_threads(1)
        one = run()
        graphc.set_num_threads(3)
        three = run()
    finally:
        graphc.set_num_threads(before)
    for a, b_ in zip(one, three):
        np.testing.assert_array_equal(a, b_)


def test_layer_norm_and_gather_large_inputs_in_c():
    x = rng.standard_normal((700, 64)).astype(np.float32)
    g, b = (v.astype(np.float32) for v in vectors(64, 2))
    c_matches_reference(lambda x, g, b: emit("layer_norm", x, g, b, axes=(-1,), epsilon=1e-3), [x, g, b],
                        [True, False, False], x.shape)
    table = rng.standard_normal((50, 32)).astype(np.float32)
    ids = rng.integers(0, 50, (400, 8)).astype(np.int32)  # many repeats, parallel row ranges
    c_matches_reference(lambda t, i: emit("gather", t, i), [table, ids], [False, True], (400, 8, 32))


# --- BatchNormalization: training output and moving-average updates -----------------------------------------
def trace_bn_training(layer, shape):
    b = GraphBuilder()
    with tracing(b):
        x = Tensor(b.input("x", TensorType((None,) + shape[1:], "float32")))
        y = layer(x, training=True)
        assert [u[0] for u in b.updates] == [layer.moving_mean, layer.moving_variance]
        graph = b.finish([y.value] + [v for _, v in b.updates])
    return graph


@pytest.mark.parametrize("axis, momentum", [(-1, 0.99), (1, 0.9)])
def test_batch_normalization_training_updates_follow_keras(axis, momentum):
    shape = (5, 3, 4)
    layer = BatchNormalization(axis=axis, momentum=momentum, epsilon=1e-3)
    layer.build(shape)
    c = shape[axis]
    gamma, beta = rng.uniform(0.5, 1.5, c), rng.standard_normal(c)
    mm, mv = rng.standard_normal(c), rng.uniform(0.5, 2.0, c)
    layer.set_weights([a.astype(np.float32) for a in (gamma, beta, mm, mv)])
    graph = trace_bn_training(layer, shape)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)

    red = tuple(i for i in range(3) if i != axis % 3)
    cs = [1, 1, 1]
    cs[axis] = c
    mean, var = x.astype(np.float64).mean(red), x.astype(np.float64).var(red)  # biased variance, as Keras
    y = (x - mean.reshape(cs)) / np.sqrt(var.reshape(cs) + 1e-3) * gamma.reshape(cs) + beta.reshape(cs)
    expected = [y, mm * momentum + mean * (1 - momentum), mv * momentum + var * (1 - momentum)]

    params = {v.id: graph.param_keys[v.id].value for v in graph.params}
    got_ref = reference.run(graph, {graph.inputs[0].id: x}, params)
    program = runtime.compile_graph(graph)
    got_c = program.run([x], [w.value for w in program.param_keys])
    for ref, c_out, e in zip(got_ref, got_c, expected):
        np.testing.assert_allclose(ref, e, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(c_out, e, rtol=1e-5, atol=1e-5)


def test_batch_normalization_inference_and_frozen_record_no_update():
    layer = BatchNormalization()
    layer.build((None, 3))
    for training, trainable in ((False, True), (True, False)):
        layer.trainable = trainable
        b = GraphBuilder()
        with tracing(b):
            layer(Tensor(b.input("x", TensorType((None, 3), "float32"))), training=training)
        assert b.updates == [] and [op.kind for op in b.ops] == ["batch_norm"]
