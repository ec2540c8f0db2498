"""Normalization ops: batch_norm (inference), batch_norm_train (batch statistics), layer_norm.

They stay whole in the IR so that inference BatchNormalization can fold into the
preceding convolution/dense. Statistics are accumulated in float64 in the
reference (it is the oracle); results take the input's dtype.
"""
from __future__ import annotations

import numpy as np

from ..registry import defop
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
