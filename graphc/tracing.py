"""Tracing: a layer's ``call`` runs on symbolic ``Tensor``s and appends IR ops.

The builder being filled is held in a context variable, so ``graphc.ops``
functions and the operators ``+ - * / @`` on tensors and weights know where to
emit. Outside a trace, the same functions compute eagerly on NumPy arrays.
"""
from __future__ import annotations

import contextlib
import contextvars

import numpy as np

from .ir import GraphBuilder, ShapeError, TensorType, reference

_current: contextvars.ContextVar = contextvars.ContextVar("graphc_builder", default=None)


def current_builder():
    return _current.get()


@contextlib.contextmanager
def tracing(builder: GraphBuilder):
    token = _current.set(builder)
    try:
        yield builder
    finally:
        _current.reset(token)


@contextlib.contextmanager
def scope(name: str):
    """Ops emitted inside carry ``name`` (the layer's) for errors and C comments."""
    b = current_builder()
    old, b.scope = b.scope, name
    try:
        yield
    finally:
        b.scope = old


class TensorOperators:
    """``+ - * / @ **`` and unary minus, for anything graphc.ops accepts."""

    def __add__(self, o): return _ops().add(self, o)
    def __radd__(self, o): return _ops().add(o, self)
    def __sub__(self, o): return _ops().subtract(self, o)
    def __rsub__(self, o): return _ops().subtract(o, self)
    def __mul__(self, o): return _ops().multiply(self, o)
    def __rmul__(self, o): return _ops().multiply(o, self)
    def __truediv__(self, o): return _ops().divide(self, o)
    def __rtruediv__(self, o): return _ops().divide(o, self)
    def __matmul__(self, o): return _ops().matmul(self, o)
    def __rmatmul__(self, o): return _ops().matmul(o, self)
    def __pow__(self, o): return _ops().power(self, o)
    def __neg__(self): return _ops().negative(self)
    def __abs__(self): return _ops().abs(self)
    def __gt__(self, o): return _ops().greater(self, o)
    def __lt__(self, o): return _ops().less(self, o)


def _ops():
    from . import ops
    return ops


class Tensor(TensorOperators):
    """A symbolic value inside a trace (what ``Layer.call`` receives)."""

    __array_priority__ = 100  # numpy defers to our operators

    def __init__(self, value):
        self.value = value

    @property
    def shape(self):
        return self.value.type.shape

    @property
    def dtype(self):
        return self.value.type.dtype

    @property
    def ndim(self):
        return self.value.type.rank

    def __repr__(self):
        return f"<Tensor shape={self.shape} dtype={self.dtype}>"

    def __bool__(self):
        raise TypeError("A symbolic tensor has no truth value: use graphc.ops.where() instead of `if`.")

    def __getitem__(self, key):
        return _ops().getitem(self, key)


def to_value(x, dtype=None):
    """Tensor, Variable, array or Python number -> IR Value in the current builder."""
    from .variables import Variable
    b = current_builder()
    if isinstance(x, Tensor):
        return x.value
    if isinstance(x, Variable):
        return b.param(x, x.path, TensorType(x.shape, x.dtype))
    arr = np.asarray(x)
    if dtype is None:
        dtype = "float32" if arr.dtype.kind in "fc" or arr.dtype == object else arr.dtype
        if arr.dtype.kind in "iu" and arr.ndim == 0:
            dtype = "float32"  # a bare Python int in `x * 2` is a float scalar, as in Keras
    return b.constant(arr, dtype)


def emit(kind: str, *inputs, **attrs):
    """Emit an op on tensors/variables/constants; returns Tensor(s)."""
    b = current_builder()
    values = _unify_dtypes([to_value(x) if not _is_literal(x) else x for x in inputs])
    out = b.emit(kind, values, **attrs)
    return tuple(Tensor(v) for v in out) if isinstance(out, tuple) else Tensor(out)


def add_update(variable, new_value) -> None:
    """Record that a training step writes ``new_value`` into ``variable`` (e.g. BatchNormalization's moving
    statistics), replacing an update recorded earlier in the trace (see updated_value). Outside a trace it is
    ignored."""
    b = current_builder()
    if b is not None:
        value = to_value(new_value)
        for k, (v, _) in enumerate(b.updates):
            if v is variable:
                b.updates[k] = (variable, value)
                return
        b.updates.append((variable, value))


def updated_value(variable):
    """What ``variable`` holds after the updates recorded so far in this trace: a layer called twice in one
    call (TimeDistributed over BatchNormalization) moves its statistics twice, as Keras's successive calls do."""
    b = current_builder()
    for v, value in (b.updates if b is not None else ()):
        if v is variable:
            return Tensor(value)
    return variable


def rng_counter() -> Tensor:
    """The int32 scalar that numbers the random draws of this call (one per training step): random ops take
    it as an input, so a step's masks are reproducible and differ from step to step."""
    b = current_builder()
    if b.rng_counter is None:
        b.rng_counter = b.input("rng_counter", TensorType((), "int32"))
    return Tensor(b.rng_counter)


def _is_literal(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _unify_dtypes(items):
    """Python numbers take the dtype of the tensors beside them (x * 2 stays float32), except that a Python
    float beside integer tensors makes them float32, as in Keras (int32 * 0.5 is float32, not 0)."""
    b = current_builder()
    dtypes = [v.type.dtype for v in items if not _is_literal(v) and v.type.dtype != "bool"]
    dtype = dtypes[0] if dtypes else "float32"
    if any(isinstance(v, float) for v in items) and not dtype.startswith("float"):
        dtype = "float32"
        items = [v if _is_literal(v) or v.type.dtype.startswith("float") else b.emit("cast", [v], dtype=dtype)
                 for v in items]
    return [b.constant(np.asarray(v), dtype) if _is_literal(v) else v for v in items]


def eager(fn, *args):
    """Run ``fn`` (which emits ops) on concrete NumPy inputs through the reference executor."""
    b = GraphBuilder()
    feeds = {}

    def wrap(a):
        if isinstance(a, (list, tuple)):
            return type(a)(wrap(x) for x in a)
        if isinstance(a, np.ndarray) or (hasattr(a, "__array__") and not hasattr(a, "path")):
            arr = np.asarray(a)
            if arr.dtype == np.float64:
                arr = arr.astype("float32")  # Keras computes in float32
            v = b.input(f"arg{len(feeds)}", TensorType(arr.shape, arr.dtype))
            feeds[v.id] = arr
            return Tensor(v)
        return a  # Variables, Python numbers, None, strings pass through

    with tracing(b):
        out = fn(*[wrap(a) for a in args])
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        graph = b.finish([to_value(o) for o in outs])
    params = {v.id: graph.param_keys[v.id].value for v in graph.params}
    results = reference.run(graph, feeds, params)
    return type(out)(results) if isinstance(out, (tuple, list)) else results[0]


__all__ = ["Tensor", "TensorOperators", "tracing", "scope", "emit", "to_value", "eager",
           "current_builder", "ShapeError", "add_update", "updated_value", "rng_counter"]
