"""NumPy reference execution of a graph: the first correctness oracle."""
from __future__ import annotations

import numpy as np

from .registry import get_op


def check_concrete(value, array) -> None:
    """The array fits the value's static type (None dimensions take any size)."""
    shape = value.type.shape
    if array.ndim != len(shape) or any(d is not None and d != a for d, a in zip(shape, array.shape)):
        raise ValueError(f"input {value.name!r}: expected shape {shape}, got {array.shape}")


def run(graph, feeds: dict, param_values: dict, extra=()) -> list:
    """Evaluate ``graph``.

    feeds: graph input Value.id -> ndarray; param_values: param Value.id -> ndarray.
    Returns the output arrays in order, then those of the Values in ``extra``.
    """
    env = {}
    for v in graph.inputs:
        a = np.asarray(feeds[v.id], dtype=v.type.dtype)
        check_concrete(v, a)
        env[v.id] = a
    for v in graph.params:
        env[v.id] = np.asarray(param_values[v.id], dtype=v.type.dtype)
    env.update(graph.constants)
    for op in graph.ops:
        result = get_op(op.kind).reference(*[env[v.id] for v in op.inputs], **op.attrs)
        results = result if isinstance(result, tuple) else (result,)
        for v, r in zip(op.outputs, results):
            env[v.id] = np.asarray(r, dtype=v.type.dtype)
    return [env[v.id] for v in list(graph.outputs) + list(extra)]
