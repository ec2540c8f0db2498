"""Inference BatchNormalization folded into the matmul / conv / conv_transpose that feeds it.

    bn(lin(x, W) [+ b]) = lin(x, W * s) + shift,   s = gamma / sqrt(var + eps),
                                                   shift = beta - mean * s        (no bias)
                                                   shift = (b - mean) * s + beta  (with bias b)

The weights are runtime data (``set_weights`` must not need a recompile), so the folded kernel and shift
are not numbers baked into the graph but IR ops on the parameters. They have no batch axis, so the
generated code recomputes them on every call: one multiply per kernel weight plus a few per channel,
against the multiply-add per kernel weight and output row that the GEMM/conv itself does; the folded
kernel takes its size in the arena's fixed region. The batch-sized batch_norm pass is gone and the shift
add fuses with what follows (the conv epilogue, or the activation's loop after a matmul).

Because that per-call cost does not shrink with the batch, a fold is made only where the kernel is not
much larger than one sample's output (``max_kernel_ratio``): a Dense layer of one row per sample followed
by BatchNormalization is left alone (scaling its kernel would cost more than normalizing its output).
"""
from __future__ import annotations

import math

import numpy as np

from ..ir import Graph, Op, Value, get_op
from ..ir.types import TensorType
from .memory import rows_factor

# op kind -> axis of its kernel that indexes the output channels
FOLDABLE = {"matmul": -1, "conv": -1, "conv_transpose": -2}
DEFAULT_MAX_KERNEL_RATIO = 8.0


def _new_op(kind, inputs, scope, outputs=None, **attrs):
    op = Op(kind, list(inputs), dict(attrs), scope=scope)
    if outputs is None:
        t = get_op(kind).infer(*[v.type for v in inputs], **attrs)
        outputs = [Value(t, "op", op=op)]
    op.outputs = outputs
    return op


def _match(bn, producer, users, outputs, rows):
    """(linear op, bias value or None) when ``bn`` can absorb the op chain before it, else None.
    Kernel, bias and statistics must not depend on the batch (parameters, constants or ops on them)."""
    x = bn.inputs[0]
    if bn.attrs["axis"] % x.type.rank != x.type.rank - 1 or any(rows.get(v.id) is not None for v in bn.inputs[1:]):
        return None

    def sole_reader(v, op):
        return v.id not in outputs and [id(u) for u in users.get(v.id, [])] == [id(op)]

    lin, bias, reader = producer.get(x.id), None, bn
    if lin is not None and lin.kind == "add" and sole_reader(x, bn):
        add = lin
        for y, b in (add.inputs, reversed(add.inputs)):
            p = producer.get(y.id)
            if p is not None and p.kind in FOLDABLE and b.type.shape == (x.type.shape[-1],) and y.type == x.type:
                lin, bias, x, reader = p, b, y, add
                break
        else:
            return None
    if lin is None or lin.kind not in FOLDABLE or not sole_reader(x, reader):
        return None
    kernel = lin.inputs[1]
    if rows.get(kernel.id) is not None or (lin.kind == "matmul" and (kernel.type.rank != 2 or lin.attrs)):
        return None
    return lin, bias


def fold_batch_norm(graph: Graph, max_kernel_ratio: float | None = DEFAULT_MAX_KERNEL_RATIO) -> Graph:
    """``max_kernel_ratio``: fold only when kernel size <= ratio * elements of one sample's output
    (None: fold wherever the pattern matches)."""
    producer = {v.id: op for op in graph.ops for v in op.outputs}
    users = {}
    for op in graph.ops:
        for v in op.inputs:
            users.setdefault(v.id, []).append(op)
    outputs = {v.id for v in graph.outputs}
    rows = rows_factor(graph)
    constants = dict(graph.constants)
    drop, replace = set(), {}  # ops removed; id(batch_norm) -> ops replacing it (all inputs are ready there)
    for bn in graph.ops:
        if bn.kind != "batch_norm" or id(bn) in drop:
            continue
        found = _match(bn, producer, users, outputs, rows)
        if found is None:
            continue
        lin, bias = found
        y, kernel = bn.outputs[0], lin.inputs[1]
        per_sample = math.prod(y.type.shape[1:]) * (rows.get(y.id) or 1)
        if max_kernel_ratio is not None and math.prod(kernel.type.shape) > max_kernel_ratio * per_sample:
            continue
        mean, var, gamma, beta = bn.inputs[1:]
        eps = Value(TensorType((), y.type.dtype), "const", "const")
        constants[eps.id] = np.asarray(bn.attrs["epsilon"], dtype=y.type.dtype)
        new, scope = [], bn.scope

        def emit(kind, *inputs, **attrs):
            new.append(_new_op(kind, inputs, scope, **attrs))
            return new[-1].outputs[0]

        scale = emit("divide", gamma, emit("sqrt", emit("add", var, eps)))
        if bias is None:
            shift = emit("subtract", beta, emit("multiply", mean, scale))
        else:
            shift = emit("add", emit("multiply", emit("subtract", bias, mean), scale), beta)
        if FOLDABLE[lin.kind] == -2:  # conv_transpose kernel (*k, out_channels, in_channels)
            scale = emit("reshape", scale, shape=(scale.type.shape[0], 1))
        folded = emit(lin.kind, lin.inputs[0], emit("multiply", kernel, scale), **lin.attrs)
        new[-1].scope = lin.scope
        new.append(_new_op("add", [folded, shift], scope, outputs=[y]))
        replace[id(bn)] = new
        drop.update(id(op) for op in (lin, producer[bn.inputs[0].id], bn))
    if not replace:
        return graph
    ops = []
    for op in graph.ops:
        ops += replace.get(id(op), []) if id(op) in drop else [op]
    used = {v.id for op in ops for v in op.inputs} | outputs
    return Graph(graph.inputs, graph.outputs, ops, [p for p in graph.params if p.id in used],
                 {k: v for k, v in graph.param_keys.items() if k in used},
                 {k: v for k, v in constants.items() if k in used})
