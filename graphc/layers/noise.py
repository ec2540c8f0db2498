"""Regularization layers that act only in training: SpatialDropout1D/2D/3D (whole channels dropped),
GaussianNoise and GaussianDropout. At inference each is the identity, as in Keras."""
from __future__ import annotations

import math

from .. import ops
from ..serialization import register
from .base import Layer
from .core import Dropout
from .input_spec import InputSpec


class _SpatialDropout(Dropout):
    """Dropout of whole channels: one keep/drop draw per sample and channel, shared over the spatial axes."""

    rank = None

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(rate, seed=seed, **kwargs)
        self.input_spec = InputSpec(ndim=self.rank + 2)

    def _noise_shape(self, inputs):
        return (inputs.shape[0],) + (1,) * self.rank + (inputs.shape[-1],)

    def get_config(self):  # (Keras's: no noise_shape, and no trainable, which its constructors do not take)
        config = super().get_config()
        config.pop("noise_shape"), config.pop("trainable")
        return config


@register("layers")
class SpatialDropout1D(_SpatialDropout):
    rank = 1


@register("layers")
class SpatialDropout2D(_SpatialDropout):
    rank = 2

    def __init__(self, rate, data_format=None, seed=None, **kwargs):
        from .core import _check_channels_last
        super().__init__(rate, seed=seed, **kwargs)
        _check_channels_last(self, data_format)

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


@register("layers")
class SpatialDropout3D(SpatialDropout2D):
    rank = 3


class _Noise(Layer):
    """A layer that draws standard normal noise of its input's shape while training (Box-Muller on two of
    graphc's counter-based uniform streams, seeded as Dropout is)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        if seed is None:  # (drawn now, so graphc.utils.set_random_seed makes training reproducible)
            from ..utils.random import global_rng
            self._drawn_seed = int(global_rng().integers(0, 2**31 - 1))

    def _standard_normal(self, inputs):
        from ..tracing import current_builder, emit, rng_counter
        seed = int(self.seed if self.seed is not None else self._drawn_seed)
        taken = sum(1 for op in current_builder().ops if op.kind == "random_uniform" and op.attrs["seed"] == seed)
        u1, u2 = (emit("random_uniform", inputs, rng_counter(), seed=seed, stream=taken + k) for k in (0, 1))
        return ops.sqrt(-2.0 * ops.log(1.0 - u1)) * ops.cos(2.0 * math.pi * u2)


@register("layers")
class GaussianNoise(_Noise):
    """Adds normal noise of standard deviation ``stddev`` while training."""

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0 <= stddev:
            raise ValueError(f"GaussianNoise '{self.name}': stddev must be >= 0, received stddev={stddev}")
        self.stddev = float(stddev)

    def call(self, inputs, training=None):
        if not training or self.stddev == 0.0:
            return inputs
        return inputs + self.stddev * self._standard_normal(inputs)

    def get_config(self):
        return {**super().get_config(), "stddev": self.stddev, "seed": self.seed}


@register("layers")
class GaussianDropout(_Noise):
    """Multiplies by normal noise of mean 1 and standard deviation ``sqrt(rate / (1 - rate))`` while training."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0 <= rate < 1:
            raise ValueError(f"GaussianDropout '{self.name}': rate must be in [0, 1), received rate={rate}")
        self.rate = float(rate)

    def call(self, inputs, training=None):
        if not training or self.rate == 0.0:
            return inputs
        return inputs * (1.0 + math.sqrt(self.rate / (1.0 - self.rate)) * self._standard_normal(inputs))

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}
