"""InputSpec: what rank and axis sizes a layer accepts (checked before building and on every call)."""
from __future__ import annotations

from ..ir import format_shape


class InputSpec:
    def __init__(self, ndim=None, min_ndim=None, max_ndim=None, axes=None, dtype=None):
        self.ndim, self.min_ndim, self.max_ndim = ndim, min_ndim, max_ndim
        self.axes = dict(axes or {})
        self.dtype = dtype

    def check(self, layer, index, shape):
        where = f'Input {index} of layer "{layer.name}" ({type(layer).__name__}) is incompatible with the layer'
        rank = len(shape)
        full = f"Full shape received: {format_shape(shape)}"
        if self.ndim is not None and rank != self.ndim:
            raise ValueError(f"{where}: expected ndim={self.ndim}, found ndim={rank}. {full}")
        if self.min_ndim is not None and rank < self.min_ndim:
            raise ValueError(f"{where}: expected min_ndim={self.min_ndim}, found ndim={rank}. {full}")
        if self.max_ndim is not None and rank > self.max_ndim:
            raise ValueError(f"{where}: expected max_ndim={self.max_ndim}, found ndim={rank}. {full}")
        for axis, size in self.axes.items():
            if size is not None and -rank <= axis < rank and shape[axis] not in (None, size):
                raise ValueError(f"{where}: expected axis {axis} of the input to have value {size}, "
                                 f"but received an input with shape {format_shape(shape)}")
