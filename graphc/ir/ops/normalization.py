"""Normalization ops: batch_norm (inference), batch_norm_train (batch statistics), layer_norm.

They stay whole in the IR so that inference BatchNormalization can fold into the
preceding convolution/dense. Statistics are accumulated in float64 in the
reference (it is the oracle); results take the input's dtype.
"""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, is_float


def _check_x(x, what):
    if not is_float(x.dtype):
        raise ShapeError(f"{what} expects a floating-point tensor, received dtype {x.dtype}")


def _channel_axis(x, axis, what):
    if not -x.rank <= axis < x.rank:
        raise ShapeError(f"{what}: axis {axis} is out of range for input shape {x.shape}")
    return axis % x.rank


def _check_vectors(x, ax, vectors, names, what):
    """Per-channel vectors are (C,) with C the size of the channel axis."""
    for v, name in zip(vectors, names):
        if v.rank != 1 or not dims_compatible(v.shape[0], x.shape[ax]) or v.dtype != x.dtype:
            raise ShapeError(f"{what}: {name} must be a {x.dtype} vector of shape ({x.shape[ax]},) for input "
                             f"shape {x.shape} (axis {ax}), received {v.dtype} shape {v.shape}")


def _channel_shape(ndim, ax, n):
    shape = [1] * ndim
    shape[ax] = n
    return shape


def _normalize(x, mean, var, gamma, beta, epsilon):
    """tf.nn.batch_normalization's arithmetic: x * inv + (beta - mean * inv), inv = gamma / sqrt(var + eps)."""
    inv = gamma / np.sqrt(var + epsilon)
    return x * inv + (beta - mean * inv)


# --- batch_norm: inference, with given (moving) statistics -----------------------------------------------------
def _batch_norm_type(x, mean, variance, gamma, beta, axis, epsilon):
    _check_x(x, "batch_norm")
    ax = _channel_axis(x, axis, "batch_norm")
    _check_vectors(x, ax, (mean, variance, gamma, beta), ("mean", "variance", "gamma", "beta"), "batch_norm")
    return x


def _batch_norm_ref(x, mean, variance, gamma, beta, axis, epsilon):
    shape = _channel_shape(x.ndim, axis % x.ndim, -1)
    mean, variance, gamma, beta = (a.reshape(shape) for a in (mean, variance, gamma, beta))
    return _normalize(x, mean, variance, gamma, beta, epsilon)


# --- batch_norm_train: normalize with the batch's own statistics, which are returned too -------------------------
def _batch_norm_train_type(x, gamma, beta, axis, epsilon):
    _check_x(x, "batch_norm_train")
    ax = _channel_axis(x, axis, "batch_norm_train")
    _check_vectors(x, ax, (gamma, beta), ("gamma", "beta"), "batch_norm_train")
    stat = TensorType((x.shape[ax],), x.dtype)
    return x, stat, stat


def _batch_norm_train_ref(x, gamma, beta, axis, epsilon):
    ax = axis % x.ndim
    reduce_axes = tuple(i for i in range(x.ndim) if i != ax)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=reduce_axes)
    var = np.square(x64 - mean.reshape(_channel_shape(x.ndim, ax, -1))).mean(axis=reduce_axes)  # biased, as Keras
    shape = _channel_shape(x.ndim, ax, -1)
    y = _normalize(x64, mean.reshape(shape), var.reshape(shape), gamma.reshape(shape), beta.reshape(shape), epsilon)
    return y, mean, var


