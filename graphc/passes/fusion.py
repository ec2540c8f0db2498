"""Epilogue fusion: a GEMM-like op -> add(bias) -> activation becomes one op whose kernel adds the bias and
applies the activation to each block of outputs right after computing it, while it is still in cache.

    matmul (2-D kernel) -> dense        conv -> conv_bias_act        conv_transpose -> conv_transpose_bias_act

The bias is any value of shape (channels,) (a parameter, or the shift a folded BatchNormalization computes);
either the bias or the activation may be missing. A value read by another op or returned by the graph
stops the chain.

Pool fusion: a 2-D conv (after its epilogue's fusion) whose output only a MaxPooling2D(2) reads (2x2
windows, stride 2, no padding) becomes conv_max_pool, whose kernel never writes the convolution's output.
"""
from __future__ import annotations

from functools import partial

from ..ir import Graph, Op
from ..ir.ops.conv import POOL2
from ..ir.ops.linalg import DENSE_ACTIVATIONS

EPILOGUES = {"matmul": "dense", "conv": "conv_bias_act", "conv_transpose": "conv_transpose_bias_act"}


def _fusable(op) -> bool:
    if op.kind not in EPILOGUES or op.outputs[0].dtype != "float32":
        return False
    if op.attrs.get("transpose_a") or op.attrs.get("transpose_b"):
        return False  # dense's kernel takes plain operands
    return op.kind != "matmul" or op.inputs[1].type.rank == 2  # a batched matmul has no GEMM epilogue


def _only_user(graph: Graph):
    """v -> the one op that reads v, or None (several, none, or v is a graph output)."""
    users = {}
    for op in graph.ops:
        for v in op.inputs:
            users.setdefault(v.id, []).append(op)
    outputs = {v.id for v in graph.outputs}

    def only_user(v):
        u = users.get(v.id, [])
        return u[0] if len(u) == 1 and v.id not in outputs else None
    return only_user


def fuse_epilogues(graph: Graph, kinds=tuple(EPILOGUES)) -> Graph:
    only_user = _only_user(graph)

    drop, replace = set(), {}
    for op in graph.ops:
        if op.kind not in kinds or not _fusable(op):
            continue
        y = op.outputs[0]
        chain, inputs, act = [op], list(op.inputs), "linear"
        add = only_user(y)
        if add is not None and add.kind == "add" and add.outputs[0].type == y.type:
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
        replace[id(chain[-1])] = Op(EPILOGUES[op.kind], inputs, {**op.attrs, "activation": act},
                                    [chain[-1].outputs[0]], scope=op.scope)
    ops = [replace.get(id(op), op) for op in graph.ops if id(op) not in drop]
    return Graph(graph.inputs, graph.outputs, ops, graph.params, graph.param_keys, graph.constants)


fuse_dense_epilogue = partial(fuse_epilogues, kinds=("matmul",))
fuse_conv_epilogue = partial(fuse_epilogues, kinds=("conv", "conv_transpose"))


def _is_pool2(attrs) -> bool:
    return (tuple(attrs["pool_size"]), tuple(attrs["strides"]), attrs["padding"]) == tuple(POOL2.values())


def fuse_conv_max_pool(graph: Graph) -> Graph:
    only_user = _only_user(graph)
    drop, replace = set(), {}
    for op in graph.ops:
        if op.kind not in ("conv", "conv_bias_act") or op.inputs[1].type.rank != 4 or op.outputs[0].dtype != "float32":
            continue
        pool = only_user(op.outputs[0])
        if pool is None or pool.kind != "max_pool" or not _is_pool2(pool.attrs):
            continue
        drop.add(id(op))
        replace[id(pool)] = Op("conv_max_pool", list(op.inputs), {"activation": "linear", **op.attrs},
                               [pool.outputs[0]], scope=op.scope)
    ops = [replace.get(id(op), op) for op in graph.ops if id(op) not in drop]
    return Graph(graph.inputs, graph.outputs, ops, graph.params, graph.param_keys, graph.constants)
