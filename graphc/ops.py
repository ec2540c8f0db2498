"""``graphc.ops``: Keras-3-style operations on tensors.

Each function works three ways: inside a layer's ``call`` it emits IR ops on
symbolic tensors; on functional-API tensors (``graphc.Input`` and its
descendants) it adds a node to the model; on NumPy arrays it computes at once
with the reference executor.
"""
from __future__ import annotations

import builtins
import functools

import numpy as np

from .tracing import Tensor, current_builder, eager, emit


def _flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from _flat(a)
        else:
            yield a


def _op(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if current_builder() is not None:
            return fn(*args, **kwargs)
        from .layers.node import KerasTensor
        if builtins.any(isinstance(a, KerasTensor) for a in _flat(args)):
            from .layers.op_layer import apply_op
            return apply_op(fn.__name__, wrapper, args, kwargs)
        return eager(lambda *a: fn(*a, **kwargs), *args)
    return wrapper


def _shape_of(x):
    return tuple(x.shape) if hasattr(x, "shape") else np.shape(x)


# --- elementwise -------------------------------------------------------------
def _binary(kind):
    def f(x1, x2):
        return emit(kind, x1, x2)
    f.__name__ = kind
    return _op(f)


add, subtract, multiply = (_binary(k) for k in ("add", "subtract", "multiply"))
maximum, minimum, power = (_binary(k) for k in ("maximum", "minimum", "power"))
greater, less, equal = (_binary(k) for k in ("greater", "less", "equal"))
greater_equal, less_equal, not_equal = (_binary(k) for k in ("greater_equal", "less_equal", "not_equal"))


@_op
def logical_and(x1, x2):
    return emit("logical_and", cast(x1, "bool"), cast(x2, "bool"))


@_op
def logical_or(x1, x2):
    return emit("logical_or", cast(x1, "bool"), cast(x2, "bool"))


@_op
def logical_not(x):
    return emit("equal", cast(x, "bool"), cast(0, "bool"))


def _unary(kind, name=None, floats=False):
    """``floats``: a function that only has real values (exp, tanh, ...): integer and bool tensors are cast to
    float32 first, as in Keras (tanh of an int32 tensor is float32)."""
    def f(x):
        return emit(kind, _as_float(x) if floats else x)
    f.__name__ = name or kind
    return _op(f)


negative = _unary("neg", "negative")
abs = _unary("abs")
square = _unary("square")
relu6 = _unary("relu6")
sqrt, rsqrt, exp, log, erf = (_unary(k, floats=True) for k in ("sqrt", "rsqrt", "exp", "log", "erf"))
cos, sin = (_unary(k, floats=True) for k in ("cos", "sin"))
sigmoid, tanh, selu, silu = (_unary(k, floats=True) for k in ("sigmoid", "tanh", "selu", "silu"))
softplus, softsign, hard_sigmoid = (_unary(k, floats=True) for k in ("softplus", "softsign", "hard_sigmoid"))
swish = silu


@_op
def relu(x):
    return emit("relu", x)


@_op
def elu(x, alpha=1.0):
    return emit("elu", x, alpha=float(alpha))


@_op
def gelu(x, approximate=True):
    return emit("gelu", x, approximate=bool(approximate))


@_op
def leaky_relu(x, negative_slope=0.2):
    return emit("leaky_relu", x, negative_slope=float(negative_slope))


@_op
def clip(x, x_min, x_max):
    return emit("clip", x, min_value=float(x_min), max_value=float(x_max))


@_op
def softmax(x, axis=-1):
    return emit("softmax", x, axis=int(axis))


@_op
def log_softmax(x, axis=-1):
    return emit("log_softmax", x, axis=int(axis))


@_op
def where(condition, x1, x2):
    return emit("where", condition, x1, x2)


@_op
def cast(x, dtype):
    from .ir import normalize_dtype
    return emit("cast", x, dtype=normalize_dtype(dtype))


def _as_float(x, dtype="float32"):
    """``x`` as a floating tensor or number: integer and bool tensors cast to ``dtype``, Python ints to float."""
    if isinstance(x, (bool, int)):
        return float(x)
    if isinstance(x, float) or str(getattr(x, "dtype", "float32")).startswith("float"):
        return x
    return cast(x, dtype)


@_op
def divide(x1, x2):
    """True division, as in Keras: integer and bool operands divide as float32 ([1, 2] / 2 is [0.5, 1.0])."""
    return emit("divide", _as_float(x1), _as_float(x2))


true_divide = divide


# --- linear algebra ------------------------------------------------------------
@_op
def matmul(x1, x2):
    """NumPy's matmul: a 1-D first operand is a row vector, a 1-D second one a column, their axis dropped after."""
    rank1, rank2 = len(_shape_of(x1)), len(_shape_of(x2))
    out = emit("matmul", expand_dims(x1, 0) if rank1 == 1 else x1, expand_dims(x2, -1) if rank2 == 1 else x2)
    if rank2 == 1:
        out = squeeze(out, -1)
    if rank1 == 1:
        out = squeeze(out, -1 if rank2 == 1 else -2)
    return out


# --- convolution and pooling (channels_last) -------------------------------------------
def _tuple(v, n):
    return tuple(v) if isinstance(v, (list, tuple)) else (int(v),) * n


def _channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"graphc supports data_format='channels_last' only, received {data_format!r}")


