"""Tensor types of the IR: a static shape (``None`` for symbolic dimensions) and a dtype."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = ("float32", "float64", "int32", "int64", "bool")


class ShapeError(ValueError):
    """An op received inputs whose shapes or dtypes it cannot accept."""


def normalize_dtype(dtype) -> str:
    """'float32', np.float32, np.dtype('f4'), float -> 'float32' (and so on)."""
    if dtype is None:
        return "float32"
    if dtype is float:
        return "float32"
    if dtype is int:
        return "int32"
    try:
        name = np.dtype(dtype).name
    except TypeError:
        raise TypeError(f"Unknown dtype {dtype!r}; expected one of {DTYPES}") from None
    if name not in DTYPES:
        raise TypeError(f"Unsupported dtype {name!r}; graphc supports {DTYPES}")
    return name


def normalize_shape(shape) -> tuple:
    if isinstance(shape, int):
        shape = (shape,)
    out = []
    for d in shape:
        if d is None:
            out.append(None)
        elif isinstance(d, (int, np.integer)) and int(d) >= 0:
            out.append(int(d))
        else:
            raise ValueError(f"A shape holds non-negative integers or None; got {tuple(shape)!r}")
    return tuple(out)


def format_shape(shape) -> str:
    """(None, 4) -> '(None, 4)', (3,) -> '(3,)' like Python tuples."""
    return str(tuple(shape))


@dataclass(frozen=True)
class TensorType:
    """Static type of an IR value. Axis 0 is the batch when the value carries one."""

    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", normalize_shape(self.shape))
        object.__setattr__(self, "dtype", normalize_dtype(self.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(shape, self.dtype)

    def __str__(self) -> str:
        return f"{self.dtype}{list(self.shape)}"


def is_float(dtype: str) -> bool:
    return dtype in ("float32", "float64")


def dims_compatible(a, b) -> bool:
    return a is None or b is None or a == b


def known_size(shape):
    """Number of elements when every dimension is known, else None."""
    n = 1
    for d in shape:
        if d is None:
            return None
        n *= d
    return n
