"""InputLayer and ``graphc.Input``: where a functional graph starts."""
from __future__ import annotations

from ..ir import normalize_dtype, normalize_shape
from ..serialization import register
from .base import Layer
from .node import KerasTensor, Node


@register("layers")
class InputLayer(Layer):
    def __init__(self, shape=None, batch_size=None, dtype=None, name=None, batch_shape=None,
                 sparse=False, batch_input_shape=None, **kwargs):
        super().__init__(name=name, **kwargs)
        batch_shape = batch_shape if batch_shape is not None else batch_input_shape
        if sparse:
            raise ValueError(f"InputLayer '{self.name}': sparse inputs are not supported by graphc")
        if batch_shape is None:
            if shape is None:
                raise ValueError(f"InputLayer '{self.name}' needs a shape, e.g. shape=(784,)")
            batch_shape = (batch_size,) + normalize_shape(shape)
        self.batch_shape = normalize_shape(batch_shape)
        self.dtype = normalize_dtype(dtype or "float32")
        self.built = True
        tensor = KerasTensor(self.batch_shape, self.dtype, name=self.name)
        Node(self, None, tensor)
        self.output_tensor = tensor

    def get_config(self):
        return {"batch_shape": list(self.batch_shape), "dtype": self.dtype, "sparse": False, "name": self.name}


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None, sparse=None, tensor=None):
    """A symbolic input of ``shape`` per sample (the batch axis is added, as ``None`` unless batch_size)."""
    if shape is not None and not isinstance(shape, (tuple, list)):
        if isinstance(shape, int):
            shape = (shape,)
        else:
            raise TypeError(f"Input: shape must be a tuple of ints or None, got {shape!r}")
    layer = InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, name=name, batch_shape=batch_shape,
                       sparse=bool(sparse))
    return layer.output_tensor
