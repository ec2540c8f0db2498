"""Functional-API graph records: symbolic tensors and the layer calls that made them."""
from __future__ import annotations

from ..ir import format_shape, normalize_dtype, normalize_shape
from ..tracing import TensorOperators


class KerasTensor(TensorOperators):
    """A symbolic tensor of the functional API: a shape (None for the batch), a dtype, a history."""

    __array_priority__ = 100

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = normalize_shape(shape)
        self.dtype = normalize_dtype(dtype)
        self.name = name
        self._history = None  # (layer, node_index, tensor_index)

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def node(self):
        layer, node_index, _ = self._history
        return layer._inbound_nodes[node_index]

    def __repr__(self):
        return f"<KerasTensor shape={format_shape(self.shape)}, dtype={self.dtype}, name={self.name}>"

    def __bool__(self):
        raise TypeError("A symbolic tensor has no truth value (it holds no data until the model runs).")

    def __getitem__(self, key):
        from .. import ops
        return ops.getitem(self, key)


def flatten(structure):
    """Tensors of a (nested) list/tuple/dict, in order (dicts by insertion order)."""
    if isinstance(structure, dict):
        return [t for v in structure.values() for t in flatten(v)]
    if isinstance(structure, (list, tuple)):
        return [t for v in structure for t in flatten(v)]
    return [structure]


def map_structure(fn, structure):
    if isinstance(structure, dict):
        return {k: map_structure(fn, v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return type(structure)(map_structure(fn, v) for v in structure)
    return fn(structure)


def pack_like(structure, flat):
    """Inverse of flatten: put the items of ``flat`` back into ``structure``'s shape."""
    it = iter(flat)
    return map_structure(lambda _: next(it), structure)


class Node:
    """One call of ``layer`` on symbolic inputs (node 0 of an InputLayer has no inputs)."""

    def __init__(self, layer, call_args=None, outputs=None, call_kwargs=None):
        self.layer = layer
        self.call_args = call_args if call_args is not None else []
        self.call_kwargs = call_kwargs or {}
        self.outputs = outputs
        self.input_tensors = flatten(self.call_args) if call_args is not None else []
        self.output_tensors = flatten(outputs)
        self.index = len(layer._inbound_nodes)
        layer._inbound_nodes.append(self)
        for i, t in enumerate(self.output_tensors):
            t._history = (layer, self.index, i)

    @property
    def is_input(self):
        return not self.input_tensors

    @property
    def parent_nodes(self):
        return [t.node for t in self.input_tensors]
