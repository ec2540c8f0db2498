"""Neural-network ops that stay whole in the IR because codegen fuses them as a unit."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, is_float


def _float(x, what):
    if not is_float(x.dtype):
        raise ShapeError(f"{what} expects a floating-point tensor, received dtype {x.dtype}")
    return x


def _softmax_ref(x, axis=-1):
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


def _log_softmax_ref(x, axis=-1):
    s = x - np.max(x, axis=axis, keepdims=True)
    return s - np.log(np.sum(np.exp(s), axis=axis, keepdims=True))


defop("softmax", infer=lambda x, axis=-1: _float(x, "softmax"), reference=_softmax_ref, num_inputs=1)
defop("log_softmax", infer=lambda x, axis=-1: _float(x, "log_softmax"), reference=_log_softmax_ref, num_inputs=1)

# Dropout is the identity at inference; the training stage gives it a seeded mask.
defop("dropout", infer=lambda x, rate, seed=None, noise_shape=None: x,
      reference=lambda x, rate, seed=None, noise_shape=None: x, num_inputs=1)


def _softmax_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    axis = op.attrs.get("axis", -1) % x.type.rank
    return [f"graphc_softmax({ctx.ptr(x)}, {ctx.ptr(y)}, {ctx.prod(x, 0, axis)}, {ctx.dim(x, axis)}, "
            f"{ctx.prod(x, axis + 1)}, {int(op.kind == 'log_softmax')});"]


OPS["softmax"].lower_c = _softmax_c
OPS["log_softmax"].lower_c = _softmax_c
