"""Merge layers (Add, Subtract, Multiply, Average, Maximum, Minimum, Concatenate, Dot) and their functions."""
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

    def compute_mask(self, inputs, previous_mask=None):
        """As Keras's elementwise merges: a step is kept where any input keeps it, when every input has a
        mask; else no mask."""
        masks = list(previous_mask) if isinstance(previous_mask, (list, tuple)) else []
        if not masks or any(m is None for m in masks):
            return None
        return reduce(ops.logical_or, masks)


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

    def compute_mask(self, inputs, previous_mask=None):
        """As Keras: the inputs' masks (all-true for an unmasked input) joined like the inputs, a step kept where
        any of its joined entries is."""
        masks = list(previous_mask) if isinstance(previous_mask, (list, tuple)) else []
        if not masks or all(m is None for m in masks):
            return None
        full = []
        for x, m in zip(inputs, masks):
            if m is None:
                m = ops.greater(ops.abs(x), -1.0)  # (all true, of x's shape)
            elif len(m.shape) < len(x.shape):
                m = ops.logical_or(ops.expand_dims(m, -1), ops.less(ops.abs(x), -1.0))  # (broadcast to x's shape)
            full.append(ops.cast(m, "float32"))
        return ops.any(ops.concatenate(full, axis=self.axis), axis=-1)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register("layers")
class Dot(Merge):
    """Dot product of two batches of tensors along ``axes`` (an int for both, or a pair), as Keras's batch dot:
    (b, n) . (b, n) -> (b, 1); (b, n, d) . (b, m, d) with axes=2 -> (b, n, m). ``normalize``: L2-normalize both
    along those axes first, which gives the cosine similarity."""

    min_inputs = max_inputs = 2

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = tuple(axes) if isinstance(axes, (list, tuple)) else (axes, axes)
        if len(pair) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) for a in pair):
            raise ValueError(f"Dot '{self.name}': axes must be an int or a pair of ints, received axes={axes!r}")
        self.axes, self.normalize = axes, bool(normalize)

    def _pair(self, shapes):
        out = []
        for axis, shape in zip(tuple(self.axes) if isinstance(self.axes, (list, tuple)) else (self.axes,) * 2,
                               shapes):
            axis %= len(shape)
            if axis == 0:
                raise ValueError(f"Dot '{self.name}': cannot take the dot product along the batch axis")
            out.append(axis)
        return out

    def build(self, input_shape):
        self._check_inputs(input_shape)
        shapes = [tuple(s) for s in input_shape]
        if any(not 2 <= len(s) <= 3 for s in shapes):
            raise ValueError(f"Dot '{self.name}' supports inputs of rank 2 or 3 (batch included), received "
                             f"shapes {', '.join(format_shape(s) for s in shapes)}")
        a1, a2 = self._pair(shapes)
        if None not in (shapes[0][a1], shapes[1][a2]) and shapes[0][a1] != shapes[1][a2]:
            raise ValueError(f"Dot '{self.name}': dimension incompatibility {shapes[0][a1]} != {shapes[1][a2]} "
                             f"along axes {[a1, a2]}; received shapes {', '.join(format_shape(s) for s in shapes)}")
        self.built = True

    def _merge(self, xs):
        x, y = xs
        a1, a2 = self._pair([x.shape, y.shape])
        if self.normalize:
            x, y = (t * ops.rsqrt(ops.maximum(ops.sum(ops.square(t), axis=a, keepdims=True), 1e-12))
                    for t, a in ((x, a1), (y, a2)))
        if len(x.shape) == 2 and len(y.shape) == 2:
            return ops.sum(x * y, axis=1, keepdims=True)
        # contracted axis last in x, first (after the batch) in y: a batched matmul
        x = x if a1 == len(x.shape) - 1 else ops.transpose(x, (0, 2, 1))
        y = ops.expand_dims(y, -1) if len(y.shape) == 2 else y if a2 == 1 else ops.transpose(y, (0, 2, 1))
        x = ops.expand_dims(x, 1) if len(x.shape) == 2 else x
        out = ops.matmul(x, y)
        if len(xs[0].shape) == 2:
            out = ops.squeeze(out, 1)
        return ops.squeeze(out, -1) if len(xs[1].shape) == 2 else out

    def compute_mask(self, inputs, previous_mask=None):
        return None  # (as Keras: the product has no steps of the inputs)

    def get_config(self):
        return {**super().get_config(), "axes": self.axes, "normalize": self.normalize}


def dot(inputs, axes=-1, normalize=False, **kwargs):
    return Dot(axes=axes, normalize=normalize, **kwargs)(inputs)


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
