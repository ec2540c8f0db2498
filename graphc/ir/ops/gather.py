"""gather: rows of a table picked by integer ids (the embedding lookup)."""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType


def _gather_type(table, indices, axis=0):
    """table[..., indices, ...] along ``axis``: that axis is replaced by the shape of ``indices``."""
    if indices.dtype not in ("int32", "int64"):
        raise ShapeError(f"gather needs integer indices, received dtype {indices.dtype}")
    if not -table.rank <= axis < table.rank:
        raise ShapeError(f"gather axis {axis} is out of range for a table of shape {table.shape}")
    ax = axis % table.rank
    return TensorType(table.shape[:ax] + indices.shape + table.shape[ax + 1:], table.dtype)


def _check_ids(indices, rows, axis):
    bad = (indices < 0) | (indices >= rows)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"gather: id {int(indices[where])} at position {list(where)} of the indices is "
                         f"out of range: the table has {rows} entries along axis {axis}, so valid ids are "
                         f"0 to {rows - 1} ({int(bad.sum())} invalid id(s) in total)")


def _gather_ref(table, indices, axis=0):
    # Ids are checked, never wrapped: a negative or too large id is a bug in the caller's data.
    _check_ids(indices, table.shape[axis], axis)
    return np.take(table, indices, axis=axis)


defop("gather", infer=_gather_type, reference=_gather_ref, num_inputs=2)


# --- C lowering: the table viewed as (outer, rows, inner); every id is checked before any row is read -------
def _gather_c(ctx, op):
    """Returns GRAPHC_ERR_ID_RANGE (2) from the run function on a negative or too large id; the runtime turns
    it into a RuntimeError naming the Embedding layers."""
    table, ids = op.inputs
    out = op.outputs[0]
    ax = op.attrs.get("axis", 0) % table.type.rank
    return [f"if (graphc_gather({ctx.ptr(table)}, {ctx.ptr(ids)}, {int(ids.dtype == 'int64')}, {ctx.ptr(out)}, "
            f"{ctx.prod(table, 0, ax)}, {ctx.dim(table, ax)}, {ctx.prod(table, ax + 1)}, {ctx.numel(ids)}, "
            f"sizeof({ctx.ctype(table)})) != 0) return GRAPHC_ERR_ID_RANGE;"]


OPS["gather"].lower_c = _gather_c


def explain_bad_ids(graph, inputs, params) -> str:
    """Why a compiled run returned GRAPHC_ERR_ID_RANGE, in the reference's words: evaluates (with NumPy) only
    the ops that compute the ids of the graph's gathers, and names the first gather holding a bad id."""
    from ..reference import run
    gathers = [op for op in graph.ops if op.kind == "gather"]
    producer = {v.id: op for op in graph.ops for v in op.outputs}
    needed, stack = set(), [op.inputs[1] for op in gathers]
    while stack:  # the ops the ids depend on
        op = producer.get(stack.pop().id)
        if op is not None and id(op) not in needed:
            needed.add(id(op))
            stack += op.inputs
    sub = type(graph)(graph.inputs, [op.inputs[1] for op in gathers], [op for op in graph.ops if id(op) in needed],
                      graph.params, graph.param_keys, graph.constants)
    with np.errstate(all="ignore"):  # e.g. a float id of 1e12 cast to int32
        ids = run(sub, {v.id: a for v, a in zip(graph.inputs, inputs)},
                  {v.id: a for v, a in zip(graph.params, params)})
    for op, found in zip(gathers, ids):
        table, axis = op.inputs[0], op.attrs.get("axis", 0) % op.inputs[0].type.rank
        try:
            _check_ids(found, table.shape[axis], axis)
        except ValueError as e:
            return f"layer '{op.scope or op.kind}': {e}"
    return "no gather of the model holds a bad id when evaluated by the NumPy reference"