@_op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Keras's ops.conv: kernel (*k, Cin/groups, Cout); groups follow from the kernel's Cin."""
    _channels_last(data_format)
    n = len(_shape_of(inputs)) - 2
    cin, kin = _shape_of(inputs)[-1], _shape_of(kernel)[-2]
    groups = cin // kin if cin and kin and cin % kin == 0 else 1
    return emit("conv", inputs, kernel, strides=_tuple(strides, n), padding=padding.lower(),
                dilation=_tuple(dilation_rate, n), groups=groups)


@_op
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """Keras's ops.conv_transpose: kernel (*k, Cout, Cin)."""
    _channels_last(data_format)
    n = len(_shape_of(inputs)) - 2
    return emit("conv_transpose", inputs, kernel, strides=_tuple(strides, n), padding=padding.lower(),
                output_padding=None if output_padding is None else _tuple(output_padding, n),
                dilation=_tuple(dilation_rate, n))


def _pool(kind, name):
    def f(inputs, pool_size, strides=None, padding="valid", data_format=None):
        _channels_last(data_format)
        n = len(_shape_of(inputs)) - 2
        size = _tuple(pool_size, n)
        return emit(kind, inputs, pool_size=size, strides=size if strides is None else _tuple(strides, n),
                    padding=padding.lower())
    f.__name__ = name
    return _op(f)


max_pool = _pool("max_pool", "max_pool")
average_pool = _pool("avg_pool", "average_pool")


# --- shapes --------------------------------------------------------------------
def _resolve_shape(in_shape, new_shape):
    """Keras's reshape: one -1 may stand for the remaining size; a symbolic batch stays symbolic."""
    new_shape = [int(d) if d is not None else -1 for d in new_shape]
    if new_shape.count(-1) > 1:
        raise ValueError(f"reshape: at most one -1 in the new shape, got {tuple(new_shape)}")
    if -1 not in new_shape:
        return tuple(new_shape)
    i = new_shape.index(-1)
    if i == 0 and in_shape and in_shape[0] is None:
        return (None,) + tuple(new_shape[1:])
    known = [d for d in in_shape if d is not None]
    total = int(np.prod(known)) if len(known) == len(in_shape) else None
    rest = int(np.prod([d for d in new_shape if d != -1]))
    if total is None:
        if in_shape[0] is None and builtins.all(d is not None for d in in_shape[1:]) and 0 not in new_shape:
            raise ValueError(f"reshape: cannot infer -1 at axis {i} of {tuple(new_shape)} from the "
                             f"symbolic batch of shape {tuple(in_shape)}")
        raise ValueError(f"reshape: cannot infer -1 in {tuple(new_shape)} from shape {tuple(in_shape)}")
    if rest == 0 or total % rest:
        raise ValueError(f"cannot reshape a tensor of shape {tuple(in_shape)} into {tuple(new_shape)}")
    new_shape[i] = total // rest
    return tuple(new_shape)


