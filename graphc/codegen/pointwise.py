"""Pointwise fusion: a chain of elementwise ops becomes one loop.

An elementwise op is inlined into its consumer when that consumer is elementwise too, is its only
reader, and has the same output shape; otherwise its result gets a buffer (it feeds a reduction, a GEMM,
several readers, or a graph output). Inside the loop each op is a named temporary, so an operand used
twice is computed once.
"""
from __future__ import annotations

import math

from ..ir import get_op

PARALLEL_MIN = 32768  # elements below which a loop stays on one thread (thread wake-up costs more)


def is_pointwise(op) -> bool:
    return get_op(op.kind).c_expr is not None


def loop_roots(graph) -> dict:
    """id(op) -> index of the op whose loop computes it (itself, or the consumer it is inlined into)."""
    inlined = inlined_ops(graph)
    consumers = {}
    for op in graph.ops:
        for v in op.inputs:
            consumers.setdefault(v.id, []).append(op)
    index = {id(op): i for i, op in enumerate(graph.ops)}
    at = {}
    for op in reversed(graph.ops):
        at[id(op)] = at[id(consumers[op.outputs[0].id][0])] if id(op) in inlined else index[id(op)]
    return at


def inlined_ops(graph) -> set:
    """Ops whose result is computed inside their (single, elementwise) consumer's loop."""
    consumers = {}
    for op in graph.ops:
        for v in op.inputs:
            consumers.setdefault(v.id, []).append(op)
    outputs = {v.id for v in graph.outputs}
    inlined = set()
    for op in graph.ops:
        out = op.outputs[0]
        users = consumers.get(out.id, [])
        if (is_pointwise(op) and out.id not in outputs and len(users) == 1 and is_pointwise(users[0])
                and users[0].outputs[0].type.shape == out.type.shape
                and sum(v.id == out.id for v in users[0].inputs) == 1):
            inlined.add(id(op))
    return inlined


def _index(ctx, leaf, out) -> str:
    """Index into ``leaf`` for flat position ``i`` of ``out`` under NumPy broadcasting."""
    ls, os_ = leaf.type.shape, out.type.shape
    same_rows = ctx.rows.get(leaf.id) == ctx.rows.get(out.id)
    if ls == os_ and (ls[:1] != (None,) or same_rows):
        return "i"
    if all(d == 1 for d in ls):
        return "0"
    lead = list(ls)
    while lead and lead[0] == 1:
        lead.pop(0)
    if lead and None not in lead and tuple(lead) == tuple(os_[len(os_) - len(lead):]):
        return f"i % {math.prod(lead)}"
    padded = (1,) * (len(os_) - len(ls)) + tuple(ls)
    k = len(padded)
    while k > 0 and padded[k - 1] == 1:
        k -= 1
    if padded[:k] == os_[:k] and all(d is not None for d in os_[k:]) and (os_[:1] != (None,) or same_rows):
        return f"i / {math.prod(os_[k:])}"
    if any(d is None for d in os_[1:]) or (os_[:1] == (None,) and ls[:1] == (None,) and not same_rows):
        raise ValueError(f"cannot broadcast {ls} to {os_} in C")
    # General case: output coordinates from i, then the leaf's strides (0 on broadcast axes).
    terms, stride_out, stride_leaf = [], 1, 1
    for axis in range(len(os_) - 1, -1, -1):
        d = os_[axis]
        ld = padded[axis]
        coord = f"(i / {stride_out})" if axis == 0 else f"((i / {stride_out}) % {d})"
        if ld != 1:
            terms.append(f"{coord} * {stride_leaf}" if stride_leaf != 1 else coord)
            stride_leaf *= ld or 1  # only axis 0 may be symbolic, and it is the last one
        stride_out *= d if d is not None else 1
    return " + ".join(reversed(terms)) or "0"


def emit_pointwise(ctx, root, inlined, graph) -> list:
    """The loop computing ``root`` and every op inlined into it."""
    producer = {v.id: op for op in graph.ops for v in op.outputs}
    out = root.outputs[0]
    steps, temps = [], {}
    leaves = {}

    def operand(v):
        if v.id in temps:
            return temps[v.id]
        if v.id in producer and id(producer[v.id]) in inlined:
            return visit(producer[v.id])
        if v.id not in leaves:
            leaves[v.id] = f"{ctx.ptr(v)}[{_index(ctx, v, out)}]"
        return leaves[v.id]

    def visit(op):
        args = [operand(v) for v in op.inputs]
        expr = get_op(op.kind).c_expr(args, **op.attrs)
        name = f"t{len(temps)}"
        temps[op.outputs[0].id] = name
        steps.append(f"const {ctx.ctype(op.outputs[0])} {name} = {expr};  /* {op.kind} */")
        return name

    result = visit(root)
    n = ctx.numel(out)
    body = [f"    {s}" for s in steps] + [f"    {ctx.ptr(out)}[i] = {result};"]
    return [f"{{ const int64_t n = {n};",
            f"  GRAPHC_OMP(omp parallel for if (n > {PARALLEL_MIN}))",
            "  for (int64_t i = 0; i < n; i++) {",
            *["  " + line for line in body],
            "  }", "}"]
