"""Backward ops of the convolution family (channels_last), made by graphc/autodiff/rules_conv.py.

conv_input_grad(dy, w)   d conv(x, w) / dx applied to dy: (N, *input_spatial, Cin). It is conv_transpose
                         with the forward conv's geometry (its padding, groups, and x's size, which a
                         strided conv does not determine from dy's), so it is an op of its own.
conv_filter_grad(x, dy)  d conv(x, w) / dw applied to dy: (*kernel_size, Cin/groups, Cout).
max_pool_grad(x, dy)     dy routed to each window's maximum: ties="first" gives it to the first maximum in
                         window order (TensorFlow's MaxPoolGrad, 1-D and 2-D), ties="all" to every element
                         equal to the maximum (TensorFlow's MaxPool3DGrad).
avg_pool_grad(dy)        dy / count spread over each window's real (non-padding) cells.
The attributes are the forward op's (strides, padding, dilation, groups); the geometry helpers of conv.py
compute the sizes and TensorFlow's SAME padding, so forward and backward agree by construction.
"""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, is_float
from .conv import (_call, _check_attrs, _check_padding, _pad_spatial, _require_float32, _tap_slices, _taps,
                   _window_c, window_arg, window_output_spatial, window_pads)

TIES = ("first", "all")


# --- shape rules ----------------------------------------------------------------------------------
def _check_tensor(t, n, what, name):
    if t.rank != n + 2 or not 1 <= n <= 3:
        raise ShapeError(f"{what}: {name} must be (batch, *spatial, channels) with {n} spatial axes, "
                         f"received shape {t.shape}")
    if not is_float(t.dtype):
        raise ShapeError(f"{what}: {name} must be floating-point, received dtype {t.dtype}")


def _check_static(values, what, name):
    if any(v is None for v in values):
        raise ShapeError(f"{what}: {name} must be known, received {tuple(values)}")


def _check_dy(dy, batch, spatial, channels, what):
    """dy must have the forward output's shape (batch, *spatial, channels)."""
    expected = (batch, *spatial, channels)
    if len(dy.shape) != len(expected) or not all(dims_compatible(a, b) for a, b in zip(dy.shape, expected)):
        raise ShapeError(f"{what}: the output gradient must have the forward output's shape {expected}, "
                         f"received {dy.shape}")


def _conv_input_grad_type(dy, w, *, input_spatial, strides, padding, dilation=None, groups=1):
    what = "conv_input_grad"
    n = w.rank - 2
    _check_tensor(dy, n, what, "dy")
    _check_attrs(n, strides=strides, dilation=dilation, input_spatial=input_spatial)
    _check_padding(padding)
    if w.dtype != dy.dtype:
        raise ShapeError(f"{what}: dy and kernel dtypes differ: {dy.dtype} and {w.dtype}")
    if groups < 1 or w.shape[-1] % groups:
        raise ShapeError(f"{what}: groups={groups} must divide the {w.shape[-1]} output channels of kernel {w.shape}")
    out = window_output_spatial(input_spatial, w.shape[:-2], strides, padding, dilation)
    _check_dy(dy, dy.shape[0], out, w.shape[-1], what)
    return TensorType((dy.shape[0], *input_spatial, w.shape[-2] * groups), dy.dtype)


