"""Convolution layers (channels_last): Conv1D/2D/3D and Conv1D/2D/3DTranspose.

Weights are Keras's: kernel (*kernel_size, in_channels // groups, filters) for
convolutions, (*kernel_size, filters, in_channels) for transposed ones, then bias
(filters,). The bias is a separate add after the conv op so that fusion sees
conv + add + activation.
"""
from __future__ import annotations

import numbers

from .. import activations, initializers, ops, regularizers
from ..ir.ops.conv import conv_transpose_output_size, window_output_spatial
from ..serialization import register, serialize_object
from ..tracing import emit
from .base import Layer
from .core import _check_channels_last, reject_unsupported
from .input_spec import InputSpec


def standardize_tuple(layer, value, n, name, allow_zero=False):
    """An int or a sequence of ``n`` ints -> a tuple of ``n`` ints (> 0, or >= 0 with allow_zero)."""
    where = f"{type(layer).__name__} '{layer.name}'"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * n
    try:
        value = tuple(value)
    except TypeError:
        raise ValueError(f"{where}: `{name}` must be an int or a tuple of {n} integers, "
                         f"received {name}={value!r}") from None
    if len(value) != n or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value):
        raise ValueError(f"{where}: `{name}` must be an int or a tuple of {n} integers, received {name}={value!r}")
    value = tuple(int(v) for v in value)
    low = 0 if allow_zero else 1
    if any(v < low for v in value):
        raise ValueError(f"{where}: `{name}` must have values >= {low}, received {name}={value}")
    return value


def standardize_padding(layer, padding, allow_causal=False):
    allowed = ("valid", "same", "causal") if allow_causal else ("valid", "same")
    value = padding.lower() if isinstance(padding, str) else padding
    if value not in allowed:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': `padding` must be one of {allowed}, "
                         f"received padding={padding!r}")
    return value


def input_channels(layer, input_shape):
    """The (known) channel count of a convolution's input; the layer's input spec then checks it."""
    channels = input_shape[-1]
    if channels is None:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': the channel axis (last) of its input must be "
                         f"known, received input shape {tuple(input_shape)}")
    layer.input_spec = InputSpec(ndim=layer.rank + 2, axes={-1: channels})
    return channels