# --- layer_norm: statistics of each sample over ``axes`` --------------------------------------------------------
def _layer_norm_type(x, gamma, beta, axes, epsilon, rms_scaling=False):
    """gamma/beta broadcast against x and vary only along ``axes`` (a scalar stands for 'absent')."""
    _check_x(x, "layer_norm")
    axes = sorted(_channel_axis(x, a, "layer_norm") for a in axes)
    if len(set(axes)) != len(axes):
        raise ShapeError(f"layer_norm: repeated axes {tuple(axes)}")
    for p, name in ((gamma, "gamma"), (beta, "beta")):
        offset = x.rank - p.rank
        ok = offset >= 0 and p.dtype == x.dtype and all(
            d == 1 or (offset + i in axes and dims_compatible(d, x.shape[offset + i])) for i, d in enumerate(p.shape))
        if not ok:
            raise ShapeError(f"layer_norm: {name} of dtype {p.dtype} shape {p.shape} does not broadcast along axes "
                             f"{tuple(axes)} of the {x.dtype} input of shape {x.shape}")
    return x


def _layer_norm_ref(x, gamma, beta, axes, epsilon, rms_scaling=False):
    axes = tuple(a % x.ndim for a in axes)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = np.square(x64 - mean).mean(axis=axes, keepdims=True)
    inv = 1.0 / np.sqrt(var + epsilon) * gamma
    if rms_scaling:  # Keras's (deprecated) rms_scaling divides by the standard deviation without centring
        return x64 * inv + beta
    return x64 * inv + (beta - mean * inv)


defop("batch_norm", infer=_batch_norm_type, reference=_batch_norm_ref, num_inputs=5)
defop("batch_norm_train", infer=_batch_norm_train_type, reference=_batch_norm_train_ref, num_inputs=3)
defop("layer_norm", infer=_layer_norm_type, reference=_layer_norm_ref, num_inputs=3)


# --- C lowering (kernels/norm.c): the input viewed as (outer, n, inner) around the normalized axes ------------
def _float32_only(x, what):
    if x.dtype != "float32":
        raise ShapeError(f"{what} in C supports float32 tensors, received {x.dtype}")


def _batch_norm_c(ctx, op):
    x, mean, var, gamma, beta = op.inputs
    _float32_only(x, "batch_norm")
    ax = op.attrs["axis"] % x.type.rank
    eps = repr(float(np.float32(op.attrs["epsilon"]))) + "f"  # the reference adds eps in float32 too
    return [f"graphc_batch_norm({ctx.ptr(x)}, {ctx.ptr(op.outputs[0])}, {ctx.ptr(mean)}, {ctx.ptr(var)}, "
            f"{ctx.ptr(gamma)}, {ctx.ptr(beta)}, {eps}, {ctx.prod(x, 0, ax)}, {ctx.dim(x, ax)}, "
            f"{ctx.prod(x, ax + 1)});"]


def _layer_norm_c(ctx, op):
    x, gamma, beta = op.inputs
    _float32_only(x, "layer_norm")
    axes = sorted(a % x.type.rank for a in op.attrs["axes"])
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise ShapeError(f"layer_norm in C needs adjacent axes, received {tuple(axes)}")
    if any(x.shape[a] is None for a in axes):
        raise ShapeError(f"layer_norm in C needs static sizes on axes {tuple(axes)}, received shape {x.shape}")
    n = int(np.prod([x.shape[a] for a in axes]))
    sizes = []
    for p, name in ((gamma, "gamma"), (beta, "beta")):
        # One value, or one per normalized element (in their order: p varies along ``axes`` only).
        size = ctx.static_numel(p)
        if size not in (1, n):
            raise ShapeError(f"layer_norm in C needs {name} with 1 or {n} values (all of axes {tuple(axes)}), "
                             f"received shape {p.shape}")
        sizes.append(size)
    return [f"graphc_layer_norm({ctx.ptr(x)}, {ctx.ptr(op.outputs[0])}, {ctx.ptr(gamma)}, {sizes[0]}, "
            f"{ctx.ptr(beta)}, {sizes[1]}, {float(op.attrs['epsilon'])!r}, {int(bool(op.attrs.get('rms_scaling')))}, "
            f"{ctx.prod(x, 0, axes[0])}, {n}, {ctx.prod(x, axes[-1] + 1)});"]


OPS["batch_norm"].lower_c = _batch_norm_c
OPS["layer_norm"].lower_c = _layer_norm_c
