"""Data movement: reshape, transpose, concat, pad, repeat, slice, broadcast."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, known_size


def _reshape_type(x, shape):
    """``shape`` may leave axis 0 unknown (None): it then takes whatever size remains, so a symbolic
    batch can be kept, folded into (N*T, ...) or unfolded from it, as ``reshape(x, (-1, ...))`` does."""
    if any(d is None for d in shape[1:]):
        raise ShapeError(f"reshape target {shape} may leave only axis 0 unknown")
    if not shape or shape[0] is not None:
        a, b = known_size(x.shape), known_size(shape)
        if a is not None and a != b:
            raise ShapeError(f"cannot reshape a tensor of shape {x.shape} ({a} elements) into shape {shape} "
                             f"({b} elements)")
        return TensorType(shape, x.dtype)
    a, b = known_size(x.shape[1:]), known_size(shape[1:])
    if a is not None and b and x.shape[0] is None and a % b and b % a:
        raise ShapeError(f"cannot reshape a tensor of shape {x.shape} ({a} elements per sample) "
                         f"into shape {shape} ({b} elements per sample)")
    total = known_size(x.shape)
    if total is not None and b and total % b:
        raise ShapeError(f"cannot reshape a tensor of shape {x.shape} ({total} elements) into shape {shape}")
    return TensorType(shape, x.dtype)


def _reshape_ref(x, shape):
    return x.reshape((-1 if shape[0] is None else shape[0],) + tuple(shape[1:]) if shape else ())


def _transpose_type(x, perm):
    if sorted(perm) != list(range(x.rank)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the axes of a rank-{x.rank} tensor")
    return TensorType(tuple(x.shape[p] for p in perm), x.dtype)


def _concat_type(*xs, axis):
    first = xs[0]
    ax = axis % first.rank
    total = 0
    for x in xs:
        if x.rank != first.rank or x.dtype != first.dtype or any(
                i != ax and not dims_compatible(a, b) for i, (a, b) in enumerate(zip(x.shape, first.shape))):
            raise ShapeError(
                f"concatenation along axis {axis} needs inputs whose other dimensions match; "
                f"received shapes {[x.shape for x in xs]}")
        total = None if total is None or x.shape[ax] is None else total + x.shape[ax]
    shape = list(first.shape)
    for i in range(first.rank):  # fill unknown dims from any input that knows them
        if i != ax and shape[i] is None:
            shape[i] = next((x.shape[i] for x in xs if x.shape[i] is not None), None)
    shape[ax] = total
    return TensorType(shape, first.dtype)


def _pad_type(x, pads, value=0.0):
    if len(pads) != x.rank:
        raise ShapeError(f"pad: {len(pads)} (before, after) pairs for a rank-{x.rank} tensor")
    return TensorType(tuple(None if d is None else d + lo + hi for d, (lo, hi) in zip(x.shape, pads)), x.dtype)


def _repeat_type(x, repeats, axis):
    shape = list(x.shape)
    shape[axis] = None if shape[axis] is None else shape[axis] * repeats
    return TensorType(shape, x.dtype)


def _slice_type(x, begin, end, step):
    """Static slice x[begin[i]:end[i]:step[i]] on every axis (None = whole axis)."""
    shape = []
    for d, b, e, s in zip(x.shape, begin, end, step):
        shape.append(None if d is None else len(range(*slice(b, e, s).indices(d))))
    return TensorType(shape, x.dtype)


def _broadcast_type(x, shape):
    try:
        np.broadcast_shapes(tuple(1 if d is None else d for d in x.shape),
                            tuple(1 if d is None else d for d in shape))
    except ValueError:
        raise ShapeError(f"cannot broadcast shape {x.shape} to {shape}") from None
    return TensorType(shape, x.dtype)


def _broadcast_ref(x, shape):
    target = tuple(x.shape[i - (len(shape) - x.ndim)] if d is None else d for i, d in enumerate(shape))
    return np.broadcast_to(x, target).copy()


defop("reshape", infer=_reshape_type, reference=_reshape_ref, num_inputs=1)
defop("transpose", infer=_transpose_type, reference=lambda x, perm: np.transpose(x, perm), num_inputs=1)
defop("concat", infer=_concat_type, reference=lambda *xs, axis: np.concatenate(xs, axis=axis))
defop("pad", infer=_pad_type, num_inputs=1,
      reference=lambda x, pads, value=0.0: np.pad(x, pads, constant_values=value))
defop("repeat", infer=_repeat_type, num_inputs=1,
      reference=lambda x, repeats, axis: np.repeat(x, repeats, axis=axis))
defop("slice", infer=_slice_type, num_inputs=1,
      reference=lambda x, begin, end, step: x[tuple(slice(*a) for a in zip(begin, end, step))])
defop("broadcast_to", infer=_broadcast_type, reference=_broadcast_ref, num_inputs=1)


# --- C lowering ---------------------------------------------------------------------------------------
def _shape_init(ctx, v):
    return "{" + ", ".join(ctx.dims(v)) + "}"


def _elem_size(ctx, v):
    return f"sizeof({ctx.ctype(v)})"


def _reshape_c(ctx, op):
    return ["/* a view: same bytes, new shape */"]


def _transpose_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    perm = ", ".join(str(p) for p in op.attrs["perm"])
    return [f"{{ const int64_t shape[] = {_shape_init(ctx, x)}; const int perm[] = {{{perm}}};",
            f"  graphc_transpose({ctx.ptr(x)}, {ctx.ptr(y)}, {x.type.rank}, shape, perm, {_elem_size(ctx, y)}); }}"]


def _concat_c(ctx, op):
    """Per outer index, each input's contiguous block (its size along the axis times the inner size)."""
    y = op.outputs[0]
    axis = op.attrs["axis"] % y.type.rank
    lines = [f"for (int64_t o = 0; o < {ctx.prod(y, 0, axis)}; o++) {{", "    size_t at = 0;"]
    for x in op.inputs:
        block = ctx.prod(x, axis)
        lines.append(f"    memcpy({ctx.ptr(y)} + o * ({ctx.prod(y, axis)}) + at, {ctx.ptr(x)} + o * ({block}), "
                     f"({block}) * {_elem_size(ctx, y)}); at += {block};")
    return lines + ["}"]


