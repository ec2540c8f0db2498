"""Backward ops of normalization and embedding, and the C lowering of training batch normalization.

- batch_norm_grad(x, dy, mean, variance, gamma) -> (dx, dgamma, dbeta): one fused pass pair per channel.
  ``train=True``: mean/variance are the batch's own statistics (their dependence on x is included);
  ``train=False``: they are constants (inference form, dx = dy * gamma / sqrt(variance + eps)).
- layer_norm_grad(x, gamma, dy) -> (dx, xhat): xhat is the normalized input, so dgamma/dbeta are plain
  reductions of dy * xhat and dy in the gradient rule.
- scatter_add(ids, dy) -> the table-shaped sum of the rows of dy at ``ids`` (the adjoint of gather).

References accumulate in float64 (they are the oracle); results take the input's dtype.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, is_float
from .gather import _check_ids
from .normalization import _channel_shape, _layer_norm_type


def _same_shape(a, b):
    return a.rank == b.rank and all(dims_compatible(p, q) for p, q in zip(a.shape, b.shape))


# --- batch_norm_grad ------------------------------------------------------------------------------------
def _batch_norm_grad_type(x, dy, mean, variance, gamma, axis, epsilon, train):
    if not is_float(x.dtype) or dy.dtype != x.dtype or not _same_shape(x, dy):
        raise ShapeError(f"batch_norm_grad: dy must match x, received x {x.dtype} {x.shape} and dy {dy.dtype} "
                         f"{dy.shape}")
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"batch_norm_grad: axis {axis} is out of range for input shape {x.shape}")
    ax = axis % x.rank
    for v, name in ((mean, "mean"), (variance, "variance"), (gamma, "gamma")):
        if v.rank != 1 or not dims_compatible(v.shape[0], x.shape[ax]) or v.dtype != x.dtype:
            raise ShapeError(f"batch_norm_grad: {name} must be a {x.dtype} vector of shape ({x.shape[ax]},), "
                             f"received {v.dtype} {v.shape}")
    vec = TensorType((x.shape[ax],), x.dtype)
    return x, vec, vec


def _batch_norm_grad_ref(x, dy, mean, variance, gamma, axis, epsilon, train):
    ax = axis % x.ndim
    red = tuple(i for i in range(x.ndim) if i != ax)
    shape = _channel_shape(x.ndim, ax, -1)
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    mean, variance, gamma = (a.astype(np.float64) for a in (mean, variance, gamma))
    rstd = 1.0 / np.sqrt(variance + epsilon)
    xc = x64 - mean.reshape(shape)
    dbeta = dy64.sum(axis=red)
    sdyx = (dy64 * xc).sum(axis=red)
    k = (gamma * rstd).reshape(shape)
    if train:
        n = x.size // x.shape[ax]
        dx = k * (dy64 - (dbeta / n).reshape(shape) - xc * (sdyx * rstd * rstd / n).reshape(shape))
    else:
        dx = k * dy64
    return dx, sdyx * rstd, dbeta


defop("batch_norm_grad", infer=_batch_norm_grad_type, reference=_batch_norm_grad_ref, num_inputs=5)


# --- layer_norm_grad -------------------------------------------------------------------------------------
def _layer_norm_grad_type(x, gamma, dy, axes, epsilon, rms_scaling=False):
    _layer_norm_type(x, gamma, gamma, axes, epsilon, rms_scaling)
    if dy.dtype != x.dtype or not _same_shape(x, dy):
        raise ShapeError(f"layer_norm_grad: dy must match x, received x {x.dtype} {x.shape} and dy {dy.dtype} "
                         f"{dy.shape}")
    return x, x


def _layer_norm_grad_ref(x, gamma, dy, axes, epsilon, rms_scaling=False):
    """y = xhat * gamma + beta with xhat = (x - mean) * rstd (rms_scaling: x * rstd), rstd = 1/sqrt(var + eps)
    and var the centred variance either way, so dx = rstd * (g - mean(g) - (x - mean) * rstd * mean(g * xhat))
    with g = dy * gamma (without the mean(g) term under rms_scaling)."""
    axes = tuple(a % x.ndim for a in axes)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    xc = x64 - mean
    rstd = 1.0 / np.sqrt(np.square(xc).mean(axis=axes, keepdims=True) + epsilon)
    xhat = (x64 if rms_scaling else xc) * rstd
    g = dy.astype(np.float64) * gamma.astype(np.float64)
    mg = 0.0 if rms_scaling else g.mean(axis=axes, keepdims=True)
    dx = rstd * (g - mg - xc * rstd * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, xhat


defop("layer_norm_grad", infer=_layer_norm_grad_type, reference=_layer_norm_grad_ref, num_inputs=3)


# --- scatter_add: the adjoint of gather ------------------------------------------------------------------
def _scatter_add_type(ids, dy, rows, axis=0):
    """dy has gather's output shape prefix + ids.shape + suffix; the result is prefix + (rows,) + suffix."""
    if ids.dtype not in ("int32", "int64"):
        raise ShapeError(f"scatter_add needs integer ids, received dtype {ids.dtype}")
    if not is_float(dy.dtype):
        raise ShapeError(f"scatter_add adds floating-point rows, received dtype {dy.dtype}")
    if not isinstance(rows, int) or rows <= 0:
        raise ShapeError(f"scatter_add needs a known positive number of rows, received rows={rows!r}")
    if not 0 <= axis <= dy.rank - ids.rank:
        raise ShapeError(f"scatter_add: axis {axis} does not fit ids of shape {ids.shape} in dy of shape {dy.shape}")
    if not all(dims_compatible(a, b) for a, b in zip(ids.shape, dy.shape[axis:axis + ids.rank])):
        raise ShapeError(f"scatter_add: dy of shape {dy.shape} does not hold ids of shape {ids.shape} at axis {axis}")
    return TensorType(dy.shape[:axis] + (rows,) + dy.shape[axis + ids.rank:], dy.dtype)


