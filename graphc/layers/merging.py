"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate) and their functions."""
from __future__ import annotations

from functools import reduce

from .. import ops
from ..ir import format_shape
from ..serialization import register
from .base import Layer


class Merge(Layer):
    """Combines a list of at least two tensors elementwise (NumPy broadcasting on size-1 axes)."""

    min_inputs = 2
    max_inputs = None

    def _check_inputs(self, inputs):
        """``inputs``: the list of tensors, or in build() the list of their shapes."""
        if not isinstance(inputs, (list, tuple)) or not inputs or isinstance(inputs[0], (int, type(None))):
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) must be called on a list of "
                             f"tensors, received {type(inputs).__name__}")
        n = len(inputs)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            want = f"exactly {self.max_inputs}" if self.max_inputs == self.min_inputs else f"at least {self.min_inputs}"
            raise ValueError(f"Layer '{self.name}' ({type(self).__name__}) should be called on {want} inputs, "
                             f"received {n} input(s)")

    def build(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        for s in shapes[1:]:
            if len(s) == len(shapes[0]) and any(a is not None and b is not None and a != b and 1 not in (a, b)
                                                for a, b in zip(s, shapes[0])):
                raise ValueError(f"Layer '{self.name}' ({type(self).__name__}): inputs have incompatible shapes. "
                                 f"Received shapes {', '.join(format_shape(x) for x in shapes)}")
        self.built = True

    def call(self, inputs):
        self._check_inputs(inputs)
        return self._merge(list(inputs))


def _elementwise(name, fn, doc):
    cls = type(name, (Merge,), {"_merge": lambda self, xs: fn(xs), "__doc__": doc})
    return register("layers")(cls)


Add = _elementwise("Add", lambda xs: reduce(ops.add, xs), "Sum of the inputs.")
Multiply = _elementwise("Multiply", lambda xs: reduce(ops.multiply, xs), "Product of the inputs.")
Maximum = _elementwise("Maximum", lambda xs: reduce(ops.maximum, xs), "Elementwise maximum of the inputs.")
Minimum = _elementwise("Minimum", lambda xs: reduce(ops.minimum, xs), "Elementwise minimum of the inputs.")
Average = _elementwise("Average", lambda xs: ops.multiply(reduce(ops.add, xs), 1.0 / len(xs)),
                       "Mean of the inputs.")


@register("layers")
class Subtract(Merge):
    """inputs[0] - inputs[1]."""

    min_inputs = max_inputs = 2

    def _merge(self, xs):
        return ops.subtract(xs[0], xs[1])


@register("layers")
class Concatenate(Merge):
    """Joins the inputs along ``axis``; every other axis must match."""

    min_inputs = 1

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        rank = len(shapes[0])
        ax = self.axis % rank if -rank <= self.axis < rank else None
        if ax is None or any(len(s) != rank for s in shapes) or any(
                i != ax and a is not None and b is not None and a != b
                for s in shapes[1:] for i, (a, b) in enumerate(zip(s, shapes[0]))):
            raise ValueError(f"Layer '{self.name}' (Concatenate) requires inputs with matching shapes except "
                             f"for the concatenation axis (axis={self.axis}). Received: input_shape="
                             f"[{', '.join(format_shape(s) for s in shapes)}]")
        self.built = True

    def _merge(self, xs):
        return ops.concatenate(xs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


def add(inputs, **kwargs):
    return Add(**kwargs)(inputs)


def subtract(inputs, **kwargs):
    return Subtract(**kwargs)(inputs)


def multiply(inputs, **kwargs):
    return Multiply(**kwargs)(inputs)


def average(inputs, **kwargs):
    return Average(**kwargs)(inputs)


def maximum(inputs, **kwargs):
    return Maximum(**kwargs)(inputs)


def minimum(inputs, **kwargs):
    return Minimum(**kwargs)(inputs)


def concatenate(inputs, axis=-1, **kwargs):
    return Concatenate(axis=axis, **kwargs)(inputs)
