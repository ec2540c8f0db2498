"""Elementwise ops: one table row per op (its NumPy meaning); all share a shape rule."""
from __future__ import annotations

import math

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, is_float

_erf = np.frompyfunc(math.erf, 1, 1)


def _sigmoid(x):
    # Written so that neither branch overflows.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _gelu(x, approximate=False):
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x.astype(np.float64) / np.sqrt(2)).astype(np.float64))


SELU_ALPHA, SELU_SCALE = 1.6732632423543772, 1.0507009873554805

UNARY = {
    "identity": lambda x: x,
    "neg": lambda x: -x,
    "abs": np.abs,
    "square": np.square,
    "sqrt": np.sqrt,
    "rsqrt": lambda x: 1 / np.sqrt(x),
    "exp": np.exp,
    "log": np.log,
    "relu": lambda x: np.maximum(x, 0),
    "relu6": lambda x: np.clip(x, 0, 6),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "elu": lambda x, alpha=1.0: np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0))),
    "selu": lambda x: SELU_SCALE * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))),
    "gelu": _gelu,
    "silu": lambda x: x * _sigmoid(x),
    "leaky_relu": lambda x, negative_slope=0.2: np.where(x >= 0, x, negative_slope * x),
    "softplus": lambda x: np.logaddexp(0, x),
    "softsign": lambda x: x / (1 + np.abs(x)),
    "hard_sigmoid": lambda x: np.clip(x / 6 + 0.5, 0, 1),
    "clip": lambda x, min_value, max_value: np.clip(x, min_value, max_value),
    "erf": lambda x: _erf(x.astype(np.float64)).astype(np.float64),
    "cos": np.cos,
    "sin": np.sin,
}

BINARY = {
    "add": np.add,
    "subtract": np.subtract,
    "multiply": np.multiply,
    "divide": np.divide,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "power": np.power,
}

COMPARE = {
    "greater": np.greater,
    "less": np.less,
    "equal": np.equal,
    "greater_equal": np.greater_equal,
    "less_equal": np.less_equal,
    "not_equal": np.not_equal,
    "logical_and": np.logical_and,  # (on bools: masks)
    "logical_or": np.logical_or,
}


