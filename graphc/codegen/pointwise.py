"""Pointwise fusion: a chain of elementwise ops becomes one loop.

An elementwise op is computed inside the loop of its elementwise readers of the same shape when they all
share one loop; if it is also read elsewhere (a reduction, a GEMM, a graph output) after that loop, the
loop stores it too. Otherwise it runs as a loop of its own. Inside a loop each op is a named temporary,
so an operand used twice is computed once. A loop reads and writes every buffer at the same element (an
output written over an operand, or a parameter updated in place) so ``simd`` is safe even when buffers
alias, which the compiler could not prove by itself.
"""
from __future__ import annotations

import math
import re

from ..ir import get_op

PARALLEL_MIN = 32768  # elements below which a loop of three arrays stays on one thread (thread wake-up costs more)


def is_pointwise(op) -> bool:
    return get_op(op.kind).c_expr is not None


def fusion_plan(graph):
    """(root, stored): ``root`` maps id(op) -> the op whose loop computes it (itself unless fused into a later
    loop); ``stored`` holds the ids of values computed inside a later loop that still need a buffer.

    An elementwise op is computed inside the loop of its elementwise readers of the same shape when those all
    belong to one loop and every other reader (a GEMM, a reduction, a graph output) comes after that loop;
    then the loop also stores it (Adam's new moments are stored and used at once for the new weights).
    """
    consumers = {}
    for op in graph.ops:
        for v in op.inputs:
            consumers.setdefault(v.id, []).append(op)
    index = {id(op): i for i, op in enumerate(graph.ops)}
    outputs = {v.id for v in graph.outputs}
    root, stored = {}, set()
    for op in reversed(graph.ops):
        root[id(op)] = op
        if not is_pointwise(op):
            continue
        out = op.outputs[0]
        users = consumers.get(out.id, [])
        fused = [u for u in users if is_pointwise(u) and u.outputs[0].type.shape == out.type.shape]
        loops = {id(root[id(u)]) for u in fused}
        if len(loops) != 1:
            continue
        target = root[id(fused[0])]
        others = [u for u in users if not any(u is f for f in fused)]
        if any(index[id(u)] < index[id(target)] for u in others):
            continue  # someone needs the value before that loop runs
        root[id(op)] = target
        if others or out.id in outputs:
            stored.add(out.id)
    return root, stored


def loop_roots(graph) -> dict:
    """id(op) -> index of the op whose loop computes it (itself, or the loop it is fused into)."""
    root, _ = fusion_plan(graph)
    index = {id(op): i for i, op in enumerate(graph.ops)}
    return {id(op): index[id(root[id(op)])] for op in graph.ops}


def inlined_ops(graph) -> set:
    """Ops whose result is computed inside a later elementwise loop (see fusion_plan)."""
    root, _ = fusion_plan(graph)
    return {id(op) for op in graph.ops if root[id(op)] is not op}


def stored_values(graph) -> set:
    """Ids of values computed inside another op's loop that the loop also writes to memory."""
    return fusion_plan(graph)[1]


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


def _live_steps(steps, result) -> list:
    """Drops temporaries nothing reads (an operand only some ops look at, e.g. broadcast_like's shape
    source): pure expressions, so leaving them out changes nothing but the compiler's unused warnings."""
    used, live = {result}, []
    for step in reversed(steps):
        defined = re.match(r"const \w+ (t\d+) = ", step)
        if defined and defined.group(1) not in used:
            continue
        used |= set(re.findall(r"\bt\d+\b", step.split("=", 1)[1] if defined else step))
        live.append(step)
    return live[::-1]


def emit_pointwise(ctx, root, inlined, graph, stored=(), loop_of=None) -> list:
    """The loop computing ``root`` and every op inlined into it (storing those in ``stored``). ``loop_of``
    (id(op) -> root op, from fusion_plan) tells ops fused here from values another loop stored."""
    producer = {v.id: op for op in graph.ops for v in op.outputs}
    out = root.outputs[0]
    steps, temps, kept = [], {}, []
    leaves = {}

    def fused_producer(v):
        p = producer.get(v.id)
        return p if p is not None and id(p) in inlined and (loop_of is None or loop_of[id(p)] is root) else None

    def operand(v):
        if v.id in temps:
            return temps[v.id]
        if v.id not in leaves:
            leaves[v.id] = f"{ctx.ptr(v)}[{_index(ctx, v, out)}]"
        return leaves[v.id]

    def emit(op):
        expr = get_op(op.kind).c_expr([operand(v) for v in op.inputs], **op.attrs)
        name = f"t{len(temps)}"
        temps[op.outputs[0].id] = name
        steps.append(f"const {ctx.ctype(op.outputs[0])} {name} = {expr};  /* {op.kind} */")
        if op is not root and op.outputs[0].id in stored:
            steps.append(f"{ctx.ptr(op.outputs[0])}[i] = {name};  /* kept for later readers */")
            kept.append(name)

    # Operands before the ops that read them, depth first and left to right, with a stack of its own: a fused
    # chain can be thousands of ops long (a recurrence unrolled in elementwise ops), past Python's recursion.
    stack = [(root, False)]
    while stack:
        op, operands_done = stack.pop()
        if op.outputs[0].id in temps:
            continue
        if operands_done:
            emit(op)
            continue
        stack.append((op, True))
        stack.extend((p, False) for p in map(fused_producer, reversed(op.inputs)) if p is not None)
    result = temps[out.id]
    n = ctx.numel(out)
    body = [f"    {s}" for s in _live_steps(steps, result)] + [f"    {ctx.ptr(out)}[i] = {result};"]
    # The threshold scales with the arrays the loop streams: Adam's update (4 read, 3 written) pays for a second
    # thread from about 14,000 elements, a ReLU gradient (2 read, 1 written) from 32,768.
    arrays = 1 + len(kept) + sum(1 for expr in leaves.values() if expr.endswith("[i]"))
    return [f"{{ const int64_t n = {n};",
            f"  GRAPHC_OMP(omp parallel for simd if (parallel: n > {PARALLEL_MIN * 3 // max(arrays, 3)}))",
            "  for (int64_t i = 0; i < n; i++) {",
            *["  " + line for line in body],
            "  }", "}"]
