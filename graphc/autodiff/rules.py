"""Gradient rules of the core ops: elementwise, matmul, data movement, reductions, softmax.

Each rule maps (op, inputs x, outputs y, output gradients dy) to one gradient per input, written with
graphc.ops; they follow TensorFlow's conventions where a derivative is ambiguous (relu'(0) = 0,
maximum's tie goes to the first operand, reduce_max splits among ties), since Keras on TensorFlow is
the reference.
"""
from __future__ import annotations

import math

from .. import ops
from ..ir import OPS
from ..ir.ops.elementwise import SELU_ALPHA, SELU_SCALE
from ..tracing import emit
from .util import expand_like, sum_to

where = ops.where


def _gelu_grad(x, approximate=False):
    if approximate:
        c = math.sqrt(2 / math.pi)
        t = ops.tanh(c * (x + 0.044715 * x * x * x))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    return 0.5 * (1 + ops.erf(x * (1 / math.sqrt(2)))) + x * ops.exp(-0.5 * x * x) * (1 / math.sqrt(2 * math.pi))


def _inside(x, lo, hi, g):
    return where(ops.greater_equal(x, lo), where(ops.less_equal(x, hi), g, 0.0), 0.0)


# d/dx of each unary op, as a function of (x, y, dy, **attrs) -> dx
UNARY_GRADS = {
    "identity": lambda x, y, g: g,
    "neg": lambda x, y, g: -g,
    "abs": lambda x, y, g: where(ops.greater(x, 0.0), g, where(ops.less(x, 0.0), -g, 0.0)),
    "square": lambda x, y, g: g * (2.0 * x),
    "sqrt": lambda x, y, g: g * 0.5 / y,
    "rsqrt": lambda x, y, g: g * (-0.5) * y * y * y,
    "exp": lambda x, y, g: g * y,
    "log": lambda x, y, g: g / x,
    "erf": lambda x, y, g: g * (2 / math.sqrt(math.pi)) * ops.exp(-(x * x)),
    "cos": lambda x, y, g: -(g * ops.sin(x)),
    "sin": lambda x, y, g: g * ops.cos(x),
    # relu reads its output (y > 0 exactly where x > 0): the pre-activation then has no reader in the
    # backward pass, and the forward's bias and relu fuse into the GEMM or convolution that makes it
    "relu": lambda x, y, g: where(ops.greater(y, 0.0), g, 0.0),
    "relu6": lambda x, y, g: where(ops.greater(x, 0.0), where(ops.less(x, 6.0), g, 0.0), 0.0),
    "sigmoid": lambda x, y, g: g * y * (1.0 - y),
    "tanh": lambda x, y, g: g * (1.0 - y * y),
    "elu": lambda x, y, g, alpha=1.0: where(ops.greater(x, 0.0), g, g * (y + alpha)),
    "selu": lambda x, y, g: where(ops.greater(x, 0.0), g * SELU_SCALE, g * (y + SELU_SCALE * SELU_ALPHA)),
    "gelu": lambda x, y, g, approximate=False: g * _gelu_grad(x, approximate),
    "silu": lambda x, y, g: g * (lambda s: s * (1.0 + x * (1.0 - s)))(ops.sigmoid(x)),
    "leaky_relu": lambda x, y, g, negative_slope=0.2: where(ops.greater_equal(x, 0.0), g, g * negative_slope),
    "softplus": lambda x, y, g: g * ops.sigmoid(x),
    "softsign": lambda x, y, g: g / ops.square(1.0 + ops.abs(x)),
    "hard_sigmoid": lambda x, y, g: where(ops.greater(x, -3.0), where(ops.less(x, 3.0), g * (1 / 6), 0.0), 0.0),
    "clip": lambda x, y, g, min_value, max_value: _inside(x, min_value, max_value, g),
}

# d/da and d/db of each binary op (before un-broadcasting), as functions of (a, b, y, dy)
BINARY_GRADS = {
    "add": lambda a, b, y, g: (g, g),
    "subtract": lambda a, b, y, g: (g, -g),
    "multiply": lambda a, b, y, g: (g * b, g * a),
    "divide": lambda a, b, y, g: (g / b, -g * y / b),
    "maximum": lambda a, b, y, g: (where(ops.greater_equal(a, b), g, 0.0), where(ops.greater_equal(a, b), 0.0, g)),
    "minimum": lambda a, b, y, g: (where(ops.less_equal(a, b), g, 0.0), where(ops.less_equal(a, b), 0.0, g)),
    # d(a^b)/db = a^b log a, taken as 0 where a <= 0 (as TensorFlow does)
    "power": lambda a, b, y, g: (g * b * ops.power(a, b - 1.0),
                                 where(ops.greater(a, 0.0), g * y * ops.log(where(ops.greater(a, 0.0), a, 1.0)), 0.0)),
}