@_op
def reshape(x, newshape):
    return emit("reshape", x, shape=_resolve_shape(_shape_of(x), newshape))


@_op
def transpose(x, axes=None):
    n = len(_shape_of(x))
    perm = tuple(reversed(range(n))) if axes is None else tuple(a % n for a in axes)
    return emit("transpose", x, perm=perm)


@_op
def expand_dims(x, axis):
    shape = list(_shape_of(x))
    axis = axis % (len(shape) + 1)
    shape.insert(axis, 1)
    return emit("reshape", x, shape=tuple(shape))


@_op
def squeeze(x, axis=None):
    shape = _shape_of(x)
    axes = [i for i, d in enumerate(shape) if d == 1] if axis is None else \
        [a % len(shape) for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    for a in axes:
        if shape[a] != 1:
            raise ValueError(f"squeeze: axis {a} of shape {shape} is not 1")
    return emit("reshape", x, shape=tuple(d for i, d in enumerate(shape) if i not in axes))


@_op
def concatenate(xs, axis=0):
    return emit("concat", *xs, axis=int(axis))


@_op
def stack(xs, axis=0):
    return concatenate([expand_dims(x, axis) for x in xs], axis=axis)


@_op
def repeat(x, repeats, axis):
    return emit("repeat", x, repeats=int(repeats), axis=int(axis) % len(_shape_of(x)))


@_op
def tile(x, repeats):
    """NumPy's tile: ``repeats`` shorter than x's rank repeat the last axes; longer ones add leading axes."""
    repeats = [int(r) for r in (repeats if isinstance(repeats, (list, tuple)) else [repeats])]
    n = len(_shape_of(x))
    for _ in range(len(repeats) - n):
        x = expand_dims(x, 0)
    repeats = [1] * (n - len(repeats)) + repeats
    for axis, r in enumerate(repeats):
        if r != 1:  # a new axis, repeated, then merged: [a, b] -> [a, b, a, b]
            s = _shape_of(x)
            merged = -1 if s[axis] is None else r * s[axis]
            x = reshape(repeat(expand_dims(x, axis), r, axis), s[:axis] + (merged,) + s[axis + 1:])
    return x


@_op
def broadcast_to(x, shape):
    return emit("broadcast_to", x, shape=tuple(shape))


@_op
def pad(x, pad_width, constant_values=0.0):
    return emit("pad", x, pads=tuple(tuple(int(v) for v in p) for p in pad_width), value=float(constant_values))


@_op
def getitem(x, key):
    """x[...] with static integer/slice indices (an integer drops the axis, None inserts one of size 1)."""
    shape = _shape_of(x)
    key = given = key if isinstance(key, tuple) else (key,)
    fill = (slice(None),) * (len(shape) - builtins.sum(k is not None and k is not Ellipsis for k in key))
    key = key[:key.index(Ellipsis)] + fill + key[key.index(Ellipsis) + 1:] if Ellipsis in key else key + fill
    new_axes, kept = [], 0  # (where the None entries put their axes in the result)
    for k in key:
        if k is None:
            new_axes.append(kept + len(new_axes))
        elif not isinstance(k, (int, np.integer)):
            kept += 1
    key = tuple(k for k in key if k is not None)
    begin, end, step, drop = [], [], [], []
    for axis, k in enumerate(key):
        if isinstance(k, (int, np.integer)):
            k = int(k) % shape[axis] if shape[axis] is not None else int(k)
            begin.append(k), end.append(k + 1 if k != -1 else None), step.append(1), drop.append(axis)
        elif isinstance(k, slice):
            begin.append(k.start), end.append(k.stop), step.append(k.step)
        else:
            raise TypeError(f"graphc tensors take integer and slice indices, not {type(k).__name__}")
    out = emit("slice", x, begin=tuple(begin), end=tuple(end), step=tuple(step))
    dims = [d for i, d in enumerate(out.shape) if i not in drop]
    for axis in new_axes:
        dims.insert(axis, 1)
    if None in dims[1:]:
        raise ValueError(f"x[{given}] on shape {shape}: a new axis (None) cannot come before the symbolic batch "
                         "axis")
    return emit("reshape", out, shape=tuple(dims)) if drop or new_axes else out


# --- reductions ------------------------------------------------------------------
def _reduction(kind, name):
    def f(x, axis=None, keepdims=False):
        n = len(_shape_of(x))
        axes = tuple(range(n)) if axis is None else tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
        return emit(kind, x, axes=tuple(int(a) for a in axes), keepdims=bool(keepdims))
    f.__name__ = name
    return _op(f)


sum = _reduction("reduce_sum", "sum")
_mean = _reduction("reduce_mean", "mean")
max = _reduction("reduce_max", "max")
min = _reduction("reduce_min", "min")


@_op
@_op
def any(x, axis=None, keepdims=False):
    """Whether some element along ``axis`` is true (nonzero)."""
    return greater(max(cast(x, "float32"), axis=axis, keepdims=keepdims), 0.0)


@_op
def all(x, axis=None, keepdims=False):
    """Whether every element along ``axis`` is true (nonzero)."""
    return greater(min(cast(x, "float32"), axis=axis, keepdims=keepdims), 0.0)


def mean(x, axis=None, keepdims=False):
    """The mean, in float32 for integer and bool tensors, as in Keras (the mean of [1, 2] is 1.5)."""
    return _mean(_as_float(x), axis=axis, keepdims=keepdims)


@_op
def argmax(x, axis=None, keepdims=False):
    """Index of the largest value along ``axis``; ``axis=None`` (Keras's default): in the flattened tensor."""
    n = len(_shape_of(x))
    flat = axis is None
    out = emit("argmax", reshape(x, (-1,)) if flat else x, axis=0 if flat else int(axis))
    if keepdims:
        out = reshape(out, (1,) * n) if flat else expand_dims(out, int(axis) % n)
    return out


@_op
def flip(x, axis=None):
    """The order of the elements reversed along ``axis`` (an int, a list, or None: every axis), as NumPy."""
    n = len(_shape_of(x))
    axes = range(n) if axis is None else [a % n for a in (axis if isinstance(axis, (list, tuple)) else [axis])]
    return getitem(x, tuple(slice(None, None, -1) if k in axes else slice(None) for k in range(n)))


@_op
def argmin(x, axis=None, keepdims=False):
    """Index of the smallest value along ``axis`` (None: in the flattened tensor); the first one on ties."""
    return argmax(negative(_as_float(x)), axis=axis, keepdims=keepdims)


@_op
def one_hot(x, num_classes, axis=-1, dtype="float32"):
    """Integer ids -> vectors of ``num_classes`` with a 1 at each id (ids out of range give all zeros)."""
    hot = cast(equal(expand_dims(x, -1), np.arange(int(num_classes), dtype=str(x.dtype))), dtype)
    n = len(_shape_of(hot))
    axis = int(axis) % n
    return hot if axis == n - 1 else transpose(hot, tuple(range(axis)) + (n - 1,) + tuple(range(axis, n - 1)))


def split(x, indices_or_sections, axis=0):
    """NumPy's split: into ``indices_or_sections`` equal parts, or at the given indices, along ``axis``."""
    shape = _shape_of(x)
    axis = int(axis) % len(shape)
    size = shape[axis]
    if isinstance(indices_or_sections, int):
        if size is None or size % indices_or_sections:
            raise ValueError(f"split: axis {axis} of shape {shape} does not split into {indices_or_sections} "
                             "equal parts")
        step = size // indices_or_sections
        cuts = [step * k for k in range(1, indices_or_sections)]
    else:
        cuts = [int(i) for i in indices_or_sections]
    bounds = [0, *cuts, None]
    head = (slice(None),) * axis
    return [getitem(x, head + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


from .einsum import einsum as _einsum  # noqa: E402  (it is written with the ops above)

einsum = _op(_einsum)

__all__ = [n for n in dir() if not n.startswith("_") and n not in ("builtins", "functools", "np", "annotations",
                                                                     "Tensor", "current_builder", "eager", "emit")]
