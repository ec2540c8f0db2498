"""Rematerialization: recompute cheap elementwise results for the backward pass instead of keeping them.

In a training graph a forward activation such as ``h = relu(x)`` is read twice: by the next layer at once,
and by that layer's weight gradient near the end of the step. Its operand ``x`` stays alive until then
anyway (relu's own gradient reads it), so computing ``relu(x)`` again right before the late reader costs
one cheap loop and frees ``h``'s buffer for the whole backward pass, lowering peak memory.

A read is *late* when every operand of the op is still alive there (a graph input, parameter or constant,
or a value read at or after that point): recomputing then extends no lifetime. That alone does not make the
peak lower (elu's gradient reads both its input and its output, so the recomputed copy and the values the
backward pass needs meet at the peak): the recomputed graph is kept only where its memory plan's peak is.
"""
from __future__ import annotations

from ..ir import Graph, Op, Value, get_op
from .memory import plan_memory


def is_pointwise(op) -> bool:
    return get_op(op.kind).c_expr is not None  # an elementwise op: one C expression per element

MIN_GAP = 2  # ops between the result and a read for the read to count as late


def rematerialize(graph: Graph) -> Graph:
    after = _recompute_late_reads(graph)
    if after is graph:
        return graph
    old, new = plan_memory(graph), plan_memory(after)
    lower = (new.peak_live_per_sample, new.peak_live_fixed) < (old.peak_live_per_sample, old.peak_live_fixed)
    return after if lower else graph


def _recompute_late_reads(graph: Graph) -> Graph:
    pos = {id(op): i for i, op in enumerate(graph.ops)}
    readers, last_read = {}, {}
    for i, op in enumerate(graph.ops):
        for v in op.inputs:
            readers.setdefault(v.id, []).append(op)
            last_read[v.id] = i
    produced = {v.id for op in graph.ops for v in op.outputs}
    outputs = {v.id for v in graph.outputs}

    clones = {}  # id(first late reader) -> [clone ops to insert before it]
    rewire = {}  # (id(reader op), value id) -> clone's output
    for op in graph.ops:
        if not is_pointwise(op) or len(op.outputs) != 1 or op.outputs[0].id in outputs:
            continue
        out, here = op.outputs[0], pos[id(op)]

        def alive_at(at, op=op):
            return all(v.id not in produced or last_read.get(v.id, -1) >= at for v in op.inputs)

        late = [r for r in readers.get(out.id, []) if pos[id(r)] - here > MIN_GAP and alive_at(pos[id(r)])]
        early = [r for r in readers.get(out.id, []) if r not in late]
        if not late or not early:
            continue
        first = min(late, key=lambda r: pos[id(r)])
        copy = Value(out.type, "op", index=0)
        clone = Op(op.kind, list(op.inputs), dict(op.attrs), [copy], scope=f"{op.scope} (recomputed)")
        copy.op = clone
        clones.setdefault(id(first), []).append(clone)
        for r in late:
            rewire[(id(r), out.id)] = copy
        last_read[out.id] = max(pos[id(r)] for r in early)  # the original now dies at its last early read

    if not clones:
        return graph
    ops = []
    for op in graph.ops:
        ops.extend(clones.get(id(op), []))
        inputs = [rewire.get((id(op), v.id), v) for v in op.inputs]
        ops.append(op if inputs == op.inputs else Op(op.kind, inputs, op.attrs, op.outputs, op.scope))
    return Graph(graph.inputs, graph.outputs, ops, graph.params, graph.param_keys, graph.constants)