def _unary_rule(fn):
    return lambda op, x, y, dy: [fn(x[0], y[0], dy[0], **op.attrs)]


def _binary_rule(fn):
    def rule(op, x, y, dy):
        da, db = fn(x[0], x[1], y[0], dy[0])
        return [sum_to(da, x[0].shape), sum_to(db, x[1].shape)]
    return rule


def _where(op, x, y, dy):
    c, a, b = x
    g = dy[0]
    return [None, sum_to(where(c, g, 0.0), a.shape), sum_to(where(c, 0.0, g), b.shape)]


def _cast(op, x, y, dy):
    return [ops.cast(dy[0], x[0].dtype) if x[0].dtype.startswith("float") else None]


def _broadcast_like(op, x, y, dy):
    return [sum_to(dy[0], x[0].shape), None]


def _matmul(op, x, y, dy):
    """y = op(a) @ op(b). With a plain matrix b, a's leading axes fold into rows, so db is one GEMM whose
    inner dimension is the batch."""
    a, b = x
    g = dy[0]
    ta, tb = op.attrs.get("transpose_a", False), op.attrs.get("transpose_b", False)
    mm = lambda p, q, tp=False, tq=False: emit("matmul", p, q, transpose_a=tp, transpose_b=tq)  # noqa: E731
    if len(b.shape) == 2 and not ta:
        K = b.shape[0] if not tb else b.shape[1]
        N = g.shape[-1]
        da = mm(g, b, False, not tb)
        a2, g2 = ops.reshape(a, (-1, K)), ops.reshape(g, (-1, N))
        db = mm(g2, a2, True, False) if tb else mm(a2, g2, True, False)
        return [da, db]
    da = mm(b, g, tb, True) if ta else mm(g, b, False, not tb)
    db = mm(g, a, True, ta) if tb else mm(a, g, not ta, False)
    return [sum_to(da, a.shape), sum_to(db, b.shape)]


def _reshape(op, x, y, dy):
    return [emit("reshape", dy[0], shape=tuple(x[0].shape))]


def _transpose(op, x, y, dy):
    perm = op.attrs["perm"]
    inverse = tuple(sorted(range(len(perm)), key=lambda i: perm[i]))
    return [emit("transpose", dy[0], perm=inverse)]


def _concat(op, x, y, dy):
    axis = op.attrs["axis"] % len(y[0].shape)
    out, start = [], 0
    for t in x:
        begin = [None] * len(t.shape)
        end = [None] * len(t.shape)
        begin[axis], end[axis] = start, start + t.shape[axis]
        out.append(emit("slice", dy[0], begin=tuple(begin), end=tuple(end), step=(None,) * len(t.shape)))
        start += t.shape[axis]
    return out


def _pad(op, x, y, dy):
    pads = op.attrs["pads"]
    begin = tuple(lo or None for lo, _ in pads)
    end = tuple(None if d is None or not hi else lo + d for (lo, hi), d in zip(pads, x[0].shape))
    return [emit("slice", dy[0], begin=begin, end=end, step=(None,) * len(pads))]


