"""Gradient rules of convolution and pooling (backward ops in graphc/ir/ops/conv_grad.py).

conv(x, w):            dx = conv_input_grad(dy, w), dw = conv_filter_grad(x, dy).
conv_transpose(x, w):  it is conv_input_grad of the convolution from its output space to its input space
                       (same strides, padding, dilation; kernel (*k, filters, in_channels)), so
                       dx = conv(dy, w) and dw = conv_filter_grad(dy, x), the roles of x and dy swapped.
Pooling follows TensorFlow: a max pool's gradient goes to the first maximum of its window in 1-D and 2-D
(MaxPoolGrad) and to every tied maximum in 3-D (MaxPool3DGrad); an average pool's is divided by the number
of real cells of the window. The backward ops of conv are linear in each input, so they get rules too
(gradients of gradients).
"""
from __future__ import annotations

from ..ir import OPS
from ..tracing import emit


def _geometry(attrs, rank):
    """The window attributes shared by a conv-family op and its backward ops."""
    return dict(strides=tuple(attrs["strides"]), padding=attrs["padding"],
                dilation=tuple(attrs.get("dilation") or (1,) * rank))


def _spatial(t):
    return tuple(t.shape[1:-1])


def _input_grad(dy, w, spatial, geo, groups):
    return emit("conv_input_grad", dy, w, input_spatial=spatial, groups=groups, **geo)


def _filter_grad(x, dy, kernel, geo, groups):
    return emit("conv_filter_grad", x, dy, kernel_size=tuple(kernel), groups=groups, **geo)


def _conv(op, x, y, dy):
    inp, w = x
    geo, groups = _geometry(op.attrs, len(w.shape) - 2), op.attrs.get("groups", 1)
    return [_input_grad(dy[0], w, _spatial(inp), geo, groups), _filter_grad(inp, dy[0], w.shape[:-2], geo, groups)]


def _conv_transpose(op, x, y, dy):
    inp, w = x
    geo = _geometry(op.attrs, len(w.shape) - 2)
    return [emit("conv", dy[0], w, groups=1, **geo), _filter_grad(dy[0], inp, w.shape[:-2], geo, 1)]


def _conv_input_grad(op, x, y, dy):
    """conv_input_grad(d, w) is linear in d and in w: its adjoints are a conv and a filter gradient."""
    d, w = x
    a = op.attrs
    geo, groups = _geometry(a, len(w.shape) - 2), a.get("groups", 1)
    return [emit("conv", dy[0], w, groups=groups, **geo), _filter_grad(dy[0], d, w.shape[:-2], geo, groups)]


def _conv_filter_grad(op, x, y, dy):
    inp, d = x
    a = op.attrs
    geo, groups = _geometry(a, len(a["kernel_size"])), a.get("groups", 1)
    return [_input_grad(d, dy[0], _spatial(inp), geo, groups), emit("conv", inp, dy[0], groups=groups, **geo)]


def _max_pool(op, x, y, dy):
    a = op.attrs
    ties = "all" if len(a["pool_size"]) == 3 else "first"
    return [emit("max_pool_grad", x[0], dy[0], pool_size=tuple(a["pool_size"]), strides=tuple(a["strides"]),
                 padding=a["padding"], ties=ties)]


def _avg_pool(op, x, y, dy):
    a = op.attrs
    return [emit("avg_pool_grad", dy[0], input_spatial=_spatial(x[0]), pool_size=tuple(a["pool_size"]),
                 strides=tuple(a["strides"]), padding=a["padding"])]


def _avg_pool_grad(op, x, y, dy):
    """avg_pool_grad is the adjoint of avg_pool, so its own adjoint is avg_pool."""
    a = op.attrs
    return [emit("avg_pool", dy[0], pool_size=a["pool_size"], strides=a["strides"], padding=a["padding"])]


OPS["conv"].grad = _conv
OPS["conv_transpose"].grad = _conv_transpose
OPS["conv_input_grad"].grad = _conv_input_grad
OPS["conv_filter_grad"].grad = _conv_filter_grad
OPS["max_pool"].grad = _max_pool
OPS["avg_pool"].grad = _avg_pool
OPS["avg_pool_grad"].grad = _avg_pool_grad
