"""Gradient rules of normalization (batch_norm, batch_norm_train, layer_norm), embedding (gather) and random ops.

The heavy parts are fused backward ops (graphc/ir/ops/norm_grad.py, kernels/norm_grad.c); the per-channel
vector algebra around them is ordinary IR.
"""
from __future__ import annotations

from .. import ops
from ..ir import OPS
from ..tracing import emit
from .util import sum_to


def _channel(v, x, ax):
    """A (C,) vector shaped to broadcast along axis ``ax`` of x."""
    return ops.reshape(v, tuple(-1 if i == ax else 1 for i in range(len(x.shape))))


def _batch_norm(op, x, y, dy):
    """Inference form y = (x - mean) * gamma * rstd + beta, rstd = 1 / sqrt(variance + eps). The moving
    statistics are not trained, but their (cheap, per-channel) gradients are exact too."""
    xv, mean, var, gamma, beta = x
    eps = op.attrs["epsilon"]
    dx, dgamma, dbeta = emit("batch_norm_grad", xv, dy[0], mean, var, gamma, axis=op.attrs["axis"], epsilon=eps,
                             train=False)
    rstd = ops.rsqrt(var + eps)
    dmean = -dbeta * gamma * rstd
    dvar = -0.5 * dgamma * gamma * rstd * rstd
    return [dx, dmean, dvar, dgamma, dbeta]


def _batch_norm_train(op, x, y, dy):
    """Batch statistics: the fused backward for y; the mean and variance outputs (used by the moving-average
    update, rarely by a loss) add dmean / N and dvar * 2 (x - mean) / N when something depends on them."""
    xv, gamma, beta = x
    _, mean, var = y
    axis, eps = op.attrs["axis"], op.attrs["epsilon"]
    ax = axis % len(xv.shape)
    dx = dgamma = dbeta = None
    if dy[0] is not None:
        dx, dgamma, dbeta = emit("batch_norm_grad", xv, dy[0], mean, var, gamma, axis=axis, epsilon=eps, train=True)
    if dy[1] is not None or dy[2] is not None:
        count = emit("count", xv, axes=tuple(i for i in range(len(xv.shape)) if i != ax))
        extra = None
        if dy[1] is not None:
            extra = emit("broadcast_like", _channel(dy[1], xv, ax) / count, xv)
        if dy[2] is not None:
            term = (xv - _channel(mean, xv, ax)) * _channel(dy[2] * 2.0, xv, ax) / count
            extra = term if extra is None else extra + term
        dx = extra if dx is None else dx + extra
    return [dx, dgamma, dbeta]


def _layer_norm(op, x, y, dy):
    xv, gamma, beta = x
    dx, xhat = emit("layer_norm_grad", xv, gamma, dy[0], axes=tuple(op.attrs["axes"]), epsilon=op.attrs["epsilon"],
                    rms_scaling=bool(op.attrs.get("rms_scaling", False)))
    return [dx, sum_to(dy[0] * xhat, gamma.shape), sum_to(dy[0], beta.shape)]


def _gather(op, x, y, dy):
    """The table gets the rows of dy added at their ids (repeated ids sum); ids get no gradient."""
    table, ids = x
    ax = op.attrs.get("axis", 0) % len(table.shape)
    rows = table.shape[ax]
    if rows is None:
        raise ValueError(f"no gradient for a gather along axis {ax} of unknown size (table shape {table.shape})")
    return [emit("scatter_add", ids, dy[0], rows=rows, axis=ax), None]


def _scatter_add(op, x, y, dy):
    return [None, emit("gather", dy[0], x[0], axis=op.attrs.get("axis", 0))]


def _no_grad(op, x, y, dy):
    return [None] * len(x)


OPS["batch_norm"].grad = _batch_norm
OPS["batch_norm_train"].grad = _batch_norm_train
OPS["layer_norm"].grad = _layer_norm
OPS["gather"].grad = _gather
OPS["scatter_add"].grad = _scatter_add
OPS["random_uniform"].grad = _no_grad
