"""Epilogue fusion for convolutions: conv -> add(bias) -> activation becomes one ``conv_bias_act`` op
(conv_transpose likewise becomes ``conv_transpose_bias_act``): the kernel adds the bias and applies the
activation to each block of outputs right after its GEMM, while the block is still in cache.

The bias is any value of shape (channels,) (a parameter, or the shift a folded BatchNormalization
computes); either the bias or the activation may be missing. Intermediate values read by another op
or returned by the graph stop the chain.
"""
from __future__ import annotations

from ..ir import Graph, Op
from ..ir.ops.linalg import DENSE_ACTIVATIONS

FUSED = {"conv": "conv_bias_act", "conv_transpose": "conv_transpose_bias_act"}


def _consumers(graph):
    users = {}
    for op in graph.ops:
        for v in op.inputs:
            users.setdefault(v.id, []).append(op)
    return users


def fuse_conv_epilogue(graph: Graph) -> Graph:
    users = _consumers(graph)
    outputs = {v.id for v in graph.outputs}

    def only_user(v):
        u = users.get(v.id, [])
        return u[0] if len(u) == 1 and v.id not in outputs else None

    drop, replace = set(), {}
    for op in graph.ops:
        y = op.outputs[0] if op.outputs else None
        if op.kind not in FUSED or y.dtype != "float32":
            continue
        chain, inputs, act = [op], list(op.inputs), "linear"
        add = only_user(y)
        if add is not None and add.kind == "add" and len(add.inputs) == 2 and add.outputs[0].type == y.type:
            bias = add.inputs[1] if add.inputs[0] is y else add.inputs[0]
            if bias is not y and bias.type.shape == (y.shape[-1],) and bias.dtype == "float32":
                chain.append(add)
                inputs.append(bias)
        nxt = only_user(chain[-1].outputs[0])
        if nxt is not None and nxt.kind in DENSE_ACTIVATIONS and nxt.kind != "linear":
            chain.append(nxt)
            act = nxt.kind
        if len(chain) == 1:
            continue
        drop.update(id(c) for c in chain[:-1])
        replace[id(chain[-1])] = Op(FUSED[op.kind], inputs, {**op.attrs, "activation": act},
                                    [chain[-1].outputs[0]], scope=op.scope)
    ops = [replace.get(id(op), op) for op in graph.ops if id(op) not in drop]
    return Graph(graph.inputs, graph.outputs, ops, graph.params, graph.param_keys, graph.constants)
