"""Spatial reshaping layers (channels_last): UpSampling1D/2D/3D, ZeroPadding1D/2D/3D, Cropping1D/2D/3D."""
from __future__ import annotations

from .. import ops
from ..serialization import register
from .base import Layer
from .convolutional import standardize_tuple
from .core import _check_channels_last
from .input_spec import InputSpec


def _per_axis_pairs(layer, value, n, name):
    """Keras's 2-D/3-D padding/cropping: an int, ``n`` ints (symmetric per axis) or ``n`` (before, after) pairs."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * n
    if not hasattr(value, "__len__") or len(value) != n:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': `{name}` must be an int, a tuple of {n} ints or "
                         f"a tuple of {n} tuples of 2 ints, received {name}={value!r}")
    return tuple(standardize_tuple(layer, v, 2, f"entry {i} of {name}", allow_zero=True) for i, v in enumerate(value))


class _UpSampling(Layer):
    """Repeats every cell ``size`` times along each spatial axis (nearest-neighbour upsampling)."""

    rank = None

    def __init__(self, size=2, data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(self, data_format)
        if not isinstance(interpolation, str) or interpolation.lower() != "nearest":
            raise ValueError(f"{type(self).__name__} '{self.name}': interpolation={interpolation!r} is not "
                             f"supported by graphc; only 'nearest' is")
        self.size = standardize_tuple(self, size, self.rank, "size")
        self.data_format = "channels_last"
        self.interpolation = "nearest"
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        for axis, factor in enumerate(self.size, start=1):
            if factor != 1:
                inputs = ops.repeat(inputs, factor, axis=axis)
        return inputs


@register("layers")
class UpSampling1D(_UpSampling):
    rank = 1

    def __init__(self, size=2, **kwargs):
        super().__init__(size=size, **kwargs)

    def get_config(self):
        return {**super().get_config(), "size": self.size[0]}  # an int, as Keras keeps it


@register("layers")
class UpSampling2D(_UpSampling):
    rank = 2

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(size=size, data_format=data_format, interpolation=interpolation, **kwargs)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format,
                "interpolation": self.interpolation}


@register("layers")
class UpSampling3D(_UpSampling):
    rank = 3

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(size=size, data_format=data_format, **kwargs)

    def get_config(self):
        return {**super().get_config(), "size": self.size, "data_format": self.data_format}


class _ZeroPadding(Layer):
    rank = None

    def _setup(self, padding, data_format):
        _check_channels_last(self, data_format)
        self.padding = padding
        self.data_format = "channels_last"
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        return ops.pad(inputs, ((0, 0), *self.padding, (0, 0)))


@register("layers")
class ZeroPadding1D(_ZeroPadding):
    """Zeros before and after the steps axis: ``padding`` is an int or (left, right)."""

    rank = 1

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._setup((standardize_tuple(self, padding, 2, "padding", allow_zero=True),), data_format)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding[0], "data_format": self.data_format}


@register("layers")
class ZeroPadding2D(_ZeroPadding):
    """``padding``: int, (sym_rows, sym_cols) or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(_per_axis_pairs(self, padding, 2, "padding"), data_format)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


@register("layers")
class ZeroPadding3D(_ZeroPadding):
    rank = 3

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(_per_axis_pairs(self, padding, 3, "padding"), data_format)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "data_format": self.data_format}


class _Cropping(Layer):
    rank = None

    def _setup(self, cropping, data_format):
        _check_channels_last(self, data_format)
        self.cropping = cropping
        self.data_format = "channels_last"
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        spatial = inputs.shape[1:-1]
        if any(n is not None and lo + hi >= n for n, (lo, hi) in zip(spatial, self.cropping)):
            raise ValueError(f"{type(self).__name__} '{self.name}': values in `cropping` must be smaller than the "
                             f"spatial dimensions they crop. Received: input shape {tuple(inputs.shape)}, "
                             f"cropping={self.cropping}")
        index = (slice(None),) + tuple(slice(lo, -hi if hi else None) for lo, hi in self.cropping) + (slice(None),)
        return inputs[index]


@register("layers")
class Cropping1D(_Cropping):
    """Removes cells at the start and end of the steps axis: ``cropping`` is an int or (start, end)."""

    rank = 1

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self._setup((standardize_tuple(self, cropping, 2, "cropping", allow_zero=True),), None)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping[0]}


@register("layers")
class Cropping2D(_Cropping):
    """``cropping``: int, (sym_rows, sym_cols) or ((top, bottom), (left, right))."""

    rank = 2

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(_per_axis_pairs(self, cropping, 2, "cropping"), data_format)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}


@register("layers")
class Cropping3D(_Cropping):
    rank = 3

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self._setup(_per_axis_pairs(self, cropping, 3, "cropping"), data_format)

    def get_config(self):
        return {**super().get_config(), "cropping": self.cropping, "data_format": self.data_format}

__all__ = ["UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
           "Cropping1D", "Cropping2D", "Cropping3D"]
