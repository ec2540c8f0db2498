"""Layer weights: NumPy storage plus the operators, so ``x @ self.w + self.b`` traces."""
from __future__ import annotations

import numpy as np

from .ir import normalize_dtype
from .tracing import TensorOperators


class Variable(TensorOperators):
    """A weight. ``path`` is '<layer name>/<weight name>' as in Keras 3."""

    __array_priority__ = 100

    def __init__(self, value, name: str, *, trainable: bool = True, dtype="float32", path: str = ""):
        self.dtype = normalize_dtype(dtype)
        self._value = np.array(value, dtype=self.dtype, order="C")  # compiled code reads it in place
        self.name = name
        self.path = path or name
        self.trainable = trainable

    @property
    def shape(self):
        return self._value.shape

    @property
    def ndim(self):
        return self._value.ndim

    def numpy(self) -> np.ndarray:
        return self._value.copy()

    @property
    def value(self) -> np.ndarray:
        return self._value

    def assign(self, value) -> None:
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(f"Variable '{self.path}' has shape {self._value.shape}; "
                             f"cannot assign a value of shape {value.shape}")
        self._value[...] = value.astype(self.dtype)

    def __array__(self, dtype=None, copy=None):
        return self._value.astype(dtype) if dtype else self._value

    def __repr__(self):
        return f"<Variable path={self.path} shape={self.shape} dtype={self.dtype}>"