def _scatter_add_ref(ids, dy, rows, axis=0):
    _check_ids(ids, rows, axis)
    outer = math.prod(dy.shape[:axis])
    inner = math.prod(dy.shape[axis + ids.ndim:])
    out = np.zeros(dy.shape[:axis] + (rows,) + dy.shape[axis + ids.ndim:], dy.dtype)
    # np.add.at adds in id order, as the C kernel does: repeated ids sum in the same order, bit for bit.
    np.add.at(out.reshape(outer, rows, inner), (slice(None), ids.reshape(-1)), dy.reshape(outer, ids.size, inner))
    return out


defop("scatter_add", infer=_scatter_add_type, reference=_scatter_add_ref, num_inputs=2)


# --- C lowering (kernels/norm_grad.c): tensors viewed as (outer, n, inner) around the channel/normalized axes --
def _float32(v, what):
    if v.dtype != "float32":
        raise ShapeError(f"{what} in C supports float32 tensors, received {v.dtype}")


def _batch_norm_train_c(ctx, op):
    x, gamma, beta = op.inputs
    y, mean, var = op.outputs
    _float32(x, "batch_norm_train")
    ax = op.attrs["axis"] % x.type.rank
    return [f"graphc_batch_norm_train({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.ptr(mean)}, {ctx.ptr(var)}, "
            f"{ctx.ptr(gamma)}, {ctx.ptr(beta)}, {float(op.attrs['epsilon'])!r}, {ctx.prod(x, 0, ax)}, "
            f"{ctx.dim(x, ax)}, {ctx.prod(x, ax + 1)});"]


def _batch_norm_grad_c(ctx, op):
    x, dy, mean, var, gamma = op.inputs
    dx, dgamma, dbeta = op.outputs
    _float32(x, "batch_norm_grad")
    ax = op.attrs["axis"] % x.type.rank
    return [f"graphc_batch_norm_grad({ctx.ptr(x)}, {ctx.ptr(dy)}, {ctx.ptr(mean)}, {ctx.ptr(var)}, "
            f"{ctx.ptr(gamma)}, {float(op.attrs['epsilon'])!r}, {int(bool(op.attrs['train']))}, {ctx.ptr(dx)}, "
            f"{ctx.ptr(dgamma)}, {ctx.ptr(dbeta)}, {ctx.prod(x, 0, ax)}, {ctx.dim(x, ax)}, {ctx.prod(x, ax + 1)});"]


def _layer_norm_grad_c(ctx, op):
    x, gamma, dy = op.inputs
    dx, xhat = op.outputs
    _float32(x, "layer_norm_grad")
    axes = sorted(a % x.type.rank for a in op.attrs["axes"])
    if axes != list(range(axes[0], axes[-1] + 1)) or any(x.shape[a] is None for a in axes):
        raise ShapeError(f"layer_norm_grad in C needs adjacent axes of static sizes, received axes {tuple(axes)} "
                         f"of shape {x.shape}")
    n = math.prod(x.shape[a] for a in axes)
    size = ctx.static_numel(gamma)
    if size not in (1, n):
        raise ShapeError(f"layer_norm_grad in C needs gamma with 1 or {n} values, received shape {gamma.shape}")
    return [f"graphc_layer_norm_grad({ctx.ptr(x)}, {ctx.ptr(gamma)}, {size}, {ctx.ptr(dy)}, "
            f"{float(op.attrs['epsilon'])!r}, {int(bool(op.attrs.get('rms_scaling')))}, {ctx.ptr(dx)}, "
            f"{ctx.ptr(xhat)}, {ctx.prod(x, 0, axes[0])}, {n}, {ctx.prod(x, axes[-1] + 1)});"]


def _scatter_add_c(ctx, op):
    """Like gather, returns GRAPHC_ERR_ID_RANGE on a bad id (the forward gather has rejected it already)."""
    ids, dy = op.inputs
    out = op.outputs[0]
    _float32(dy, "scatter_add")
    ax = op.attrs.get("axis", 0)
    return [f"if (graphc_scatter_add({ctx.ptr(ids)}, {int(ids.dtype == 'int64')}, {ctx.ptr(dy)}, {ctx.ptr(out)}, "
            f"{ctx.prod(out, 0, ax)}, {op.attrs['rows']}, {ctx.prod(out, ax + 1)}, {ctx.numel(ids)}) != 0) "
            f"return GRAPHC_ERR_ID_RANGE;"]


OPS["batch_norm_train"].lower_c = _batch_norm_train_c
OPS["batch_norm_grad"].lower_c = _batch_norm_grad_c
OPS["layer_norm_grad"].lower_c = _layer_norm_grad_c
OPS["scatter_add"].lower_c = _scatter_add_c
