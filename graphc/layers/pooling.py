"""Pooling layers (channels_last): Max/AveragePooling1D/2D/3D and their global versions, with Keras's aliases."""
from __future__ import annotations

from .. import ops
from ..ir.ops.conv import window_output_spatial
from ..serialization import register
from ..tracing import emit
from .base import Layer
from .convolutional import standardize_padding, standardize_tuple
from .core import _check_channels_last
from .input_spec import InputSpec


class BasePooling(Layer):
    """A window of ``pool_size`` moved by ``strides`` (default: ``pool_size``) over the spatial axes."""

    rank = None
    mode = None  # IR op: "max_pool" | "avg_pool"

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(self, data_format)
        self.pool_size = standardize_tuple(self, pool_size, self.rank, "pool_size")
        self.strides = standardize_tuple(self, pool_size if strides is None else strides, self.rank, "strides")
        self._window_padding = standardize_padding(self, padding)
        self.padding = padding  # kept as given ('SAME' stays 'SAME'), as Keras's config does
        self.data_format = "channels_last"
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def build(self, input_shape):
        # Checked here so that a window larger than the input fails when the layer is first called.
        window_output_spatial(input_shape[1:-1], self.pool_size, self.strides, self._window_padding,
                              what="pool window")
        self.built = True

    def call(self, inputs):
        return emit(self.mode, inputs, pool_size=self.pool_size, strides=self.strides, padding=self._window_padding)

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size, "padding": self.padding,
                "strides": self.strides, "data_format": self.data_format}


class _AveragePooling(BasePooling):
    """Keras 3 gives average pooling no default pool_size."""

    mode = "avg_pool"

    def __init__(self, pool_size, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(pool_size, strides, padding, data_format, **kwargs)


class BaseGlobalPooling(Layer):
    """Max or mean over every spatial axis: (batch, *spatial, channels) -> (batch, channels)."""

    rank = None
    reduce = None  # "max" | "mean"

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(self, data_format)
        self.data_format = "channels_last"
        self.keepdims = keepdims
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def call(self, inputs):
        axes = tuple(range(1, self.rank + 1))
        reduce = ops.max if self.reduce == "max" else ops.mean
        return reduce(inputs, axis=axes, keepdims=self.keepdims)

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class _GlobalAveragePooling1D(BaseGlobalPooling):
    """The one global pooling that honours a mask (as in Keras): the mean over the unmasked steps."""

    def call(self, inputs, mask=None):
        if mask is None:
            return super().call(inputs)
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        total = ops.sum(ops.where(keep, inputs, 0.0), axis=1, keepdims=self.keepdims)
        return total / ops.sum(ops.cast(keep, inputs.dtype), axis=1, keepdims=self.keepdims)

    def compute_mask(self, inputs, previous_mask=None):
        return None  # (the steps are gone)


def _define(base, name, aliases, doc, **attrs):
    cls = type(name, (base,), {"__doc__": doc, "__module__": __name__, **attrs})
    register("layers")(cls)
    for alias in aliases:
        register("layers", alias)(cls)
    return cls


MaxPooling1D = _define(BasePooling, "MaxPooling1D", ["MaxPool1D"], "Max over windows of steps.",
                       rank=1, mode="max_pool")
MaxPooling2D = _define(BasePooling, "MaxPooling2D", ["MaxPool2D"], "Max over 2-D windows.", rank=2, mode="max_pool")
MaxPooling3D = _define(BasePooling, "MaxPooling3D", ["MaxPool3D"], "Max over 3-D windows.", rank=3, mode="max_pool")
AveragePooling1D = _define(_AveragePooling, "AveragePooling1D", ["AvgPool1D"],
                           "Mean over windows of steps; with padding='same' padded cells are not counted.", rank=1)
AveragePooling2D = _define(_AveragePooling, "AveragePooling2D", ["AvgPool2D"],
                           "Mean over 2-D windows; with padding='same' padded cells are not counted.", rank=2)
AveragePooling3D = _define(_AveragePooling, "AveragePooling3D", ["AvgPool3D"],
                           "Mean over 3-D windows; with padding='same' padded cells are not counted.", rank=3)
MaxPool1D, MaxPool2D, MaxPool3D = MaxPooling1D, MaxPooling2D, MaxPooling3D
AvgPool1D, AvgPool2D, AvgPool3D = AveragePooling1D, AveragePooling2D, AveragePooling3D

GlobalMaxPooling1D = _define(BaseGlobalPooling, "GlobalMaxPooling1D", ["GlobalMaxPool1D"],
                             "Max over the steps axis.", rank=1, reduce="max")
GlobalMaxPooling2D = _define(BaseGlobalPooling, "GlobalMaxPooling2D", ["GlobalMaxPool2D"],
                             "Max over both spatial axes.", rank=2, reduce="max")
GlobalMaxPooling3D = _define(BaseGlobalPooling, "GlobalMaxPooling3D", ["GlobalMaxPool3D"],
                             "Max over the three spatial axes.", rank=3, reduce="max")
GlobalAveragePooling1D = _define(_GlobalAveragePooling1D, "GlobalAveragePooling1D", ["GlobalAvgPool1D"],
                                 "Mean over the steps axis.", rank=1, reduce="mean")
GlobalAveragePooling2D = _define(BaseGlobalPooling, "GlobalAveragePooling2D", ["GlobalAvgPool2D"],
                                 "Mean over both spatial axes.", rank=2, reduce="mean")
GlobalAveragePooling3D = _define(BaseGlobalPooling, "GlobalAveragePooling3D", ["GlobalAvgPool3D"],
                                 "Mean over the three spatial axes.", rank=3, reduce="mean")
GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPool3D = GlobalMaxPooling1D, GlobalMaxPooling2D, GlobalMaxPooling3D
GlobalAvgPool1D, GlobalAvgPool2D, GlobalAvgPool3D = (GlobalAveragePooling1D, GlobalAveragePooling2D,
                                                     GlobalAveragePooling3D)

__all__ = ["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D",
           "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
           "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
           "GlobalMaxPool1D", "GlobalMaxPool2D", "GlobalMaxPool3D",
           "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
           "GlobalAvgPool1D", "GlobalAvgPool2D", "GlobalAvgPool3D"]
