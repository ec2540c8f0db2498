"""matmul with NumPy semantics on the last two axes (leading axes broadcast)."""
from __future__ import annotations

import numpy as np

from ..registry import defop
from ..types import ShapeError, TensorType, dims_compatible
from .elementwise import broadcast_shapes


def _matmul_type(a, b):
    if a.rank < 2 or b.rank < 2:
        raise ShapeError(f"matmul needs operands of rank >= 2, received shapes {a.shape} and {b.shape}")
    if a.dtype != b.dtype:
        raise ShapeError(f"matmul operands have different dtypes: {a.dtype} and {b.dtype}")
    if not dims_compatible(a.shape[-1], b.shape[-2]):
        raise ShapeError(f"matmul: inner dimensions differ: {a.shape} @ {b.shape} "
                         f"({a.shape[-1]} != {b.shape[-2]})")
    lead = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    return TensorType(lead + (a.shape[-2], b.shape[-1]), a.dtype)


defop("matmul", infer=_matmul_type, reference=np.matmul, num_inputs=2)
