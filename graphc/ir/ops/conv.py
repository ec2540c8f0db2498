"""Sliding-window ops on channels_last tensors (N, *spatial, C): conv, conv_transpose, max_pool, avg_pool.

The geometry helpers (output sizes, TensorFlow's SAME padding split) are the one
place these sizes are computed; layers, gradients and codegen reuse them.
The references loop over the kernel taps (a few dozen at most) and do one
matmul per tap, so they stay fast on realistic images.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, is_float

PADDINGS = ("valid", "same")


# --- geometry -----------------------------------------------------------------------------------
def dilated(kernel: int, dilation: int) -> int:
    return (kernel - 1) * dilation + 1


def same_pads(size: int, kernel: int, stride: int) -> tuple:
    """TensorFlow's SAME padding of one axis: (before, after), the odd cell going after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def window_pads(spatial, kernel, strides, padding, dilation=None) -> list:
    """(before, after) per spatial axis of a known size, for a conv or pool window."""
    dilation = dilation or (1,) * len(kernel)
    if padding == "valid":
        return [(0, 0)] * len(spatial)
    return [same_pads(n, dilated(k, d), s) for n, k, s, d in zip(spatial, kernel, strides, dilation)]


def window_output_spatial(spatial, kernel, strides, padding, dilation=None, what="kernel") -> tuple:
    """Output spatial size of a conv/pool window (None stays None); raises ShapeError when it is empty."""
    dilation = dilation or (1,) * len(kernel)
    out = []
    for n, k, s, d in zip(spatial, kernel, strides, dilation):
        if n is None:
            out.append(None)
        elif padding == "same":
            out.append((n - 1) // s + 1)
        else:
            out.append((n - dilated(k, d)) // s + 1)
    if any(o is not None and o <= 0 for o in out):
        window = tuple(dilated(k, d) for k, d in zip(kernel, dilation))
        extent = f"{tuple(kernel)}" + (f" (dilated to {window})" if window != tuple(kernel) else "")
        raise ShapeError(f"the {what} of spatial size {extent} is larger than the input's spatial size "
                         f"{tuple(spatial)} with padding='valid': expected spatial dimensions >= {window}, "
                         f"received {tuple(spatial)} (computed output size {tuple(out)})")
    return tuple(out)


def conv_transpose_output_size(size, kernel, stride, padding, output_padding=None, dilation=1):
    """Keras's transposed-convolution output length (None stays None)."""
    if size is None:
        return None
    k = dilated(kernel, dilation)
    if padding == "valid":
        extra = max(k, stride) - k if output_padding is None else output_padding
        return (size - 1) * stride + k + extra
    if output_padding is None:
        return size * stride
    return (size - 1) * stride + k % 2 + output_padding


def conv_transpose_pad_before(size, out, kernel, stride, padding, dilation=1) -> int:
    """Cells cropped at the start: TF pads the forward conv (out -> size) with SAME's split."""
    if padding == "valid":
        return 0
    return max((size - 1) * stride + dilated(kernel, dilation) - out, 0) // 2


# --- shape rules ----------------------------------------------------------------------------------
def _check_attrs(rank, **tuples):
    for name, value in tuples.items():
        low = 0 if name == "output_padding" else 1
        if value is not None and (len(value) != rank or any(
                not isinstance(v, (int, np.integer)) or v < low for v in value)):
            raise ShapeError(f"{name} must be {rank} integers >= {low} (one per spatial axis), received {value}")


def _check_input(x, n_spatial, what):
    if x.rank != n_spatial + 2 or not 1 <= n_spatial <= 3:
        raise ShapeError(f"{what} expects an input of shape (batch, *spatial, channels) with 1 to 3 spatial axes; "
                         f"expected rank {n_spatial + 2}, received shape {x.shape}")
    if not is_float(x.dtype):
        raise ShapeError(f"{what} expects a floating-point input, received dtype {x.dtype}")


def _check_padding(padding):
    if padding not in PADDINGS:
        raise ShapeError(f"padding must be one of {PADDINGS}, received {padding!r}")


def _conv_type(x, w, strides, padding, dilation, groups=1):
    n = w.rank - 2
    _check_input(x, n, "conv")
    _check_attrs(n, strides=strides, dilation=dilation)
    _check_padding(padding)
    if w.dtype != x.dtype:
        raise ShapeError(f"conv: input and kernel dtypes differ: {x.dtype} and {w.dtype}")
    kernel, cin_g, cout = w.shape[:-2], w.shape[-2], w.shape[-1]
    if groups < 1 or cout % groups:
        raise ShapeError(f"conv: groups={groups} must divide the {cout} output channels of kernel {w.shape}")
    if not dims_compatible(x.shape[-1], cin_g * groups):
        raise ShapeError(f"conv: kernel {w.shape} with groups={groups} expects {cin_g * groups} input channels, "
                         f"received input shape {x.shape}")
    spatial = window_output_spatial(x.shape[1:-1], kernel, strides, padding, dilation)
    return TensorType((x.shape[0], *spatial, cout), x.dtype)


def _conv_transpose_type(x, w, strides, padding, output_padding, dilation):
    n = w.rank - 2
    _check_input(x, n, "conv_transpose")
    _check_attrs(n, strides=strides, dilation=dilation, output_padding=output_padding)
    _check_padding(padding)
    if w.dtype != x.dtype:
        raise ShapeError(f"conv_transpose: input and kernel dtypes differ: {x.dtype} and {w.dtype}")
    if not dims_compatible(x.shape[-1], w.shape[-1]):
        raise ShapeError(f"conv_transpose: kernel {w.shape} (*kernel_size, filters, in_channels) expects "
                         f"{w.shape[-1]} input channels, received input shape {x.shape}")
    extra = output_padding or (None,) * n
    spatial = tuple(conv_transpose_output_size(size, k, s, padding, p, d)
                    for size, k, s, p, d in zip(x.shape[1:-1], w.shape[:-2], strides, extra, dilation))
    if any(o is not None and o <= 0 for o in spatial):
        raise ShapeError(f"conv_transpose: input shape {x.shape} with kernel {w.shape} gives an empty output "
                         f"of spatial size {spatial}")
    # As in TensorFlow, the convolution this op transposes must map the output size back to the input size.
    back = window_output_spatial(spatial, w.shape[:-2], strides, padding, dilation)
    if any(b is not None and m is not None and b != m for b, m in zip(back, x.shape[1:-1])):
        raise ShapeError(f"conv_transpose: with kernel {w.shape}, strides {tuple(strides)}, padding='{padding}' "
                         f"and output_padding={output_padding}, the output spatial size {spatial} does not "
                         f"convolve back to the input's {x.shape[1:-1]} (TensorFlow rejects this combination); "
                         f"expected output_padding such that it does")
    return TensorType((x.shape[0], *spatial, w.shape[-2]), x.dtype)


def _pool_type(x, pool_size, strides, padding):
    n = len(pool_size)
    _check_input(x, n, "pooling")
    _check_attrs(n, pool_size=pool_size, strides=strides)
    _check_padding(padding)
    spatial = window_output_spatial(x.shape[1:-1], pool_size, strides, padding, what="pool window")
    return TensorType((x.shape[0], *spatial, x.shape[-1]), x.dtype)


# --- NumPy references -------------------------------------------------------------------------------
def _taps(kernel):
    return itertools.product(*(range(k) for k in kernel))


def _tap_slices(tap, out, strides, dilation):
    """Index of the input cells that kernel tap ``tap`` meets, for every output position."""
    return (slice(None),) + tuple(slice(t * d, t * d + s * (o - 1) + 1, s)
                                  for t, o, s, d in zip(tap, out, strides, dilation)) + (slice(None),)


def _pad_spatial(x, pads, value=0.0):
    return np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=value)


def _conv_ref(x, w, strides, padding, dilation, groups=1):
    kernel = w.shape[:-2]
    out = window_output_spatial(x.shape[1:-1], kernel, strides, padding, dilation)
    xp = _pad_spatial(x.astype(np.float64), window_pads(x.shape[1:-1], kernel, strides, padding, dilation))
    cin_g, cout = w.shape[-2:]
    # Kernel (*k, Cin/g, Cout) -> (*k, Cin/g, g, Cout/g): output channel o belongs to group o // (Cout/g).
    wg = w.astype(np.float64).reshape(*kernel, cin_g, groups, cout // groups)
    y = np.zeros((x.shape[0], *out, groups, cout // groups))
    for tap in _taps(kernel):
        patch = xp[_tap_slices(tap, out, strides, dilation)]
        patch = patch.reshape(*patch.shape[:-1], groups, cin_g)
        for g in range(groups):  # matmul, not einsum: it goes through BLAS
            y[..., g, :] += patch[..., g, :] @ wg[tap][:, g, :]
    return y.reshape(*y.shape[:-2], cout).astype(x.dtype)


def _conv_transpose_ref(x, w, strides, padding, output_padding, dilation):
    kernel, in_spatial = w.shape[:-2], x.shape[1:-1]
    extra = output_padding or (None,) * len(kernel)
    out = [conv_transpose_output_size(n, k, s, padding, p, d)
           for n, k, s, p, d in zip(in_spatial, kernel, strides, extra, dilation)]
    before = [conv_transpose_pad_before(n, o, k, s, padding, d)
              for n, o, k, s, d in zip(in_spatial, out, kernel, strides, dilation)]
    # Scatter every input cell through every tap into a buffer large enough for all of them and the crop.
    full = [max((n - 1) * s + dilated(k, d), b + o)
            for n, k, s, d, b, o in zip(in_spatial, kernel, strides, dilation, before, out)]
    buf = np.zeros((x.shape[0], *full, w.shape[-2]))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for tap in _taps(kernel):
        buf[_tap_slices(tap, in_spatial, strides, dilation)] += x64 @ w64[tap].T
    crop = (slice(None),) + tuple(slice(b, b + o) for b, o in zip(before, out)) + (slice(None),)
    return buf[crop].astype(x.dtype)


def _pool_windows(x, pool_size, strides, padding, fill):
    """Yield, per pool tap, the input cells it meets at every output position (padding holds ``fill``)."""
    out = window_output_spatial(x.shape[1:-1], pool_size, strides, padding)
    xp = _pad_spatial(x, window_pads(x.shape[1:-1], pool_size, strides, padding), fill)
    ones = (1,) * len(pool_size)
    for tap in _taps(pool_size):
        yield xp[_tap_slices(tap, out, strides, ones)]


def _max_pool_ref(x, pool_size, strides, padding):
    return np.maximum.reduce(list(_pool_windows(x, pool_size, strides, padding, -np.inf))).astype(x.dtype)


def _avg_pool_ref(x, pool_size, strides, padding):
    """Padded cells count neither in the sum nor in the divisor (as TensorFlow)."""
    total = sum(w.astype(np.float64) for w in _pool_windows(x, pool_size, strides, padding, 0.0))
    ones = np.ones((1, *x.shape[1:-1], 1))
    count = sum(_pool_windows(ones, pool_size, strides, padding, 0.0))
    return (total / count).astype(x.dtype)


defop("conv", infer=_conv_type, reference=_conv_ref, num_inputs=2)
defop("conv_transpose", infer=_conv_transpose_type, reference=_conv_transpose_ref, num_inputs=2)
defop("max_pool", infer=_pool_type, reference=_max_pool_ref, num_inputs=1)
defop("avg_pool", infer=_pool_type, reference=_avg_pool_ref, num_inputs=1)


# --- conv / conv_transpose with the bias and activation fused into the kernel (made by passes/fusion.py) ---
def _fused_activation(activation):
    from .linalg import DENSE_ACTIVATIONS
    if activation not in DENSE_ACTIVATIONS:
        raise ShapeError(f"activation must be one of {sorted(DENSE_ACTIVATIONS)}, received {activation!r}")
    return DENSE_ACTIVATIONS[activation]


def _check_bias(what, bias, channels):
    if bias and bias[0].shape != (channels,):
        raise ShapeError(f"{what} bias must have shape ({channels},), received {bias[0].shape}")


def _conv_bias_act_type(x, w, *bias, strides, padding, dilation, groups=1, activation="linear"):
    _fused_activation(activation)
    _check_bias("conv_bias_act", bias, w.shape[-1])
    return _conv_type(x, w, strides, padding, dilation, groups)


def _conv_transpose_bias_act_type(x, w, *bias, strides, padding, output_padding, dilation, activation="linear"):
    _fused_activation(activation)
    _check_bias("conv_transpose_bias_act", bias, w.shape[-2])
    return _conv_transpose_type(x, w, strides, padding, output_padding, dilation)


def _epilogue_ref(y, bias, activation):
    from .elementwise import UNARY
    y = y + (bias[0] if bias else 0)
    return UNARY["identity" if activation == "linear" else activation](y).astype(y.dtype)


def _conv_bias_act_ref(x, w, *bias, strides, padding, dilation, groups=1, activation="linear"):
    return _epilogue_ref(_conv_ref(x, w, strides, padding, dilation, groups), bias, activation)


def _conv_transpose_bias_act_ref(x, w, *bias, strides, padding, output_padding, dilation, activation="linear"):
    return _epilogue_ref(_conv_transpose_ref(x, w, strides, padding, output_padding, dilation), bias, activation)


# --- conv_bias_act followed by MaxPooling2D(2) (2x2 windows, stride 2, no padding), in one kernel that never
# writes the convolution's output (made by passes/fusion.py at inference) -----------------------------------
POOL2 = dict(pool_size=(2, 2), strides=(2, 2), padding="valid")


def _conv_max_pool_type(x, w, *bias, strides, padding, dilation, groups=1, activation="linear"):
    if w.rank != 4:
        raise ShapeError(f"conv_max_pool is a 2-D op: expected a kernel of rank 4, received shape {w.shape}")
    return _pool_type(_conv_bias_act_type(x, w, *bias, strides=strides, padding=padding, dilation=dilation,
                                          groups=groups, activation=activation), **POOL2)


def _conv_max_pool_ref(x, w, *bias, strides, padding, dilation, groups=1, activation="linear"):
    y = _conv_bias_act_ref(x, w, *bias, strides=strides, padding=padding, dilation=dilation, groups=groups,
                           activation=activation)
    return _max_pool_ref(y, **POOL2)


defop("conv_bias_act", infer=_conv_bias_act_type, reference=_conv_bias_act_ref)
defop("conv_max_pool", infer=_conv_max_pool_type, reference=_conv_max_pool_ref)
defop("conv_transpose_bias_act", infer=_conv_transpose_bias_act_type, reference=_conv_transpose_bias_act_ref)


# --- C lowering: kernels/conv.c (graphc_conv.h) ------------------------------------------------------------
def _window_c(in_spatial, out_spatial, kernel, strides, dilation, pads_before) -> str:
    """A graphc_window initializer; 1-D and 2-D windows get leading axes of size 1."""
    def three(values, fill):
        values = tuple(int(v) for v in values)
        return "{" + ", ".join(str(v) for v in (fill,) * (3 - len(values)) + values) + "}"
    return "{" + ", ".join([three(in_spatial, 1), three(out_spatial, 1), three(kernel, 1), three(strides, 1),
                            three(dilation, 1), three(pads_before, 0)]) + "}"


def _require_float32(op):
    if any(v.dtype != "float32" for v in [*op.inputs, *op.outputs]):
        raise ValueError(f"{op.kind} is lowered for float32 tensors only, received "
                         f"{[v.dtype for v in op.inputs]}")


def window_arg(window) -> str:
    """A pointer to the window as a C99 compound literal: how a sizing expression, evaluated outside the op's
    block (where ``win`` is not in scope), names it."""
    return f"&(const graphc_window){window}"


def _call(window, call):
    return ["{", f"    static const graphc_window win = {window};", f"    {call}", "}"]


def _conv_operands(ctx, op, out_spatial):
    """What a convolution's C call takes besides its tensors: the window (a C initializer; out_spatial the
    convolution's own output size), the bias pointer, the activation, the channel arguments and the
    pointer to its kernel prepared ahead (packed for the GEMM, transformed for Winograd)."""
    x, w = op.inputs[:2]
    a = op.attrs
    kernel, spatial = w.shape[:-2], x.shape[1:-1]
    dilation = a.get("dilation") or (1,) * len(kernel)
    pads = [p[0] for p in window_pads(spatial, kernel, a["strides"], a["padding"], dilation)]
    window = _window_c(spatial, out_spatial, kernel, a["strides"], dilation, pads)
    bias = ctx.ptr(op.inputs[2]) if len(op.inputs) > 2 else "NULL"
    act = _fused_activation(a.get("activation", "linear"))
    channels = f"{x.shape[-1]}, {w.shape[-1]}, {a.get('groups', 1)}"
    packed = ctx.prepared_param(w, f"graphc_conv_prepared_floats({window_arg(window)}, {channels})",
                                f"graphc_conv_prepare({{src}}, {window_arg(window)}, {channels}, {{dst}});",
                                f"{op.scope or 'conv'}: conv kernel, packed for its GEMM and transformed for "
                                "Winograd, where they apply")
    return window, bias, act, channels, packed


def _conv_c(ctx, op):
    _require_float32(op)
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    window, bias, act, channels, packed = _conv_operands(ctx, op, y.shape[1:-1])
    scratch = ctx.scratch(f"graphc_conv_scratch_floats({ctx.dim(x, 0)}, {window_arg(window)}, {channels})")
    return _call(window, f"graphc_conv_prepared_f32({ctx.ptr(x)}, {ctx.ptr(w)}, {packed}, {bias}, {ctx.ptr(y)}, "
                         f"{ctx.dim(x, 0)}, &win, {channels}, {act}, {scratch});")


def _conv_max_pool_c(ctx, op):
    _require_float32(op)
    x, w, y = op.inputs[0], op.inputs[1], op.outputs[0]
    a = op.attrs
    conv_out = window_output_spatial(x.shape[1:-1], w.shape[:-2], a["strides"], a["padding"], a.get("dilation"))
    window, bias, act, channels, packed = _conv_operands(ctx, op, conv_out)
    scratch = ctx.scratch(f"graphc_conv_max_pool_scratch_floats({ctx.dim(x, 0)}, {window_arg(window)}, {channels}, "
                          f"{act})")
    return _call(window, f"graphc_conv_max_pool_f32({ctx.ptr(x)}, {ctx.ptr(w)}, {packed}, {bias}, {ctx.ptr(y)}, "
                         f"{ctx.dim(x, 0)}, &win, {channels}, {act}, {scratch});")


def _conv_transpose_c(ctx, op):
    _require_float32(op)
    x, w = op.inputs[:2]
    y = op.outputs[0]
    a = op.attrs
    kernel, in_spatial, out_spatial = w.shape[:-2], x.shape[1:-1], y.shape[1:-1]
    dilation = a.get("dilation") or (1,) * len(kernel)
    pads = [conv_transpose_pad_before(n, o, k, s, a["padding"], d)
            for n, o, k, s, d in zip(in_spatial, out_spatial, kernel, a["strides"], dilation)]
    window = _window_c(in_spatial, out_spatial, kernel, a["strides"], dilation, pads)
    bias = ctx.ptr(op.inputs[2]) if len(op.inputs) > 2 else "NULL"
    act = _fused_activation(a.get("activation", "linear"))
    scratch = ctx.scratch(f"graphc_conv_transpose_scratch_floats({ctx.dim(x, 0)}, {window_arg(window)}, "
                          f"{x.shape[-1]}, {w.shape[-2]})")
    return _call(window, f"graphc_conv_transpose_f32({ctx.ptr(x)}, {ctx.ptr(w)}, {bias}, {ctx.ptr(y)}, "
                         f"{ctx.dim(x, 0)}, &win, {x.shape[-1]}, {w.shape[-2]}, {act}, {scratch});")


def _pool_c(ctx, op):
    _require_float32(op)
    x, y = op.inputs[0], op.outputs[0]
    a = op.attrs
    spatial = x.shape[1:-1]
    pads = [p[0] for p in window_pads(spatial, a["pool_size"], a["strides"], a["padding"])]
    window = _window_c(spatial, y.shape[1:-1], a["pool_size"], a["strides"], (1,) * len(spatial), pads)
    kind = "max" if op.kind == "max_pool" else "avg"
    return _call(window, f"graphc_{kind}_pool_f32({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.dim(x, 0)}, &win, "
                         f"{x.shape[-1]});")


for _name, _lower in [("conv", _conv_c), ("conv_bias_act", _conv_c), ("conv_max_pool", _conv_max_pool_c),
                      ("conv_transpose", _conv_transpose_c),
                      ("conv_transpose_bias_act", _conv_transpose_c), ("max_pool", _pool_c),
                      ("avg_pool", _pool_c)]:
    OPS[_name].lower_c = _lower
