"""Common-subexpression elimination and constant folding."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op, Value, get_op


def _key(op, inputs):
    return (op.kind, tuple(v.id for v in inputs), repr(sorted(op.attrs.items())))


def eliminate_common_subexpressions(graph: Graph) -> Graph:
    """Two ops of the same kind, attributes and inputs compute the same thing: keep the first.
    (Ops are pure at inference; dropout is gone by then.)"""
    seen, replace, ops = {}, {}, []
    for op in graph.ops:
        inputs = [replace.get(v.id, v) for v in op.inputs]
        key = _key(op, inputs)
        if key in seen:
            for old, new in zip(op.outputs, seen[key].outputs):
                replace[old.id] = new
            continue
        op = op if inputs == op.inputs else Op(op.kind, inputs, op.attrs, op.outputs, op.scope)
        seen[key] = op
        ops.append(op)
    outputs = [replace.get(v.id, v) for v in graph.outputs]
    return Graph(graph.inputs, outputs, ops, graph.params, graph.param_keys, graph.constants)


def fold_constants(graph: Graph) -> Graph:
    """Ops whose inputs are all constants are computed now (weights are parameters, not constants:
    they change with set_weights, so nothing derived from them is folded)."""
    constants, replace, ops = dict(graph.constants), {}, []
    for op in graph.ops:
        inputs = [replace.get(v.id, v) for v in op.inputs]
        if inputs and all(v.id in constants for v in inputs):
            result = get_op(op.kind).reference(*[constants[v.id] for v in inputs], **op.attrs)
            for v, r in zip(op.outputs, result if isinstance(result, tuple) else (result,)):
                folded = Value(v.type, "const", "const")
                constants[folded.id] = np.asarray(r, dtype=v.type.dtype)
                replace[v.id] = folded
            continue
        ops.append(op if inputs == op.inputs else Op(op.kind, inputs, op.attrs, op.outputs, op.scope))
    outputs = [replace.get(v.id, v) for v in graph.outputs]
    used = {v.id for op in ops for v in op.inputs} | {v.id for v in outputs}
    constants = {k: a for k, a in constants.items() if k in used}
    return Graph(graph.inputs, outputs, ops, graph.params, graph.param_keys, constants)
