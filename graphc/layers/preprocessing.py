"""Normalization (keras.layers.Normalization): standardizes features with a mean and variance given, or
computed from data by ``adapt``."""
from __future__ import annotations

import numpy as np

from .. import ops
from ..serialization import register
from .base import Layer

EPSILON = 1e-7  # Keras's backend.epsilon(): the smallest standard deviation divided by


@register("layers")
class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per position of the kept ``axis`` (``invert``: the reverse).

    ``mean``/``variance``: the statistics (scalars or arrays broadcast to the kept axes); else call
    ``adapt(data)``, which computes them over every other axis of ``data`` (a NumPy array)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        self.axis = () if axis is None else (axis,) if isinstance(axis, int) else tuple(axis)
        if (mean is None) != (variance is None):
            raise ValueError(f"Normalization '{self.name}': when setting values directly, both `mean` and "
                             f"`variance` must be set. Received: mean={mean} and variance={variance}")
        if mean is not None and np.shape(mean) != np.shape(variance):
            raise ValueError(f"Normalization '{self.name}': `mean` and `variance` must have the same shape. "
                             f"Received mean shape {np.shape(mean)} and variance shape {np.shape(variance)}")
        self.input_mean, self.input_variance, self.invert = mean, variance, bool(invert)

    def build(self, input_shape):
        ndim = len(input_shape)
        if any(not -ndim <= a < ndim for a in self.axis):
            raise ValueError(f"Normalization '{self.name}': all `axis` values must be in the range [-ndim, ndim). "
                             f"Received inputs with ndim={ndim}, while axis={self.axis}")
        self._keep = tuple(sorted(a % ndim for a in self.axis))
        if any(input_shape[a] is None for a in self._keep):
            raise ValueError(f"Normalization '{self.name}': the kept axes {self._keep} must have a known size; "
                             f"received input shape {tuple(input_shape)}")
        self._broadcast = tuple(input_shape[a] if a in self._keep else 1 for a in range(ndim))
        stats_shape = tuple(input_shape[a] for a in self._keep)
        if self.input_mean is None:
            self.adapt_mean = self.add_weight(stats_shape, "zeros", trainable=False, name="mean")
            self.adapt_variance = self.add_weight(stats_shape, "ones", trainable=False, name="variance")
            self.count = self.add_weight((), "zeros", dtype="int64", trainable=False, name="count")
        self.built = True

    def _statistics(self):
        if self.input_mean is not None:  # constants: the given values aligned to the kept axes from the right
            shape = [1] * len(self._broadcast)
            for i in range(1, np.ndim(self.input_mean) + 1):
                shape[self._keep[-i]] = np.shape(self.input_mean)[-i]
            return [np.broadcast_to(np.reshape(np.asarray(v, "float32"), shape), self._broadcast).copy()
                    for v in (self.input_mean, self.input_variance)]
        return [ops.reshape(v, self._broadcast) for v in (self.adapt_mean, self.adapt_variance)]

    def call(self, inputs):
        mean, variance = self._statistics()
        std = ops.maximum(ops.sqrt(variance), EPSILON)
        return mean + inputs * std if self.invert else (inputs - mean) / std

    def adapt(self, data):
        """Sets the mean and variance to those of ``data`` over every axis but the kept ones."""
        data = np.asarray(data, dtype=np.float64)
        if data.ndim == 0:
            raise ValueError(f"Normalization '{self.name}': adapt needs a batch of data, received a scalar")
        if self.input_mean is not None:
            raise ValueError(f"Normalization '{self.name}' was given its mean and variance; it cannot adapt")
        if not self.built:
            self.build((None,) + data.shape[1:])
        reduce = tuple(a for a in range(data.ndim) if a not in self._keep)
        self.adapt_mean.assign(data.mean(axis=reduce).astype("float32"))
        self.adapt_variance.assign(data.var(axis=reduce).astype("float32"))
        self.count.assign(np.int64(np.prod([data.shape[a] for a in reduce])))

    def get_config(self):
        return {**super().get_config(), "axis": list(self.axis), "invert": self.invert,
                "mean": np.array(self.input_mean).tolist(), "variance": np.array(self.input_variance).tolist()}