class _ConvBase(Layer):
    rank = None  # number of spatial axes, set by each subclass

    def _init_common(self, filters, kernel_size, strides, padding, data_format, dilation_rate, activation,
                     use_bias, kernel_initializer, bias_initializer, allow_causal, unsupported):
        reject_unsupported(self, **unsupported)
        _check_channels_last(self, data_format)
        if not isinstance(filters, int) or isinstance(filters, bool) or filters <= 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': `filters` must be a positive integer, "
                             f"received filters={filters!r}")
        self.filters = filters
        self.kernel_size = standardize_tuple(self, kernel_size, self.rank, "kernel_size")
        self.strides = standardize_tuple(self, strides, self.rank, "strides")
        self.dilation_rate = standardize_tuple(self, dilation_rate, self.rank, "dilation_rate")
        self.padding = standardize_padding(self, padding, allow_causal)
        self.data_format = "channels_last"
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(f"{type(self).__name__} '{self.name}': `strides > 1` not supported in conjunction "
                             f"with `dilation_rate > 1`. Received: strides={self.strides} and "
                             f"dilation_rate={self.dilation_rate}")
        # Exactly rank + 2 axes: the error then reads "expected ndim=4, found ndim=2" for Conv2D.
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _input_channels(self, input_shape):
        return input_channels(self, input_shape)

    def _add_weights(self, kernel_shape):
        self.kernel = self.add_weight(kernel_shape, self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight((self.filters,), self.bias_initializer, name="bias",
                                    regularizer=self.bias_regularizer) if self.use_bias else None
        self.built = True

    def _finish(self, x):
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "padding": self.padding, "data_format": self.data_format,
                "dilation_rate": self.dilation_rate, **self._extra_config(),
                "activation": activations.serialize(self.activation), "use_bias": self.use_bias,
                "kernel_initializer": serialize_object(self.kernel_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": None, "bias_constraint": None}


class BaseConv(_ConvBase):
    """``activation(conv(inputs, kernel) + bias)``; cross-correlation as in Keras (the kernel is not flipped)."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None, dilation_rate=1,
                 groups=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._init_common(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          kernel_initializer, bias_initializer, allow_causal=self.rank == 1, unsupported=dict(
                              kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint, lora_rank=lora_rank))
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        if not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"{type(self).__name__} '{self.name}': the number of groups must be a positive "
                             f"integer, received groups={groups!r}")
        if filters % groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': the number of filters must be evenly "
                             f"divisible by the number of groups. Received: groups={groups}, filters={filters}")
        self.groups = groups

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups:
            raise ValueError(f"{type(self).__name__} '{self.name}': the number of input channels must be evenly "
                             f"divisible by the number of groups. Received groups={self.groups}, but the input "
                             f"has {channels} channels (input shape {tuple(input_shape)})")
        kernel_shape = self.kernel_size + (channels // self.groups, self.filters)
        # An empty output raises ShapeError here, which the layer machinery prefixes with the layer's name.
        window_output_spatial(input_shape[1:-1], self.kernel_size, self.strides,
                              "same" if self.padding == "causal" else self.padding, self.dilation_rate,
                              what=f"kernel {kernel_shape}")
        self._add_weights(kernel_shape)

    def call(self, inputs):
        padding = self.padding
        if padding == "causal":  # left-pad so output t sees inputs <= t only
            left = self.dilation_rate[0] * (self.kernel_size[0] - 1)
            inputs, padding = ops.pad(inputs, ((0, 0), (left, 0), (0, 0))), "valid"
        x = emit("conv", inputs, self.kernel, strides=self.strides, padding=padding,
                 dilation=self.dilation_rate, groups=self.groups)
        return self._finish(x)

    def _extra_config(self):
        return {"groups": self.groups}


class BaseConvTranspose(_ConvBase):
    """Transposed convolution (the gradient of a convolution with respect to its input), as Keras/TF."""

    def __init__(self, filters, kernel_size, strides=1, padding="valid", output_padding=None, data_format=None,
                 dilation_rate=1, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._init_common(filters, kernel_size, strides, padding, data_format, dilation_rate, activation, use_bias,
                          kernel_initializer, bias_initializer, allow_causal=False, unsupported=dict(
                              kernel_constraint=kernel_constraint,
                              bias_constraint=bias_constraint))
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.output_padding = None
        if output_padding is not None:
            self.output_padding = standardize_tuple(self, output_padding, self.rank, "output_padding",
                                                    allow_zero=True)
            if any(p >= s for p, s in zip(self.output_padding, self.strides)):
                raise ValueError(f"{type(self).__name__} '{self.name}': `output_padding` must be < `strides`. "
                                 f"output_padding={self.output_padding}, strides={self.strides}")

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        pads = self.output_padding or (None,) * self.rank
        out = [conv_transpose_output_size(n, k, s, self.padding, p, d) for n, k, s, p, d in
               zip(input_shape[1:-1], self.kernel_size, self.strides, pads, self.dilation_rate)]
        if any(o is not None and o <= 0 for o in out):
            raise ValueError(f"{type(self).__name__} '{self.name}': input shape {tuple(input_shape)} gives an "
                             f"empty output of spatial size {tuple(out)}")
        self._add_weights(self.kernel_size + (self.filters, channels))

    def call(self, inputs):
        x = emit("conv_transpose", inputs, self.kernel, strides=self.strides, padding=self.padding,
                 output_padding=self.output_padding, dilation=self.dilation_rate)
        return self._finish(x)

    def _extra_config(self):
        return {"output_padding": self.output_padding}


def _ranked(base, name, rank, doc):
    cls = type(name, (base,), {"rank": rank, "__doc__": doc, "__module__": __name__})
    return register("layers")(cls)


Conv1D = _ranked(BaseConv, "Conv1D", 1, "1-D convolution over (batch, steps, channels); padding may be 'causal'.")
Conv2D = _ranked(BaseConv, "Conv2D", 2, "2-D convolution over (batch, rows, cols, channels).")
Conv3D = _ranked(BaseConv, "Conv3D", 3, "3-D convolution over (batch, d1, d2, d3, channels).")
Conv1DTranspose = _ranked(BaseConvTranspose, "Conv1DTranspose", 1, "Transposed 1-D convolution.")
Conv2DTranspose = _ranked(BaseConvTranspose, "Conv2DTranspose", 2, "Transposed 2-D convolution.")
Conv3DTranspose = _ranked(BaseConvTranspose, "Conv3DTranspose", 3, "Transposed 3-D convolution.")

# Keras's aliases.
Convolution1D, Convolution2D, Convolution3D = Conv1D, Conv2D, Conv3D
Convolution2DTranspose, Convolution3DTranspose = Conv2DTranspose, Conv3DTranspose
for _alias, _cls in (("Convolution1D", Conv1D), ("Convolution2D", Conv2D), ("Convolution3D", Conv3D),
                     ("Convolution2DTranspose", Conv2DTranspose), ("Convolution3DTranspose", Conv3DTranspose)):
    register("layers", _alias)(_cls)

__all__ = ["Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
           "Convolution1D", "Convolution2D", "Convolution3D", "Convolution2DTranspose", "Convolution3DTranspose"]