def _conv_filter_grad_type(x, dy, *, kernel_size, strides, padding, dilation=None, groups=1):
    what = "conv_filter_grad"
    n = len(kernel_size)
    _check_tensor(x, n, what, "x")
    _check_tensor(dy, n, what, "dy")
    _check_attrs(n, kernel_size=kernel_size, strides=strides, dilation=dilation)
    _check_padding(padding)
    _check_static((x.shape[-1], dy.shape[-1]), what, "the channel counts")
    if x.dtype != dy.dtype:
        raise ShapeError(f"{what}: x and dy dtypes differ: {x.dtype} and {dy.dtype}")
    cin, cout = x.shape[-1], dy.shape[-1]
    if groups < 1 or cin % groups or cout % groups:
        raise ShapeError(f"{what}: groups={groups} must divide the {cin} input and {cout} output channels")
    out = window_output_spatial(x.shape[1:-1], kernel_size, strides, padding, dilation)
    _check_dy(dy, x.shape[0], out, cout, what)
    return TensorType((*kernel_size, cin // groups, cout), x.dtype)


def _max_pool_grad_type(x, dy, *, pool_size, strides, padding, ties="first"):
    what = "max_pool_grad"
    n = len(pool_size)
    _check_tensor(x, n, what, "x")
    _check_attrs(n, pool_size=pool_size, strides=strides)
    _check_padding(padding)
    if ties not in TIES:
        raise ShapeError(f"{what}: ties must be one of {TIES}, received {ties!r}")
    if dy.dtype != x.dtype:
        raise ShapeError(f"{what}: x and dy dtypes differ: {x.dtype} and {dy.dtype}")
    out = window_output_spatial(x.shape[1:-1], pool_size, strides, padding, what="pool window")
    _check_dy(dy, x.shape[0], out, x.shape[-1], what)
    return x


def _avg_pool_grad_type(dy, *, input_spatial, pool_size, strides, padding):
    what = "avg_pool_grad"
    n = len(pool_size)
    _check_tensor(dy, n, what, "dy")
    _check_attrs(n, pool_size=pool_size, strides=strides, input_spatial=input_spatial)
    _check_padding(padding)
    out = window_output_spatial(input_spatial, pool_size, strides, padding, what="pool window")
    _check_dy(dy, dy.shape[0], out, dy.shape[-1], what)
    return TensorType((dy.shape[0], *input_spatial, dy.shape[-1]), dy.dtype)


# --- NumPy references (float64 inside): each tap's cells are one strided slice of the padded input ---------
def _padded_buffer(batch, spatial, pads, channels):
    return np.zeros((batch, *(n + lo + hi for n, (lo, hi) in zip(spatial, pads)), channels))


def _crop(buf, spatial, pads):
    return buf[(slice(None),) + tuple(slice(lo, lo + n) for n, (lo, _) in zip(spatial, pads)) + (slice(None),)]


def _conv_input_grad_ref(dy, w, *, input_spatial, strides, padding, dilation=None, groups=1):
    kernel, (cin_g, cout) = w.shape[:-2], w.shape[-2:]
    dilation = dilation or (1,) * len(kernel)
    pads = window_pads(input_spatial, kernel, strides, padding, dilation)
    buf = _padded_buffer(dy.shape[0], input_spatial, pads, cin_g * groups)
    g_out = cout // groups
    dy64 = dy.astype(np.float64).reshape(*dy.shape[:-1], groups, g_out)
    wg = w.astype(np.float64).reshape(*kernel, cin_g, groups, g_out)
    for tap in _taps(kernel):
        cells = buf[_tap_slices(tap, dy.shape[1:-1], strides, dilation)]
        for g in range(groups):
            cells[..., g * cin_g:(g + 1) * cin_g] += dy64[..., g, :] @ wg[tap][:, g, :].T
    return _crop(buf, input_spatial, pads).astype(dy.dtype)


def _conv_filter_grad_ref(x, dy, *, kernel_size, strides, padding, dilation=None, groups=1):
    dilation = dilation or (1,) * len(kernel_size)
    cin, cout = x.shape[-1], dy.shape[-1]
    cin_g, g_out = cin // groups, cout // groups
    xp = _pad_spatial(x.astype(np.float64), window_pads(x.shape[1:-1], kernel_size, strides, padding, dilation))
    dy2 = dy.astype(np.float64).reshape(-1, cout)
    dw = np.zeros((*kernel_size, cin_g, cout))
    for tap in _taps(kernel_size):
        patch = xp[_tap_slices(tap, dy.shape[1:-1], strides, dilation)].reshape(-1, cin)
        for g in range(groups):
            dw[tap][:, g * g_out:(g + 1) * g_out] = (patch[:, g * cin_g:(g + 1) * cin_g].T
                                                     @ dy2[:, g * g_out:(g + 1) * g_out])
    return dw.astype(x.dtype)


def _max_pool_grad_ref(x, dy, *, pool_size, strides, padding, ties="first"):
    spatial, out = x.shape[1:-1], dy.shape[1:-1]
    pads = window_pads(spatial, pool_size, strides, padding)
    xp = _pad_spatial(x.astype(np.float64), pads, -np.inf)
    real = _pad_spatial(np.ones((1, *spatial, 1), bool), pads, False)
    ones = (1,) * len(pool_size)
    windows = [(xp[s], real[s], s) for s in (_tap_slices(t, out, strides, ones) for t in _taps(pool_size))]
    # The first real cell of a window starts it; a later one takes over only when strictly greater.
    best, arg = np.full(dy.shape, -np.inf), np.full(dy.shape, -1)
    for k, (v, ok, _) in enumerate(windows):
        take = ok & ((arg < 0) | (v > best))
        best, arg = np.where(take, v, best), np.where(take, k, arg)
    buf = np.zeros(xp.shape)
    dy64 = dy.astype(np.float64)
    for k, (v, ok, s) in enumerate(windows):
        hit = (arg == k) if ties == "first" else ok & (v == best)
        buf[s] += np.where(hit, dy64, 0.0)
    return _crop(buf, spatial, pads).astype(x.dtype)


def _avg_pool_grad_ref(dy, *, input_spatial, pool_size, strides, padding):
    """Padded cells count neither in the window's divisor nor receive a gradient (as TensorFlow)."""
    pads = window_pads(input_spatial, pool_size, strides, padding)
    real = _pad_spatial(np.ones((1, *input_spatial, 1)), pads, 0.0)
    ones = (1,) * len(pool_size)
    slices = [_tap_slices(t, dy.shape[1:-1], strides, ones) for t in _taps(pool_size)]
    count = sum(real[s] for s in slices)
    share = dy.astype(np.float64) / count
    buf = _padded_buffer(dy.shape[0], input_spatial, pads, dy.shape[-1])
    for s in slices:
        buf[s] += share
    return _crop(buf, input_spatial, pads).astype(dy.dtype)


defop("conv_input_grad", infer=_conv_input_grad_type, reference=_conv_input_grad_ref, num_inputs=2)
defop("conv_filter_grad", infer=_conv_filter_grad_type, reference=_conv_filter_grad_ref, num_inputs=2)
defop("max_pool_grad", infer=_max_pool_grad_type, reference=_max_pool_grad_ref, num_inputs=2)
defop("avg_pool_grad", infer=_avg_pool_grad_type, reference=_avg_pool_grad_ref, num_inputs=1)


# --- C lowering: kernels/conv_grad.c (graphc_conv_grad.h) ---------------------------------------------------
def _window(in_spatial, out_spatial, kernel, strides, padding, dilation=None):
    dilation = dilation or (1,) * len(kernel)
    pads = [p[0] for p in window_pads(in_spatial, kernel, strides, padding, dilation)]
    return _window_c(in_spatial, out_spatial, kernel, strides, dilation, pads)


def _conv_input_grad_c(ctx, op):
    _require_float32(op)
    dy, w = op.inputs
    dx = op.outputs[0]
    a = op.attrs
    win = _window(a["input_spatial"], dy.shape[1:-1], w.shape[:-2], a["strides"], a["padding"], a.get("dilation"))
    channels = f"{dx.shape[-1]}, {dy.shape[-1]}, {a.get('groups', 1)}"
    scratch = ctx.scratch(f"graphc_conv_input_grad_scratch_floats({ctx.dim(dy, 0)}, {window_arg(win)}, {channels})")
    return _call(win, f"graphc_conv_input_grad_f32({ctx.ptr(dy)}, {ctx.ptr(w)}, {ctx.ptr(dx)}, {ctx.dim(dy, 0)}, "
                      f"&win, {channels}, {scratch});")


def _conv_filter_grad_c(ctx, op):
    _require_float32(op)
    x, dy = op.inputs
    dw = op.outputs[0]
    a = op.attrs
    win = _window(x.shape[1:-1], dy.shape[1:-1], a["kernel_size"], a["strides"], a["padding"], a.get("dilation"))
    channels = f"{x.shape[-1]}, {dy.shape[-1]}, {a.get('groups', 1)}"
    scratch = ctx.scratch(f"graphc_conv_filter_grad_scratch_floats({ctx.dim(x, 0)}, {window_arg(win)}, {channels})")
    return _call(win, f"graphc_conv_filter_grad_f32({ctx.ptr(x)}, {ctx.ptr(dy)}, {ctx.ptr(dw)}, {ctx.dim(x, 0)}, "
                      f"&win, {channels}, {scratch});")


def _max_pool_grad_c(ctx, op):
    _require_float32(op)
    x, dy = op.inputs
    a = op.attrs
    win = _window(x.shape[1:-1], dy.shape[1:-1], a["pool_size"], a["strides"], a["padding"])
    all_ties = int(a.get("ties", "first") == "all")
    return _call(win, f"graphc_max_pool_grad_f32({ctx.ptr(x)}, {ctx.ptr(dy)}, {ctx.ptr(op.outputs[0])}, "
                      f"{ctx.dim(x, 0)}, &win, {x.shape[-1]}, {all_ties});")


def _avg_pool_grad_c(ctx, op):
    _require_float32(op)
    dy, dx = op.inputs[0], op.outputs[0]
    a = op.attrs
    win = _window(a["input_spatial"], dy.shape[1:-1], a["pool_size"], a["strides"], a["padding"])
    return _call(win, f"graphc_avg_pool_grad_f32({ctx.ptr(dy)}, {ctx.ptr(dx)}, {ctx.dim(dy, 0)}, &win, "
                      f"{dy.shape[-1]});")


OPS["conv_input_grad"].lower_c = _conv_input_grad_c
OPS["conv_filter_grad"].lower_c = _conv_filter_grad_c
OPS["max_pool_grad"].lower_c = _max_pool_grad_c
OPS["avg_pool_grad"].lower_c = _avg_pool_grad_c
