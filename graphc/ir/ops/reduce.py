"""Reductions over static axes."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
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


# The number of elements of ``x`` over ``axes`` as a float32 scalar (the batch is known only at run time):
# what a mean divides by, in gradients and losses.
defop("count", infer=lambda x, axes: TensorType((), x.dtype if x.dtype.startswith("float") else "float32"),
      num_inputs=1,
      reference=lambda x, axes: np.float32(np.prod([x.shape[a] for a in axes])))

defop("argmax", infer=_argmax_type, num_inputs=1, reference=lambda x, axis: np.argmax(x, axis=axis))


# --- C lowering: reductions over one contiguous run of axes, viewed as (outer, n, inner) ----------------
_KIND = {"reduce_sum": "GRAPHC_REDUCE_SUM", "reduce_mean": "GRAPHC_REDUCE_MEAN",
         "reduce_max": "GRAPHC_REDUCE_MAX", "reduce_min": "GRAPHC_REDUCE_MIN"}


def _outer_n_inner(ctx, x, axes):
    ax = _axes(x.type.rank, axes)
    if not ax:  # nothing reduced: a copy
        return ctx.numel(x), 1, 1
    if list(ax) != list(range(ax[0], ax[-1] + 1)):
        raise ShapeError(f"C reductions need contiguous axes, received {ax}")
    return ctx.prod(x, 0, ax[0]), ctx.prod(x, ax[0], ax[-1] + 1), ctx.prod(x, ax[-1] + 1)


def _reduce_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    if x.dtype != "float32":
        raise ShapeError(f"{op.kind} in C supports float32 tensors, received {x.dtype}")
    outer, n, inner = _outer_n_inner(ctx, x, op.attrs["axes"])
    return [f"graphc_reduce({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner}, {_KIND[op.kind]});"]


def _argmax_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    outer, n, inner = _outer_n_inner(ctx, x, (op.attrs["axis"],))
    return [f"graphc_argmax({ctx.ptr(x)}, {ctx.ptr(y)}, {outer}, {n}, {inner});"]


def _count_c(ctx, op):
    x = op.inputs[0]
    factors = [ctx.dim(x, a) for a in sorted(a % x.type.rank for a in op.attrs["axes"])] or ["1"]
    y = op.outputs[0]
    return [f"{ctx.ptr(y)}[0] = ({ctx.ctype(y)})({' * '.join(f'({f})' for f in factors)});"]


OPS["count"].lower_c = _count_c
for _name in REDUCTIONS:
    OPS[_name].lower_c = _reduce_c
OPS["argmax"].lower_c = _argmax_c