def broadcast_shapes(a, b):
    """NumPy broadcasting on static shapes; None is 'unknown'."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None or y is None or x == y:
            out.append(x if x is not None else y)
        else:
            raise ShapeError(f"shapes {tuple(a)} and {tuple(b)} cannot be broadcast together")
    return tuple(reversed(out))


def _unary_type(x, **attrs):
    if not is_float(x.dtype):
        raise ShapeError(f"expects a floating-point tensor, received dtype {x.dtype}")
    return x


def _binary_type(a, b):
    if a.dtype != b.dtype:
        raise ShapeError(f"operands have different dtypes: {a.dtype} and {b.dtype}")
    return TensorType(broadcast_shapes(a.shape, b.shape), a.dtype)


def _compare_type(a, b):
    return TensorType(_binary_type(a, b).shape, "bool")


for _name, _fn in UNARY.items():
    defop(_name, infer=_unary_type, reference=_fn, num_inputs=1)
for _name, _fn in BINARY.items():
    defop(_name, infer=_binary_type, reference=_fn, num_inputs=2)
for _name, _fn in COMPARE.items():
    defop(_name, infer=_compare_type, reference=_fn, num_inputs=2)


def _where_type(cond, a, b):
    if cond.dtype != "bool":
        raise ShapeError(f"where() needs a bool condition, received {cond.dtype}")
    t = _binary_type(a, b)
    return TensorType(broadcast_shapes(cond.shape, t.shape), t.dtype)


defop("where", infer=_where_type, reference=np.where, num_inputs=3)


# ``a`` repeated to the shape of ``a`` broadcast with ``like`` (whose values are not read): how gradients spread
# a reduced result back over a tensor whose batch size is only known at run time.
def _broadcast_like_ref(a, like):
    return np.broadcast_to(a, np.broadcast_shapes(a.shape, like.shape)).copy()


defop("broadcast_like", infer=lambda a, like: TensorType(broadcast_shapes(a.shape, like.shape), a.dtype),
      reference=_broadcast_like_ref, num_inputs=2)
defop("cast", infer=lambda x, dtype: TensorType(x.shape, dtype),
      reference=lambda x, dtype: x.astype(dtype), num_inputs=1)


# --- C lowering: each pointwise op as a C expression of its operands (float math from <math.h>) ------------
def _f(x):
    return repr(float(x)) + "f"


C_EXPR = {
    "identity": lambda a: a[0],
    "neg": lambda a: f"(-{a[0]})",
    "abs": lambda a: f"fabsf({a[0]})",
    "square": lambda a: f"({a[0]} * {a[0]})",
    "sqrt": lambda a: f"sqrtf({a[0]})",
    "rsqrt": lambda a: f"(1.0f / sqrtf({a[0]}))",
    "exp": lambda a: f"expf({a[0]})",
    "log": lambda a: f"logf({a[0]})",
    # comparisons written so that NaN propagates, as in NumPy
    "relu": lambda a: f"({a[0]} < 0.0f ? 0.0f : {a[0]})",
    "relu6": lambda a: f"({a[0]} < 0.0f ? 0.0f : {a[0]} > 6.0f ? 6.0f : {a[0]})",
    "sigmoid": lambda a: f"(1.0f / (1.0f + expf(-{a[0]})))",
    "tanh": lambda a: f"tanhf({a[0]})",
    "elu": lambda a, alpha=1.0: f"({a[0]} > 0.0f ? {a[0]} : {_f(alpha)} * expm1f({a[0]}))",
    "selu": lambda a: f"({_f(SELU_SCALE)} * ({a[0]} > 0.0f ? {a[0]} : {_f(SELU_ALPHA)} * expm1f({a[0]})))",
    "gelu": lambda a, approximate=False: (
        f"(0.5f * {a[0]} * (1.0f + tanhf(0.7978845608028654f * ({a[0]} + 0.044715f * {a[0]} * {a[0]} * {a[0]}))))"
        if approximate else f"(0.5f * {a[0]} * (1.0f + erff({a[0]} * 0.7071067811865476f)))"),
    "silu": lambda a: f"({a[0]} / (1.0f + expf(-{a[0]})))",
    "leaky_relu": lambda a, negative_slope=0.2: f"({a[0]} >= 0.0f ? {a[0]} : {_f(negative_slope)} * {a[0]})",
    "softplus": lambda a: f"(({a[0]} > 0.0f ? {a[0]} : 0.0f) + log1pf(expf(-fabsf({a[0]}))))",
    "softsign": lambda a: f"({a[0]} / (1.0f + fabsf({a[0]})))",
    "hard_sigmoid": lambda a: f"fminf(fmaxf({a[0]} * (1.0f / 6.0f) + 0.5f, 0.0f), 1.0f)",
    "clip": lambda a, min_value, max_value: f"fminf(fmaxf({a[0]}, {_f(min_value)}), {_f(max_value)})",
    "add": lambda a: f"({a[0]} + {a[1]})",
    "subtract": lambda a: f"({a[0]} - {a[1]})",
    "multiply": lambda a: f"({a[0]} * {a[1]})",
    "divide": lambda a: f"({a[0]} / {a[1]})",
    "maximum": lambda a: f"({a[0]} > {a[1]} || {a[0]} != {a[0]} ? {a[0]} : {a[1]})",
    "minimum": lambda a: f"({a[0]} < {a[1]} || {a[0]} != {a[0]} ? {a[0]} : {a[1]})",
    "power": lambda a: f"powf({a[0]}, {a[1]})",
    "greater": lambda a: f"({a[0]} > {a[1]})",
    "less": lambda a: f"({a[0]} < {a[1]})",
    "equal": lambda a: f"({a[0]} == {a[1]})",
    "greater_equal": lambda a: f"({a[0]} >= {a[1]})",
    "less_equal": lambda a: f"({a[0]} <= {a[1]})",
    "not_equal": lambda a: f"({a[0]} != {a[1]})",
    "logical_and": lambda a: f"({a[0]} && {a[1]})",
    "logical_or": lambda a: f"({a[0]} || {a[1]})",
    "erf": lambda a: f"erff({a[0]})",
    "cos": lambda a: f"cosf({a[0]})",
    "sin": lambda a: f"sinf({a[0]})",
    "where": lambda a: f"({a[0]} ? {a[1]} : {a[2]})",
    "broadcast_like": lambda a: a[0],
}

for _name, _expr in C_EXPR.items():
    OPS[_name].c_expr = _expr

_C_SCALAR = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "uint8_t"}
_INT_RANGE = {"int32": ("INT32_MIN", "INT32_MAX", "2147483647.0"), "int64": ("INT64_MIN", "INT64_MAX", "9.2233720368547758e18")}


def _cast_c(a, dtype):
    """Float -> int in C is undefined for NaN and out-of-range values: map those to the type's minimum
    (which Embedding's id check rejects) on every platform."""
    if dtype not in _INT_RANGE:
        return f"(({_C_SCALAR[dtype]}){a[0]})"
    lo, hi, limit = _INT_RANGE[dtype]
    return (f"(({a[0]}) != ({a[0]}) || ({a[0]}) <= -{limit} ? {lo} : ({a[0]}) >= {limit} ? {hi} : "
            f"({_C_SCALAR[dtype]})({a[0]}))")


OPS["cast"].c_expr = _cast_c