def _pad_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    if x.dtype != "float32":
        raise ShapeError(f"pad in C supports float32 tensors, received {x.dtype}")
    before = ", ".join(str(lo) for lo, _ in op.attrs["pads"])
    value = op.attrs.get("value", 0.0)
    return [f"{{ const int64_t in_shape[] = {_shape_init(ctx, x)}, out_shape[] = {_shape_init(ctx, y)}, "
            f"before[] = {{{before}}};",
            f"  graphc_pad_f32({ctx.ptr(x)}, {ctx.ptr(y)}, {x.type.rank}, in_shape, before, out_shape, {float(value)!r}f); }}"]


def _repeat_c(ctx, op):
    """(outer, n, inner) -> (outer, n * repeats, inner): each inner block written `repeats` times."""
    x, y = op.inputs[0], op.outputs[0]
    axis, r = op.attrs["axis"], op.attrs["repeats"]
    inner = ctx.prod(x, axis + 1)
    return [f"for (int64_t o = 0; o < {ctx.prod(x, 0, axis + 1)}; o++)",
            f"    for (int r = 0; r < {r}; r++)",
            f"        memcpy({ctx.ptr(y)} + (o * {r} + r) * ({inner}), {ctx.ptr(x)} + o * ({inner}), "
            f"({inner}) * {_elem_size(ctx, y)});"]


def _slice_c(ctx, op):
    x, y = op.inputs[0], op.outputs[0]
    begins, steps = [], []
    for axis, (d, b, e, s) in enumerate(zip(x.shape, op.attrs["begin"], op.attrs["end"], op.attrs["step"])):
        if d is None:
            if (b, e, s) not in ((None, None, None), (0, None, None), (None, None, 1), (0, None, 1)):
                raise ShapeError("slicing the batch axis is not supported in C")
            begins.append(0), steps.append(1)
        else:
            start, _, step = slice(b, e, s).indices(d)
            begins.append(start), steps.append(step)
    return [f"{{ const int64_t in_shape[] = {_shape_init(ctx, x)}, out_shape[] = {_shape_init(ctx, y)};",
            f"  const int64_t begin[] = {{{', '.join(map(str, begins))}}}, step[] = {{{', '.join(map(str, steps))}}};",
            f"  graphc_slice({ctx.ptr(x)}, {ctx.ptr(y)}, {x.type.rank}, in_shape, begin, step, out_shape, "
            f"{_elem_size(ctx, y)}); }}"]


OPS["reshape"].lower_c = _reshape_c
OPS["transpose"].lower_c = _transpose_c
OPS["concat"].lower_c = _concat_c
OPS["pad"].lower_c = _pad_c
OPS["repeat"].lower_c = _repeat_c
OPS["slice"].lower_c = _slice_c
OPS["broadcast_to"].c_expr = lambda a, shape: a[0]  # the pointwise loop does the broadcasting
