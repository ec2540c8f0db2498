"""Identity and dead-code elimination."""
from __future__ import annotations

from ..ir import Graph, Op

# Ops that return their first input unchanged at inference.
IDENTITY_OPS = {"identity", "dropout"}


def _rebuild(graph: Graph, ops, outputs) -> Graph:
    used = {v.id for op in ops for v in op.inputs} | {v.id for v in outputs}
    return Graph(graph.inputs, outputs, ops, [p for p in graph.params if p.id in used],
                 {k: v for k, v in graph.param_keys.items() if k in used},
                 {k: v for k, v in graph.constants.items() if k in used})


def eliminate_identities(graph: Graph) -> Graph:
    """Drop identity ops (Dropout at inference), rewiring their consumers to the op's input."""
    replace = {}
    kept = []
    for op in graph.ops:
        inputs = [replace.get(v.id, v) for v in op.inputs]
        if op.kind in IDENTITY_OPS:
            replace[op.outputs[0].id] = inputs[0]
            continue
        kept.append(op if inputs == op.inputs else Op(op.kind, inputs, op.attrs, op.outputs, op.scope))
    outputs = [replace.get(v.id, v) for v in graph.outputs]
    return _rebuild(graph, kept, outputs)


def eliminate_dead_code(graph: Graph) -> Graph:
    """Drop ops none of whose outputs reaches a graph output."""
    live = {v.id for v in graph.outputs}
    kept = []
    for op in reversed(graph.ops):
        if any(v.id in live for v in op.outputs):
            kept.append(op)
            live.update(v.id for v in op.inputs)
    return _rebuild(graph, list(reversed(kept)), list(graph.outputs))


def simplify(graph: Graph) -> Graph:
    return eliminate_dead_code(eliminate_identities(graph))
