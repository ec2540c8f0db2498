"""Depthwise and separable convolutions (Keras's DepthwiseConv1D/2D, SeparableConv1D/2D).

A depthwise convolution filters each input channel on its own with ``depth_multiplier`` kernels: it is the
grouped convolution with one group per channel, whose kernel (*k, 1, C * M) is Keras's depthwise kernel
(*k, C, M) read in the same memory order (output channel c * M + m is channel c's m-th filter). A separable
convolution follows it with a 1x1 (pointwise) convolution to ``filters`` channels.
"""
from __future__ import annotations

from .. import activations, initializers, ops, regularizers
from ..ir.ops.conv import window_output_spatial
from ..serialization import register, serialize_object
from ..tracing import emit
from .base import Layer
from .convolutional import input_channels, standardize_padding, standardize_tuple
from .core import _check_channels_last, reject_unsupported
from .input_spec import InputSpec


class _Depthwise(Layer):
    rank = None
    pointwise = False  # SeparableConv: a 1x1 convolution to `filters` channels after the depthwise one

    def __init__(self, kernel_size, strides=1, padding="valid", depth_multiplier=1, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 bias_initializer="zeros", depthwise_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, depthwise_constraint=None, bias_constraint=None, filters=None,
                 pointwise_initializer="glorot_uniform", pointwise_regularizer=None, pointwise_constraint=None,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        reject_unsupported(self, depthwise_constraint=depthwise_constraint,
                           bias_constraint=bias_constraint, pointwise_constraint=pointwise_constraint)
        _check_channels_last(self, data_format)
        kind = type(self).__name__
        if isinstance(depth_multiplier, bool) or not isinstance(depth_multiplier, int) or depth_multiplier <= 0:
            raise ValueError(f"{kind} '{self.name}': depth_multiplier must be a positive integer, received "
                             f"{depth_multiplier!r}")
        if self.pointwise and (isinstance(filters, bool) or not isinstance(filters, int) or filters <= 0):
            raise ValueError(f"{kind} '{self.name}': `filters` must be a positive integer, received filters={filters!r}")
        self.filters = filters
        self.kernel_size = standardize_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = standardize_tuple(self, strides, self.rank, "strides")
        self.dilation_rate = standardize_tuple(self, dilation_rate, self.rank, "dilation_rate")
        self.padding = standardize_padding(self, padding)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{kind} '{self.name}': `strides > 1` not supported in conjunction with "
                             f"`dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        self.depth_multiplier = depth_multiplier
        self.activation = activations.get(activation)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def build(self, input_shape):
        channels = input_channels(self, input_shape)
        window_output_spatial(input_shape[1:-1], self.kernel_size, self.strides, self.padding, self.dilation_rate,
                              what=f"kernel {self.kernel_size}")
        m = self.depth_multiplier
        self.depthwise_kernel = self.add_weight(self.kernel_size + (channels, m), self.depthwise_initializer,
                                                name="depthwise_kernel", regularizer=self.depthwise_regularizer)
        out = channels * m
        if self.pointwise:
            self.pointwise_kernel = self.add_weight((1,) * self.rank + (out, self.filters), self.pointwise_initializer,
                                                    name="pointwise_kernel", regularizer=self.pointwise_regularizer)
            out = self.filters
        self.bias = self.add_weight((out,), self.bias_initializer, name="bias",
                                    regularizer=self.bias_regularizer) if self.use_bias else None
        self.built = True

    def call(self, inputs):
        channels = inputs.shape[-1]
        kernel = ops.reshape(self.depthwise_kernel, self.kernel_size + (1, channels * self.depth_multiplier))
        x = emit("conv", inputs, kernel, strides=self.strides, padding=self.padding, dilation=self.dilation_rate,
                 groups=channels)
        if self.pointwise:
            x = emit("conv", x, self.pointwise_kernel, strides=(1,) * self.rank, padding="valid",
                     dilation=(1,) * self.rank, groups=1)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        config = {**super().get_config(), "kernel_size": self.kernel_size, "strides": self.strides,
                  "padding": self.padding, "depth_multiplier": self.depth_multiplier,
                  "data_format": "channels_last", "dilation_rate": self.dilation_rate,
                  "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                  "depthwise_initializer": serialize_object(self.depthwise_initializer),
                  "bias_initializer": serialize_object(self.bias_initializer),
                  "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                  "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                  "activity_regularizer": regularizers.serialize(self.activity_regularizer), "depthwise_constraint": None,
                  "bias_constraint": None}
        if self.pointwise:
            config.update({"filters": self.filters,
                           "pointwise_initializer": serialize_object(self.pointwise_initializer),
                           "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                           "pointwise_constraint": None})
        return config


@register("layers")
class DepthwiseConv1D(_Depthwise):
    """Each channel of (batch, steps, channels) filtered on its own by ``depth_multiplier`` kernels."""
    rank = 1


@register("layers")
class DepthwiseConv2D(_Depthwise):
    """Each channel of (batch, height, width, channels) filtered on its own by ``depth_multiplier`` kernels."""
    rank = 2


class _Separable(_Depthwise):
    pointwise = True

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 depth_multiplier=1, activation=None, use_bias=True, depthwise_initializer="glorot_uniform",
                 pointwise_initializer="glorot_uniform", bias_initializer="zeros", depthwise_regularizer=None,
                 pointwise_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 depthwise_constraint=None, pointwise_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(kernel_size, strides, padding, depth_multiplier, data_format, dilation_rate, activation,
                         use_bias, depthwise_initializer, bias_initializer, depthwise_regularizer, bias_regularizer,
                         activity_regularizer, depthwise_constraint, bias_constraint, filters=filters,
                         pointwise_initializer=pointwise_initializer, pointwise_regularizer=pointwise_regularizer,
                         pointwise_constraint=pointwise_constraint, **kwargs)


@register("layers")
class SeparableConv1D(_Separable):
    """A depthwise convolution, then a 1-wide convolution to ``filters`` channels."""
    rank = 1


@register("layers")
class SeparableConv2D(_Separable):
    """A depthwise convolution, then a 1x1 convolution to ``filters`` channels."""
    rank = 2


SeparableConvolution1D, SeparableConvolution2D = SeparableConv1D, SeparableConv2D
