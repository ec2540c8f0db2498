"""gather: rows of a table picked by integer ids (the embedding lookup)."""
from __future__ import annotations

import numpy as np

from ..registry import defop
from ..types import ShapeError, TensorType


def _gather_type(table, indices, axis=0):
    """table[..., indices, ...] along ``axis``: that axis is replaced by the shape of ``indices``."""
    if indices.dtype not in ("int32", "int64"):
        raise ShapeError(f"gather needs integer indices, received dtype {indices.dtype}")
    if not -table.rank <= axis < table.rank:
        raise ShapeError(f"gather axis {axis} is out of range for a table of shape {table.shape}")
    ax = axis % table.rank
    return TensorType(table.shape[:ax] + indices.shape + table.shape[ax + 1:], table.dtype)


def _gather_ref(table, indices, axis=0):
    # Ids are checked, never wrapped: a negative or too large id is a bug in the caller's data.
    rows = table.shape[axis]
    bad = (indices < 0) | (indices >= rows)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"gather: id {int(indices[where])} at position {list(where)} of the indices is "
                         f"out of range: the table has {rows} entries along axis {axis}, so valid ids are "
                         f"0 to {rows - 1} ({int(bad.sum())} invalid id(s) in total)")
    return np.take(table, indices, axis=axis)


defop("gather", infer=_gather_type, reference=_gather_ref, num_inputs=2)
