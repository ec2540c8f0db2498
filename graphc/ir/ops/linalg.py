"""matmul with NumPy semantics on the last two axes (leading axes broadcast)."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible
from .elementwise import broadcast_shapes


def _matmul_type(a, b):
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs operands of rank >= 2, received shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul operands have different dtypes: {a.dtype} and {b.dtype}")
    if not dims_compatible(a.shape[-1], b.shape[-2]):
        raise ShapeError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    lead = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return TensorType(lead + (a.shape[-2], b.shape[-1]), a.dtype)


defop("matmul", infer=_matmul_type, reference=np.matmul, num_inputs=2)


def _matmul_c(ctx, op):
    """A (..., M, K) @ B (..., K, N): one GEMM when B is a plain matrix (leading axes of A fold into M),
    else one GEMM per broadcast batch index."""
    a, b = op.inputs
    out = op.outputs[0]
    K, N = a.shape[-1], b.shape[-1]
    if b.type.rank == 2:
        M = ctx.prod(a, 0, -1)
        return [f"graphc_sgemm((int)({M}), {N}, {K}, 1.0f, {ctx.ptr(a)}, {K}, {ctx.ptr(b)}, {N}, 0.0f, "
                f"{ctx.ptr(out)}, {N});"]
    M = a.shape[-2]
    lead = out.type.rank - 2
    pa = (1,) * (out.type.rank - a.type.rank) + tuple(a.shape)
    pb = (1,) * (out.type.rank - b.type.rank) + tuple(b.shape)
    # Only axis 0 may be symbolic and it is outermost, so every stride is a static integer.
    lines = [f"for (int64_t m = 0; m < {ctx.prod(out, 0, lead)}; m++) {{", "    int64_t rest = m, a_off = 0, b_off = 0;"]
    stride_a, stride_b = M * K, K * N
    for axis in range(lead - 1, -1, -1):
        coord = "rest" if axis == 0 else f"(rest % {out.shape[axis]})"
        if pa[axis] != 1:
            lines.append(f"    a_off += {coord} * {stride_a};")
            stride_a *= pa[axis] or 1
        if pb[axis] != 1:
            lines.append(f"    b_off += {coord} * {stride_b};")
            stride_b *= pb[axis] or 1
        if axis:
            lines.append(f"    rest /= {out.shape[axis]};")
    lines += [f"    graphc_sgemm({M}, {N}, {K}, 1.0f, {ctx.ptr(a)} + a_off, {K}, {ctx.ptr(b)} + b_off, {N}, 0.0f,",
              f"                 {ctx.ptr(out)} + m * {M * N}, {N});", "}"]
    return lines


OPS["matmul"].lower_c = _matmul_c


# --- dense: matmul with its bias and activation fused into the GEMM epilogue (made by passes/fusion.py) ---
DENSE_ACTIVATIONS = {"linear": "GRAPHC_ACT_NONE", "relu": "GRAPHC_ACT_RELU", "sigmoid": "GRAPHC_ACT_SIGMOID",
                     "tanh": "GRAPHC_ACT_TANH"}


def _dense_type(x, w, *bias, activation="linear"):
    if w.rank != 2:
        raise ShapeError(f"dense needs a 2-D kernel, received shape {w.shape}")
    if bias and bias[0].shape not in ((w.shape[1],),):
        raise ShapeError(f"dense bias must have shape ({w.shape[1]},), received {bias[0].shape}")
    if activation not in DENSE_ACTIVATIONS:
        raise ShapeError(f"dense activation must be one of {sorted(DENSE_ACTIVATIONS)}, received {activation!r}")
    return _matmul_type(x, w)


def _dense_ref(x, w, *bias, activation="linear"):
    from .elementwise import UNARY
    y = x @ w + (bias[0] if bias else 0)
    return UNARY["identity" if activation == "linear" else activation](y)


def _dense_c(ctx, op):
    x, w = op.inputs[:2]
    y = op.outputs[0]
    K, N = w.shape
    bias = ctx.ptr(op.inputs[2]) if len(op.inputs) > 2 else "NULL"
    return [f"graphc_sgemm_bias_act((int)({ctx.prod(x, 0, -1)}), {N}, {K}, {ctx.ptr(x)}, {K}, {ctx.ptr(w)}, {N}, "
            f"{bias}, {DENSE_ACTIVATIONS[op.attrs.get('activation', 'linear')]}, {ctx.ptr(y)}, {N});"]


defop("dense", infer=_dense_type, reference=_dense_ref)
OPS["dense"].lower_c = _dense_c