def _slice(op, x, y, dy):
    """dy padded back into x's shape with zeros; along a strided axis (step s), its m values first spread to
    every s-th place: (m, 1) padded to (m, s), flattened to m * s, cut to what lies inside the axis."""
    shape, g, pads = x[0].shape, dy[0], []
    for axis, (d, b, e, s) in enumerate(zip(shape, op.attrs["begin"], op.attrs["end"], op.attrs["step"])):
        if d is None:
            if (b, e, s or 1) != (None, None, 1):
                raise ValueError("no gradient for a slice of the batch axis")
            pads.append((0, 0))
            continue
        s, m = s or 1, g.shape[axis]
        if s < 0:  # values taken downward from `start`: dy reversed is the upward slice from the lowest of them
            start, _, _ = slice(b, e, s).indices(d)
            g = emit("slice", g, begin=(None,) * len(shape), end=(None,) * len(shape),
                     step=tuple(-1 if k == axis else None for k in range(len(shape))))
            s, b, e = -s, start + (m - 1) * s, None
        lo, hi, _ = slice(b, e, s).indices(d)
        if s > 1 and m:
            rest, head = tuple(g.shape[axis + 1:]), tuple(g.shape[:axis])
            spread = emit("reshape", g, shape=head + (m, 1) + rest)
            spread = emit("pad", spread, pads=((0, 0),) * (axis + 1) + ((0, s - 1),) + ((0, 0),) * len(rest),
                          value=0.0)
            g = emit("reshape", spread, shape=head + (m * s,) + rest)
            if m * s > d - lo:
                g = emit("slice", g, begin=(None,) * len(shape), step=(None,) * len(shape),
                         end=tuple(d - lo if k == axis else None for k in range(len(shape))))
            hi = lo + g.shape[axis]
        pads.append((lo, d - max(hi, lo)))
    return [emit("pad", g, pads=tuple(pads), value=0.0)]


def _repeat(op, x, y, dy):
    axis, r = op.attrs["axis"], op.attrs["repeats"]
    shape = x[0].shape
    if shape[axis] is None:
        raise ValueError("no gradient for a repeat along the batch axis")
    g = emit("reshape", dy[0], shape=shape[:axis] + (shape[axis], r) + shape[axis + 1:])
    return [emit("reduce_sum", g, axes=(axis + 1,), keepdims=False)]


def _broadcast_to(op, x, y, dy):
    return [sum_to(dy[0], x[0].shape)]


def _reduce_sum(op, x, y, dy):
    return [expand_like(dy[0], x[0], op.attrs["axes"], op.attrs.get("keepdims", False))]


def _reduce_mean(op, x, y, dy):
    g = expand_like(dy[0], x[0], op.attrs["axes"], op.attrs.get("keepdims", False))
    return [g / emit("count", x[0], axes=tuple(op.attrs["axes"]))]


def _reduce_extreme(op, x, y, dy):
    """The gradient goes to the elements equal to the extreme, split evenly among ties."""
    axes, keep = op.attrs["axes"], op.attrs.get("keepdims", False)
    hit = ops.cast(ops.equal(x[0], expand_like(y[0], x[0], axes, keep)), x[0].dtype)
    ties = emit("reduce_sum", hit, axes=tuple(axes), keepdims=True)
    return [hit * expand_like(dy[0], x[0], axes, keep) / ties]


def _softmax(op, x, y, dy):
    axis = op.attrs.get("axis", -1)
    s, g = y[0], dy[0]
    return [s * (g - emit("reduce_sum", g * s, axes=(axis,), keepdims=True))]


def _log_softmax(op, x, y, dy):
    axis = op.attrs.get("axis", -1)
    g = dy[0]
    return [g - ops.exp(y[0]) * emit("reduce_sum", g, axes=(axis,), keepdims=True)]


def _no_grad(op, x, y, dy):
    return [None] * len(x)


for _name, _fn in UNARY_GRADS.items():
    OPS[_name].grad = _unary_rule(_fn)
for _name, _fn in BINARY_GRADS.items():
    OPS[_name].grad = _binary_rule(_fn)
for _name in ("greater", "less", "equal", "greater_equal", "less_equal", "not_equal", "logical_and", "logical_or",
              "argmax", "count"):
    OPS[_name].grad = _no_grad
OPS["where"].grad = _where
OPS["cast"].grad = _cast
OPS["broadcast_like"].grad = _broadcast_like
OPS["matmul"].grad = _matmul
OPS["reshape"].grad = _reshape
OPS["transpose"].grad = _transpose
OPS["concat"].grad = _concat
OPS["pad"].grad = _pad
OPS["slice"].grad = _slice
OPS["repeat"].grad = _repeat
OPS["broadcast_to"].grad = _broadcast_to
OPS["reduce_sum"].grad = _reduce_sum
OPS["reduce_mean"].grad = _reduce_mean
OPS["reduce_max"].grad = _reduce_extreme
OPS["reduce_min"].grad = _reduce_extreme
OPS["softmax"].grad = _softmax
OPS["log_softmax"].grad = _log_softmax
OPS["dropout"].grad = _unary_rule(lambda x, y, g, **attrs: g)  # the inference form: the identity
