"""Activation layers (Keras 3 names, arguments and defaults): ReLU, LeakyReLU, ELU, PReLU, Softmax, and the
elementwise Identity and Rescaling."""
from __future__ import annotations

from .. import activations, initializers, ops
from ..serialization import register
from .base import Layer
from .core import reject_unsupported


@register("layers")
class ReLU(Layer):
    """``max(x, 0)``, or with options: ``negative_slope * (x - threshold)`` below ``threshold``, capped at
    ``max_value``."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        if max_value is not None and max_value < 0:
            raise ValueError(f"ReLU '{self.name}': max_value must be >= 0, received max_value={max_value}")
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"ReLU '{self.name}': negative_slope must be >= 0, received {negative_slope}")
        self.max_value = None if max_value is None else float(max_value)
        self.negative_slope, self.threshold = float(negative_slope), float(threshold)

    def call(self, inputs):
        return activations.relu(inputs, self.negative_slope, self.max_value, self.threshold)

    def get_config(self):
        return {**super().get_config(), "max_value": self.max_value, "negative_slope": self.negative_slope,
                "threshold": self.threshold}


@register("layers")
class LeakyReLU(Layer):
    """``x`` where positive, ``negative_slope * x`` elsewhere (Keras 3's default slope is 0.3)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:  # (Keras 2's name, still accepted by Keras 3)
            negative_slope = kwargs.pop("alpha")
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(f"LeakyReLU '{self.name}': negative_slope must be >= 0, received {negative_slope}")
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return ops.leaky_relu(inputs, self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@register("layers")
class ELU(Layer):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = float(alpha)

    def call(self, inputs):
        return ops.elu(inputs, self.alpha)

    def get_config(self):
        return {**super().get_config(), "alpha": self.alpha}


@register("layers")
class Softmax(Layer):
    """Softmax along ``axis`` (an int, or a list of axes: the softmax over all of them)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        self.axis = axis

    def call(self, inputs):
        if isinstance(self.axis, (list, tuple)):  # exp(x - logsumexp over the axes)
            shifted = inputs - ops.max(inputs, axis=self.axis, keepdims=True)
            e = ops.exp(shifted)
            return e / ops.sum(e, axis=self.axis, keepdims=True)
        return ops.softmax(inputs, axis=self.axis)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}


@register("layers")
class PReLU(Layer):
    """``x`` where positive, ``alpha * x`` elsewhere, with ``alpha`` a trained weight per input element
    (shared along ``shared_axes``, 1-based as in Keras: ``shared_axes=[1, 2]`` shares it over height and width)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, alpha_initializer="Zeros", alpha_regularizer=None, alpha_constraint=None, shared_axes=None,
                 **kwargs):
        super().__init__(**kwargs)
        reject_unsupported(self, alpha_regularizer=alpha_regularizer, alpha_constraint=alpha_constraint)
        self.alpha_initializer = initializers.get(alpha_initializer)
        self.shared_axes = None if shared_axes is None else \
            [int(a) for a in (shared_axes if isinstance(shared_axes, (list, tuple)) else [shared_axes])]

    def build(self, input_shape):
        shape = list(input_shape[1:])
        for axis in self.shared_axes or []:
            if not 1 <= axis < len(input_shape):
                raise ValueError(f"PReLU '{self.name}': shared axis {axis} is not an axis of the input (1 to "
                                 f"{len(input_shape) - 1}); received input shape {input_shape}")
            shape[axis - 1] = 1
        if None in shape:
            raise ValueError(f"PReLU '{self.name}': the axes of unknown size must be shared (shared_axes); "
                             f"received input shape {input_shape}")
        self.alpha = self.add_weight(shape=tuple(shape), initializer=self.alpha_initializer, name="alpha")
        self.built = True

    def call(self, inputs):
        return ops.relu(inputs) - self.alpha * ops.relu(-inputs)

    def get_config(self):
        return {**super().get_config(), "alpha_initializer": initializers.serialize(self.alpha_initializer),
                "alpha_regularizer": None, "alpha_constraint": None, "shared_axes": self.shared_axes}


@register("layers")
class Identity(Layer):
    """Returns its input unchanged (a placeholder in a model's structure)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def call(self, inputs):
        return inputs


@register("layers")
class Rescaling(Layer):
    """``inputs * scale + offset`` (e.g. ``Rescaling(1 / 255)`` for pixel values)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale, self.offset = scale, offset

    def call(self, inputs):
        return ops.cast(inputs, self.dtype) * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
