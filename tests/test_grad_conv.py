"""Gradients of conv, conv_transpose, max_pool and avg_pool (and of their backward ops).

Every case runs check_gradients: float64 autodiff against central finite differences, then the float32
backward graph compiled to C against the reference. Larger shapes check the C kernels' blocked, chunked
and multi-threaded paths against an independent NumPy computation written here.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from graphc.ir import GraphBuilder, ShapeError, TensorType, reference
from graphc.runtime import compile_graph
from graphc.tracing import emit
from grad_check import check_gradients

rng = np.random.default_rng(7)


def geometry(strides, padding, dilation):
    return dict(strides=strides, padding=padding, dilation=dilation)


# --- conv: (x shape, kernel (*k, cin/groups, cout), strides, padding, dilation, groups) -----------------------
CONV_CASES = [
    ((3, 7, 2), (3, 2, 3), (2,), "same", (1,), 1),
    ((1, 8, 2), (3, 2, 2), (1,), "valid", (2,), 1),
    ((3, 9, 4), (2, 2, 4), (3,), "same", (1,), 2),
    ((1, 5, 6, 2), (3, 2, 1, 4), (2, 1), "same", (1, 1), 2),
    ((3, 6, 5, 2), (2, 2, 2, 3), (2, 2), "valid", (1, 1), 1),
    ((1, 5, 5, 1), (2, 2, 1, 2), (1, 1), "same", (2, 2), 1),
    ((3, 7, 5, 1), (2, 3, 1, 2), (2, 1), "valid", (2, 1), 1),
    ((3, 3, 4, 4), (1, 1, 2, 4), (1, 1), "valid", (1, 1), 2),  # 1x1: the direct GEMM path
    ((1, 3, 4, 3, 2), (2, 2, 2, 2, 2), (2, 1, 2), "same", (1, 1, 1), 1),
    ((3, 4, 3, 3, 2), (2, 1, 2, 1, 2), (1, 1, 1), "valid", (2, 1, 1), 2),
]


@pytest.mark.parametrize("shape, kernel, strides, padding, dilation, groups", CONV_CASES)
def test_conv(shape, kernel, strides, padding, dilation, groups):
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    check_gradients(lambda a, b: emit("conv", a, b, groups=groups, **geometry(strides, padding, dilation)),
                    [x, w], batched=[True, False])


# --- conv_transpose: kernel (*k, filters, in_channels) ---------------------------------------------------------
TRANSPOSE_CASES = [
    ((3, 4, 2), (3, 3, 2), (2,), "same", None, (1,)),
    ((1, 3, 2), (2, 2, 2), (3,), "valid", (1,), (1,)),
    ((3, 3, 2, 2), (3, 2, 2, 2), (2, 2), "same", None, (1, 1)),
    ((1, 3, 3, 1), (2, 2, 2, 1), (2, 1), "valid", (1, 0), (1, 1)),
    ((3, 3, 4, 2), (2, 2, 1, 2), (1, 1), "same", None, (2, 1)),
    ((1, 2, 2, 2, 1), (2, 1, 2, 2, 1), (2, 1, 2), "same", None, (1, 1, 1)),
]


@pytest.mark.parametrize("shape, kernel, strides, padding, output_padding, dilation", TRANSPOSE_CASES)
def test_conv_transpose(shape, kernel, strides, padding, output_padding, dilation):
    x, w = rng.standard_normal(shape), rng.standard_normal(kernel)
    check_gradients(lambda a, b: emit("conv_transpose", a, b, output_padding=output_padding,
                                      **geometry(strides, padding, dilation)), [x, w], batched=[True, False])


# --- pooling ------------------------------------------------------------------------------------------------
POOL_CASES = [
    ((3, 7, 2), (2,), (2,), "valid"),
    ((1, 7, 2), (3,), (2,), "same"),
    ((3, 5, 6, 2), (2, 2), (2, 2), "same"),
    ((1, 5, 5, 1), (3, 2), (1, 2), "valid"),
    ((3, 4, 5, 1), (2, 3), (2, 1), "same"),
    ((1, 3, 4, 3, 2), (2, 2, 2), (2, 1, 2), "same"),
    ((3, 3, 3, 4, 1), (2, 1, 2), (1, 1, 2), "valid"),
]


@pytest.mark.parametrize("kind", ["max_pool", "avg_pool"])
@pytest.mark.parametrize("shape, pool_size, strides, padding", POOL_CASES)
def test_pool(kind, shape, pool_size, strides, padding):
    x = rng.permutation(np.arange(np.prod(shape))).reshape(shape) * 0.1  # distinct values: no ties
    check_gradients(lambda a: emit(kind, a, pool_size=pool_size, strides=strides, padding=padding), [x])


def _pool_grad(x, **attrs):
    """d sum(max_pool(x)) / dx, traced and compiled (float32)."""
    from graphc.autodiff import gradients
    from graphc.tracing import Tensor, tracing
    b = GraphBuilder()
    with tracing(b):
        t = Tensor(b.input("x", TensorType((None,) + x.shape[1:], "float32")))
        y = emit("max_pool", t, **attrs)
        loss = emit("reduce_sum", y, axes=tuple(range(len(y.shape))), keepdims=False)
        (g,) = gradients(loss, [t])
        graph = b.finish([g.value])
    want = reference.run(graph, {graph.inputs[0].id: x}, {})[0]
    got = compile_graph(graph).run([x], [])[0]
    np.testing.assert_array_equal(got, want)
    return got.ravel()


def test_max_pool_ties_follow_tensorflow():
    """Among tied maxima, 1-D/2-D send the gradient to the first (MaxPoolGrad), 3-D to all (MaxPool3DGrad).
    Expected values were printed by TensorFlow 2.21 (tf.GradientTape over tf.nn.max_pool*)."""
    zeros = np.zeros((1, 4, 4, 1), np.float32)
    np.testing.assert_array_equal(_pool_grad(zeros, pool_size=(2, 2), strides=(2, 2), padding="valid"),
                                  [1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(_pool_grad(np.zeros((1, 4, 1), np.float32), pool_size=(2,), strides=(2,),
                                             padding="valid"), [1, 0, 1, 0])
    np.testing.assert_array_equal(_pool_grad(np.zeros((1, 3, 3, 1), np.float32), pool_size=(2, 2),
                                             strides=(1, 1), padding="same"), np.ones(9))
    x = np.zeros((1, 3, 3, 3, 1), np.float32)
    x[0, 0, 0, 0, 0] = x[0, 1, 1, 1, 0] = 1
    x[0, 2, 2, 2, 0] = 5
    np.testing.assert_array_equal(
        _pool_grad(x, pool_size=(2, 2, 2), strides=(1, 1, 1), padding="same"),
        [1, 0, 1, 0, 0, 2, 1, 2, 3, 0, 0, 2, 0, 7, 3, 2, 3, 3, 1, 2, 3, 2, 3, 3, 3, 3, 8])


# --- the backward ops are linear in each input: their own gradients (gradients of gradients) ------------------
def test_conv_input_grad_gradient():
    dy, w = rng.standard_normal((3, 3, 2, 4)), rng.standard_normal((2, 2, 1, 4))
    check_gradients(lambda d, k: emit("conv_input_grad", d, k, input_spatial=(5, 4), groups=2,
                                      **geometry((2, 2), "same", (1, 1))), [dy, w], batched=[True, False])


def test_conv_filter_grad_gradient():
    x, dy = rng.standard_normal((3, 5, 2)), rng.standard_normal((3, 3, 4))
    check_gradients(lambda a, d: emit("conv_filter_grad", a, d, kernel_size=(2,), groups=2,
                                      **geometry((2,), "same", (1,))), [x, dy], batched=[True, True])


def test_avg_pool_grad_gradient():
    dy = rng.standard_normal((3, 3, 2, 2))
    check_gradients(lambda d: emit("avg_pool_grad", d, input_spatial=(5, 4), pool_size=(2, 3), strides=(2, 2),
                                   padding="same"), [dy])


# --- large shapes: blocked, chunked and threaded C paths against NumPy written here --------------------------
def numpy_conv_grads(x, w, dy, strides, padding, dilation, groups):
    """dx and dw of y = conv(x, w) for output gradient dy, by explicit loops over output cells (float64)."""
    kernel, cin_g, cout = w.shape[:-2], w.shape[-2], w.shape[-1]
    spatial, out = x.shape[1:-1], dy.shape[1:-1]
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dilation)]
    before = [max((o - 1) * s + e - n, 0) // 2 if padding == "same" else 0
              for n, o, s, e in zip(spatial, out, strides, eff)]
    xp = np.zeros((x.shape[0], *(n + 2 * e for n, e in zip(spatial, eff)), x.shape[-1]))
    inner = tuple(slice(b, b + n) for b, n in zip(before, spatial))
    xp[(slice(None),) + inner] = x
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    og = cout // groups
    for cell in itertools.product(*(range(o) for o in out)):
        g_out = dy[(slice(None),) + cell].astype(np.float64)  # (batch, cout)
        for tap in itertools.product(*(range(k) for k in kernel)):
            at = (slice(None),) + tuple(c * s + t * d for c, s, t, d in zip(cell, strides, tap, dilation))
            for g in range(groups):
                cols = slice(g * og, (g + 1) * og)
                chans = slice(g * cin_g, (g + 1) * cin_g)
                dw[tap][:, cols] += xp[at][:, chans].T @ g_out[:, cols]
                dxp[at][:, chans] += g_out[:, cols] @ w[tap][:, cols].T
    return dxp[(slice(None),) + inner], dw


LARGE_CONV = [  # (x shape, kernel, strides, padding, dilation, groups): what each one exercises
    # Winograd (3x3, stride 1, >= 128 tiles of 2x2 cells), F(m x m) with m per output size, dx's and dw's:
    ((4, 16, 16, 64), (3, 3, 64, 64), (1, 1), "same", (1, 1), 1),    # m 4 and 4; threaded dw partials
    ((5, 13, 11, 16), (3, 3, 16, 24), (1, 1), "valid", (1, 1), 1),   # m 4 (dx: 13x11) and 3 (dw: 11x9)
    ((3, 15, 17, 20), (3, 3, 20, 17), (1, 1), "same", (1, 1), 1),    # m 4, 4: edge tiles, channels off the vector
    ((8, 9, 9, 24), (3, 3, 24, 16), (1, 1), "same", (1, 1), 1),      # m 3 and 3 (9x9: 3x3 tiles)
    ((64, 2, 6, 16), (3, 3, 16, 16), (1, 1), "same", (1, 1), 1),     # m 2 and 2 (2x6)
    ((3, 7, 9, 512), (3, 3, 512, 16), (2, 2), "valid", (1, 1), 1),   # dw rows in chunks of taps
    ((1, 3, 3, 4200), (2, 1, 4200, 8), (1, 1), "valid", (1, 1), 1),  # one tap's channels in chunks
    ((2, 3, 3, 2), (2, 2, 2, 8200), (1, 1), "same", (1, 1), 1),      # dw columns in chunks
    ((5, 12, 12, 32), (1, 1, 16, 48), (1, 1), "valid", (1, 1), 2),   # x read in place, grouped
    ((3, 40, 600), (3, 200, 30), (2,), "same", (2,), 3),             # grouped, dilated, wide rows
]


@pytest.mark.parametrize("shape, kernel, strides, padding, dilation, groups", LARGE_CONV)
def test_large_conv_backward_in_c(shape, kernel, strides, padding, dilation, groups):
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(kernel).astype(np.float32)
    geo = geometry(strides, padding, dilation)
    b = GraphBuilder()
    xi = b.input("x", TensorType((None,) + shape[1:], "float32"))
    wi = b.input("w", TensorType(kernel, "float32"))
    y = b.emit("conv", [xi, wi], groups=groups, **geo)
    dyi = b.input("dy", TensorType(y.type.shape, "float32"))
    dx = b.emit("conv_input_grad", [dyi, wi], input_spatial=shape[1:-1], groups=groups, **geo)
    dw = b.emit("conv_filter_grad", [xi, dyi], kernel_size=kernel[:-2], groups=groups, **geo)
    graph = b.finish([dx, dw])
    dy = rng.standard_normal((shape[0],) + y.type.shape[1:]).astype(np.float32)
    got_dx, got_dw = compile_graph(graph).run([x, w, dy], [])
    want_dx, want_dw = numpy_conv_grads(x, w, dy, strides, padding, dilation, groups)
    for got, want in ((got_dx, want_dx), (got_dw, want_dw)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("shape, pool, strides, padding", [
    ((4, 33, 33, 300), (3, 3), (2, 2), "same"),
    ((2, 8, 9, 10, 5), (2, 2, 2), (1, 2, 2), "valid"),
    # windows that do not overlap write dx once and zero only what no window covers: the last row and
    # column (11 -> 5), gaps between windows (stride 3 > pool 2), padding before the first window
    ((5, 11, 11, 64), (2, 2), (2, 2), "valid"),
    ((3, 10, 11, 40), (2, 2), (3, 3), "same"),
    ((3, 14, 7), (2,), (3,), "same"),
])
def test_large_pool_backward_in_c(shape, pool, strides, padding):
    x = rng.standard_normal(shape).astype(np.float32)
    b = GraphBuilder()
    xi = b.input("x", TensorType((None,) + shape[1:], "float32"))
    y = b.emit("max_pool", [xi], pool_size=pool, strides=strides, padding=padding)
    dyi = b.input("dy", TensorType(y.type.shape, "float32"))
    outs = [b.emit("max_pool_grad", [xi, dyi], pool_size=pool, strides=strides, padding=padding, ties=t)
            for t in ("first", "all")]
    outs.append(b.emit("avg_pool_grad", [dyi], input_spatial=shape[1:-1], pool_size=pool, strides=strides,
                       padding=padding))
    graph = b.finish(outs)
    dy = rng.standard_normal((shape[0],) + y.type.shape[1:]).astype(np.float32)
    stale = [np.full((shape[0],) + tuple(v.type.shape[1:]), np.nan, np.float32) for v in graph.outputs]
    got = compile_graph(graph).run([x, dy], [], outputs=stale)  # buffers full of NaN: every cell must be written
    want = reference.run(graph, {graph.inputs[0].id: x, graph.inputs[1].id: dy}, {})
    for g, e in zip(got, want):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5)
    # Without ties, both rules agree and every window's gradient is routed once.
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6, atol=1e-6)
    assert np.isclose(got[0].sum(dtype=np.float64), dy.sum(dtype=np.float64), rtol=1e-4)


# --- shape rules ------------------------------------------------------------------------------------------------
def test_backward_ops_reject_a_wrong_output_gradient():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 6, 6, 4), "float32"))
    w = b.input("w", TensorType((3, 3, 2, 4), "float32"))
    dy = b.input("dy", TensorType((None, 3, 3, 4), "float32"))  # a valid 3x3 conv gives 4x4
    with pytest.raises(ShapeError, match=r"forward output's shape \(None, 4, 4, 4\), received \(None, 3, 3, 4\)"):
        b.emit("conv_filter_grad", [x, dy], kernel_size=(3, 3), strides=(1, 1), padding="valid", groups=2)
    with pytest.raises(ShapeError, match="forward output's shape"):
        b.emit("conv_input_grad", [dy, w], input_spatial=(6, 6), strides=(1, 1), padding="valid", groups=2)
    with pytest.raises(ShapeError, match="groups=3 must divide the 4 input and 4 output channels"):
        b.emit("conv_filter_grad", [x, x], kernel_size=(1, 1), strides=(1, 1), padding="valid", groups=3)
    with pytest.raises(ShapeError, match="ties must be one of"):
        b.emit("max_pool_grad", [x, x], pool_size=(1, 1), strides=(1, 1), padding="valid", ties="last")
    dw = b.emit("conv_filter_grad", [x, x], kernel_size=(1, 1), strides=(1, 1), padding="same", groups=2)
    assert dw.type.shape == (1, 1, 2, 4)
