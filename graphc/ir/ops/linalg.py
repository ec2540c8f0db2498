"""matmul with NumPy semantics on the last two axes (leading axes broadcast)."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible
from .elementwise import broadcast_shapes


def _swap(shape):
    return tuple(shape[:-2]) + (shape[-1], shape[-2])


def _matmul_type(a, b, transpose_a=False, transpose_b=False):
    """op(a) @ op(b), op transposing the last two axes where asked (how gradients avoid a transpose copy)."""
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs operands of rank >= 2, received shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul operands have different dtypes: {a.dtype} and {b.dtype}")
    sa = _swap(a.shape) if transpose_a else a.shape
    sb = _swap(b.shape) if transpose_b else b.shape
    if not dims_compatible(sa[-1], sb[-2]):
        raise ShapeError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                         f"({sa[-1]} != {sb[-2]})")
    lead = broadcast_shapes(sa[:-2], sb[:-2])
    return TensorType(lead + (sa[-2], sb[-1]), a.dtype)


def _matmul_ref(a, b, transpose_a=False, transpose_b=False):
    return np.matmul(np.swapaxes(a, -1, -2) if transpose_a else a, np.swapaxes(b, -1, -2) if transpose_b else b)


defop("matmul", infer=_matmul_type, reference=_matmul_ref, num_inputs=2)


def _matmul_c(ctx, op):
    """op(A) (..., M, K) @ op(B) (..., K, N): one GEMM when B is a plain matrix (leading axes of A fold into
    M), else one GEMM per broadcast batch index."""
    a, b = op.inputs
    out = op.outputs[0]
    ta, tb = int(op.attrs.get("transpose_a", False)), int(op.attrs.get("transpose_b", False))
    M, N = out.shape[-2], out.shape[-1]
    K = a.shape[-2] if ta else a.shape[-1]
    lda, ldb = a.shape[-1], b.shape[-1]
    if b.type.rank == 2 and (a.type.rank == 2 or not ta):
        M = ctx.prod(a, 0, -1) if not ta else ctx.dim(a, -1)
        K = ctx.dim(a, 0) if ta else K
        scratch = ctx.scratch(f"graphc_sgemm_scratch_floats({M}, {N}, {K})")
        return [f"graphc_sgemm_ex({ta}, {tb}, (int)({M}), {N}, (int)({K}), 1.0f, {ctx.ptr(a)}, {lda}, "
                f"{ctx.ptr(b)}, {ldb}, 0.0f, {ctx.ptr(out)}, {N}, {scratch});"]
    lead = out.type.rank - 2
    pa = (1,) * (out.type.rank - a.type.rank) + tuple(a.shape)
    pb = (1,) * (out.type.rank - b.type.rank) + tuple(b.shape)
    # Only axis 0 may be symbolic and it is outermost, so every stride is a static integer.
    lines = [f"for (int64_t m = 0; m < {ctx.prod(out, 0, lead)}; m++) {{", "    int64_t rest = m, a_off = 0, b_off = 0;"]
    stride_a, stride_b = a.shape[-2] * a.shape[-1], b.shape[-2] * b.shape[-1]
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
    scratch = ctx.scratch(f"graphc_sgemm_scratch_floats({M}, {N}, {K})")
    lines += [f"    graphc_sgemm_ex({ta}, {tb}, {M}, {N}, {K}, 1.0f, {ctx.ptr(a)} + a_off, {lda}, {ctx.ptr(b)} + b_off, "
              f"{ldb}, 0.0f,", f"                    {ctx.ptr(out)} + m * {M * N}, {N}, {scratch});", "}"]
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
    M = ctx.prod(x, 0, -1)
    scratch = ctx.scratch(f"graphc_sgemm_scratch_floats({M}, {N}, {K})")
    packed = ctx.prepared_param(w, f"graphc_sgemm_packed_b_size({K}, {N})",
                                f"graphc_sgemm_pack_b(0, {K}, {N}, {{src}}, {N}, {{dst}});",
                                f"{op.scope or 'dense'}: dense kernel, packed for the GEMM",
                                f"graphc_sgemm_pack_b_threads(0, {K}, {N}, {{src}}, {N}, {{dst}}, nthreads);")
    return [f"graphc_sgemm_bias_act_prepacked((int)({M}), {N}, {K}, {ctx.ptr(x)}, {K}, {ctx.ptr(w)}, {N}, {packed}, "
            f"{bias}, {DENSE_ACTIVATIONS[op.attrs.get('activation', 'linear')]}, {ctx.ptr(y)}, {N}, {scratch});"]


defop("dense", infer=_dense_type, reference=_dense_ref)
OPS["dense"].lower_c = _dense_c
