"""Layer weights: NumPy storage plus the operators, so ``x @ self.w + self.b`` traces.

Every change of a weight's value goes through ``assign`` or a training step (``value`` is a read-only view),
and bumps ``weights_version()``, recording the new version in the Variable (``changed_at``): compiled programs
keep copies derived from their weights (packed for the GEMM) and re-derive them when one of those changed.
"""
from __future__ import annotations

import itertools

import numpy as np

from .ir import normalize_dtype
from .tracing import TensorOperators


_versions = itertools.count(1)
_version = 0


def weights_version() -> int:
    """A number that changes whenever any weight's value may have changed."""
    return _version


def weights_changed(variables) -> None:
    """Record that ``variables`` were written (by assign, or in place by a training step)."""
    global _version
    _version = next(_versions)
    for v in variables:
        v.changed_at = _version


class Variable(TensorOperators):
    """A weight. ``path`` is '<layer name>/<weight name>' as in Keras 3."""

    __array_priority__ = 100
    regularizer = None  # (a penalty on the values that training adds to the loss: see graphc.regularizers)

    def __init__(self, value, name: str, *, trainable: bool = True, dtype="float32", path: str = ""):
        self.dtype = normalize_dtype(dtype)
        self._value = np.array(value, dtype=self.dtype, order="C")  # compiled code reads and writes it in place
        self._view = self._value.view()
        self._view.flags.writeable = False
        weights_changed([self])
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
        """The current value, read-only (change it with ``assign``)."""
        return self._view

    @property
    def storage(self) -> np.ndarray:
        """The writable array behind ``value``, which training steps update in place (then call
        ``weights_changed`` with it)."""
        return self._value

    def assign(self, value) -> None:
        """Sets the value. Inside a layer's call (a traced tensor), the training step writes it, as
        BatchNormalization's statistics are written: ``self.count.assign(self.count + 1.0)`` counts steps."""
        from .tracing import Tensor, add_update, current_builder
        if isinstance(value, Tensor) and current_builder() is not None:
            if tuple(value.shape) != self._value.shape:
                raise ValueError(f"Variable '{self.path}' has shape {self._value.shape}; "
                                 f"cannot assign a value of shape {tuple(value.shape)}")
            from . import ops
            add_update(self, ops.cast(value, self.dtype) if value.dtype != self.dtype else value)
            return
        value = np.asarray(value)
        if value.shape != self._value.shape:
            raise ValueError(f"Variable '{self.path}' has shape {self._value.shape}; "
                             f"cannot assign a value of shape {value.shape}")
        self._value[...] = value.astype(self.dtype)
        weights_changed([self])

    def assign_add(self, delta) -> None:
        self.assign(self + delta)

    def assign_sub(self, delta) -> None:
        self.assign(self - delta)

    def __float__(self) -> float:
        """A one-element variable's value, as Keras's variables give it (``float(optimizer.learning_rate)``)."""
        if self._value.size != 1:
            raise TypeError(f"Variable '{self.path}' has shape {self._value.shape}: only a one-element variable "
                            "converts to a Python float")
        return float(self._value.reshape(()))

    def __array__(self, dtype=None, copy=None):
        return self._value.astype(dtype) if dtype else self._view

    def __repr__(self):
        return f"<Variable path={self.path} shape={self.shape} dtype={self.dtype}>"
