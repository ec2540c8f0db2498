"""BatchNormalization and LayerNormalization (Keras 3 arguments, weights and arithmetic)."""
from __future__ import annotations

import warnings

import numpy as np

from .. import initializers, ops
from ..serialization import register, serialize_object
from ..tracing import emit
from .base import Layer
from .core import reject_unsupported
from .input_spec import InputSpec


def _as_float(layer, inputs):
    return inputs if inputs.dtype == layer.dtype else ops.cast(inputs, layer.dtype)


def _check_axis(layer, axis, input_shape):
    rank = len(input_shape)
    if not isinstance(axis, int) or isinstance(axis, bool) or not -rank <= axis < rank:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': axis {axis!r} is out of range for an input of "
                         f"shape {tuple(input_shape)}")
    if input_shape[axis] is None:
        raise ValueError(f"{type(layer).__name__} '{layer.name}': axis {axis} of the input must have a known size, "
                         f"received input shape {tuple(input_shape)}")
    return input_shape[axis]


@register("layers")
class BatchNormalization(Layer):
    """Normalizes each channel of ``axis``: with the batch's statistics when ``training`` (and trainable),
    else with the moving statistics. Weights: gamma, beta (trainable), moving_mean, moving_variance."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 synchronized=False, renorm=False, renorm_clipping=None, renorm_momentum=0.99, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            raise ValueError(f"BatchNormalization '{self.name}': axis must be an integer in Keras 3, "
                             f"received axis={axis!r}")
        reject_unsupported(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                           beta_constraint=beta_constraint, gamma_constraint=gamma_constraint,
                           synchronized=synchronized or None, renorm=renorm or None,
                           renorm_clipping=renorm_clipping)
        self.renorm_momentum = float(renorm_momentum)
        self.axis, self.momentum, self.epsilon = int(axis), float(momentum), float(epsilon)
        self.center, self.scale, self.synchronized = bool(center), bool(scale), False
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.gamma = self.beta = None

    def build(self, input_shape):
        channels = _check_axis(self, self.axis, input_shape)
        shape = (channels,)
        if self.scale:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma")
        if self.center:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta")
        self.moving_mean = self.add_weight(shape, self.moving_mean_initializer, trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape, self.moving_variance_initializer, trainable=False,
                                               name="moving_variance")
        self.input_spec = InputSpec(ndim=len(input_shape), axes={self.axis: channels})
        self.built = True

    def call(self, inputs, training=None):
        x = _as_float(self, inputs)
        axis = self.axis % len(x.shape)
        channels = x.shape[axis]
        gamma = self.gamma if self.scale else np.ones(channels, self.dtype)
        beta = self.beta if self.center else np.zeros(channels, self.dtype)
        if training and self.trainable:
            from ..tracing import add_update, updated_value
            # Normalize with the batch's mean and biased variance, and record Keras 3's moving-average updates:
            # moving = moving * momentum + batch_statistic * (1 - momentum).
            y, mean, variance = emit("batch_norm_train", x, gamma, beta, axis=axis, epsilon=self.epsilon)
            for moving, batch_stat in ((self.moving_mean, mean), (self.moving_variance, variance)):
                add_update(moving, ops.add(ops.multiply(updated_value(moving), self.momentum),
                                           ops.multiply(batch_stat, 1.0 - self.momentum)))
            return y
        return emit("batch_norm", x, self.moving_mean, self.moving_variance, gamma, beta,
                    axis=axis, epsilon=self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": serialize_object(self.beta_initializer),
                "gamma_initializer": serialize_object(self.gamma_initializer),
                "moving_mean_initializer": serialize_object(self.moving_mean_initializer),
                "moving_variance_initializer": serialize_object(self.moving_variance_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": False, "renorm": False, "renorm_clipping": None,
                "renorm_momentum": self.renorm_momentum}


@register("layers")
class LayerNormalization(Layer):
    """Normalizes each sample over ``axis`` (an int or a list); gamma and beta span those axes."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False,
                 beta_initializer="zeros", gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)):
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, int) and not isinstance(axis, bool):
            self.axis = axis
        else:
            raise TypeError(f"LayerNormalization '{self.name}': expected an int or a list/tuple of ints for "
                            f"the argument 'axis', but received: {axis!r}")
        if rms_scaling:
            warnings.warn("You passed `rms_scaling=True`, which is deprecated. This argument incorrectly scales "
                          "the input by the variance, not the root mean square.", stacklevel=2)
        reject_unsupported(self, beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                           beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.epsilon, self.center, self.scale = float(epsilon), bool(center), bool(scale)
        self.rms_scaling = bool(rms_scaling)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.gamma = self.beta = None

    def build(self, input_shape):
        # As Keras: an int axis becomes a one-element list once built (and so in get_config).
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        shape = tuple(_check_axis(self, a, input_shape) for a in axes)
        if len({a % len(input_shape) for a in axes}) != len(axes):
            raise ValueError(f"LayerNormalization '{self.name}': repeated axes in axis={self.axis}")
        self.axis = axes
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(shape, self.gamma_initializer, name="gamma")
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(shape, self.beta_initializer, name="beta")
        self.built = True

    def _broadcast(self, weight, x_shape, axes, neutral):
        """gamma/beta laid out to broadcast against the input (Keras reshapes them the same way)."""
        if weight is None:
            return np.full((), neutral, self.dtype)
        if len(weight.shape) == len(x_shape) or axes == [len(x_shape) - 1]:
            return weight
        return ops.reshape(weight, [x_shape[d] if d in axes else 1 for d in range(len(x_shape))])

    def call(self, inputs):
        x = _as_float(self, inputs)
        axes = sorted(a % len(x.shape) for a in self.axis)
        gamma = self._broadcast(self.gamma, x.shape, axes, 1.0)
        beta = self._broadcast(self.beta, x.shape, axes, 0.0)
        return emit("layer_norm", x, gamma, beta, axes=tuple(axes), epsilon=self.epsilon,
                    rms_scaling=self.rms_scaling)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling,
                "beta_initializer": serialize_object(self.beta_initializer),
                "gamma_initializer": serialize_object(self.gamma_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None}
