"""Specialization: give a graph's non-batch ``None`` dimensions (variable sequence length) concrete sizes.

Every op's shape rule runs again on the new input types, so the result is a new graph whose values all
have static shapes except the batch axis; compiled code is then cached per specialized shape.
"""
from __future__ import annotations

from ..ir import Graph, GraphBuilder, TensorType


def needs_specialization(graph: Graph) -> bool:
    return any(d is None for v in graph.inputs for d in v.type.shape[1:])


def specialize(graph: Graph, input_shapes) -> Graph:
    """``input_shapes``: one per-sample shape (without the batch axis) per graph input."""
    b = GraphBuilder()
    env = {}
    for v, shape in zip(graph.inputs, input_shapes):
        shape = tuple(shape)
        if len(shape) != len(v.type.shape) - 1 or any(d is not None and d != s for d, s in zip(v.type.shape[1:], shape)):
            raise ValueError(f"input {v.name!r}: shape {v.type.shape} cannot take per-sample shape {shape}")
        env[v.id] = b.input(v.name, TensorType((v.type.shape[0],) + shape, v.type.dtype))
    for v in graph.params:
        env[v.id] = b.param(graph.param_keys[v.id], v.name, v.type)
    for vid, array in graph.constants.items():
        env[vid] = b.constant(array, str(array.dtype))
    for op in graph.ops:
        b.scope = op.scope
        out = b.emit(op.kind, [env[v.id] for v in op.inputs], **op.attrs)
        for old, new in zip(op.outputs, out if isinstance(out, tuple) else (out,)):
            env[old.id] = new
    return b.finish([env[v.id] for v in graph.outputs])
