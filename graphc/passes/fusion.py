"""Epilogue fusion: matmul -> add(bias) -> activation becomes one ``dense`` op (one GEMM call whose
epilogue adds the bias and applies the activation while the tile is still in registers)."""
from __future__ import annotations

from ..ir import Graph, Op
from ..ir.ops.linalg import DENSE_ACTIVATIONS


def _consumers(graph):
    users = {}
    for op in graph.ops:
        for v in op.inputs:
            users.setdefault(v.id, []).append(op)
    return users


def fuse_dense_epilogue(graph: Graph) -> Graph:
    users = _consumers(graph)
    outputs = {v.id for v in graph.outputs}

    def only_user(v):
        u = users.get(v.id, [])
        return u[0] if len(u) == 1 and v.id not in outputs else None

    drop, replace = set(), {}
    for op in graph.ops:
        if op.kind != "matmul" or op.inputs[1].type.rank != 2 or op.outputs[0].dtype != "float32":
            continue
        chain, inputs, act = [op], list(op.inputs), "linear"
        add = only_user(op.outputs[0])
        if add is not None and add.kind == "add":
            bias = next(v for v in add.inputs if v is not op.outputs[0])
            if bias.shape == (op.inputs[1].shape[1],):  # static (N,): no batch axis, ready before the GEMM
                chain.append(add)
                inputs.append(bias)
        nxt = only_user(chain[-1].outputs[0])
        if nxt is not None and nxt.kind in DENSE_ACTIVATIONS and nxt.kind != "linear":
            chain.append(nxt)
            act = nxt.kind
        if len(chain) == 1:
            continue
        drop.update(id(c) for c in chain[:-1])
        replace[id(chain[-1])] = Op("dense", inputs, {"activation": act}, [chain[-1].outputs[0]], scope=op.scope)
    ops = [replace.get(id(op), op) for op in graph.ops if id(op) not in drop]
    return Graph(graph.inputs, graph.outputs, ops, graph.params, graph.param_keys, graph.constants)
