"""Reductions over static axes."""
from __future__ import annotations

import numpy as np

from ..registry import defop
from ..types import ShapeError, TensorType


def _axes(rank, axes):
    axes = tuple(sorted(a % rank for a in axes))
    if len(set(axes)) != len(axes):
        raise ShapeError(f"repeated reduction axes {axes}")
    return axes


def _reduce_type(x, axes, keepdims=False):
    if any(not -x.rank <= a < x.rank for a in axes):
        raise ShapeError(f"reduction axes {tuple(axes)} out of range for shape {x.shape}")
    ax = _axes(x.rank, axes)
    shape = [1 if i in ax else d for i, d in enumerate(x.shape)] if keepdims else \
        [d for i, d in enumerate(x.shape) if i not in ax]
    return TensorType(shape, x.dtype)


REDUCTIONS = {"reduce_sum": np.sum, "reduce_mean": np.mean, "reduce_max": np.max, "reduce_min": np.min}

for _name, _fn in REDUCTIONS.items():
    defop(_name, infer=_reduce_type, num_inputs=1,
          reference=lambda x, axes, keepdims=False, _fn=_fn: _fn(x, axis=tuple(axes), keepdims=keepdims))


def _argmax_type(x, axis):
    return TensorType([d for i, d in enumerate(x.shape) if i != axis % x.rank], "int32")


defop("argmax", infer=_argmax_type, num_inputs=1, reference=lambda x, axis: np.argmax(x, axis=axis))
