"""Core layers: Dense, Activation, Dropout, Flatten, Reshape, Permute, RepeatVector."""
from __future__ import annotations

import math

from .. import activations, initializers, ops, regularizers
from ..serialization import register, serialize_object
from .base import Layer
from .input_spec import InputSpec


def reject_unsupported(layer, **options):
    """Keras options graphc does not implement yet must fail loudly, not be ignored."""
    for key, value in options.items():
        if value is not None:
            raise ValueError(f"{type(layer).__name__} '{layer.name}': {key}={value!r} is not supported by graphc yet")


@register("layers")
class Dense(Layer):
    """``activation(inputs @ kernel + bias)`` on the last axis; kernel is (input_dim, units)."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        if not isinstance(units, int) or units <= 0:
            raise ValueError(f"Dense '{self.name}': units must be a positive integer, received units={units!r}")
        reject_unsupported(self, kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.units = units
        self.activation = activations.get(activation)
        self.use_bias = use_bias
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.input_spec = InputSpec(min_ndim=2)

    def build(self, input_shape):
        in_dim = input_shape[-1]
        if in_dim is None:
            raise ValueError(f"Dense '{self.name}': the last axis of its input must be known, "
                             f"received input shape {input_shape}")
        self.kernel = self.add_weight((in_dim, self.units), self.kernel_initializer, name="kernel",
                                      regularizer=self.kernel_regularizer)
        self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                    regularizer=self.bias_regularizer) if self.use_bias else None
        self.input_spec = InputSpec(min_ndim=2, axes={-1: in_dim})
        self.built = True

    def call(self, inputs):
        x = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return self.activation(x)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias, "kernel_initializer": serialize_object(self.kernel_initializer),
                "bias_initializer": serialize_object(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer), "kernel_constraint": None,
                "bias_constraint": None}


@register("layers")
class Activation(Layer):
    _supports_masking = True  # passes its input's mask on, as in Keras
    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.activation = activations.get(activation)

    def call(self, inputs):
        return self.activation(inputs)

    def get_config(self):
        return {**super().get_config(), "activation": activations.serialize(self.activation)}


@register("layers")
class Dropout(Layer):
    """Zeroes a fraction ``rate`` of inputs while training (scaling the rest); the identity at inference."""
    _supports_masking = True  # passes its input's mask on, as in Keras

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= rate <= 1:
            raise ValueError(f"Dropout '{self.name}': rate must be in [0, 1], received rate={rate}")
        self.rate, self.noise_shape, self.seed = float(rate), noise_shape, seed
        if seed is None and 0 < rate < 1:  # drawn now, as Keras's SeedGenerator: set_random_seed fixes it
            from ..utils.random import global_rng
            self._drawn_seed = int(global_rng().integers(0, 2**31 - 1))

    def call(self, inputs, training=None):
        """Training (as Keras on TensorFlow): keep where uniform(noise_shape) >= rate, scaled by
        1 / (1 - rate); rate 1 gives zeros, rate 0 the inputs. The uniforms are the op random_uniform on the
        step's rng_counter, with the layer's seed (or one drawn from graphc's global generator when the layer was
        made, so graphc.utils.set_random_seed makes training reproducible) and a stream number that tells apart
        repeated calls of a shared layer."""
        from ..tracing import current_builder, emit, rng_counter
        noise_shape = self._noise_shape(inputs)
        if not training or self.rate == 0.0:
            return emit("dropout", inputs, rate=self.rate, seed=self.seed, noise_shape=noise_shape)
        if self.rate == 1.0:
            return emit("broadcast_like", 0.0, inputs)
        if noise_shape is not None:
            ok = len(noise_shape) == len(inputs.shape) and all(
                n is None or n == 1 or n == d for n, d in zip(noise_shape, inputs.shape))
            if not ok:
                raise ValueError(f"Dropout '{self.name}': noise_shape {noise_shape} does not broadcast to the input "
                                 f"shape {tuple(inputs.shape)} (each entry must be None, 1 or the input's size)")
        return drop(inputs, self.rate, int(self.seed if self.seed is not None else self._drawn_seed), noise_shape)

    def _noise_shape(self, inputs):
        return None if self.noise_shape is None else tuple(self.noise_shape)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed}


@register("layers")
class Masking(Layer):
    """Marks the timesteps whose features all equal ``mask_value`` as padding: they become zeros, and the
    output carries a (batch, steps) mask that the recurrent layers, GlobalAveragePooling1D and the losses
    honour (they skip or leave out those steps), as in Keras."""

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def _keep(self, inputs, keepdims):
        return ops.any(ops.not_equal(inputs, self.mask_value), axis=-1, keepdims=keepdims)

    def call(self, inputs):
        if inputs.ndim < 2:
            raise ValueError(f"Masking '{self.name}' expects inputs of shape (batch, steps, ...features), received "
                             f"shape {tuple(inputs.shape)}")
        return inputs * ops.cast(self._keep(inputs, True), inputs.dtype)

    def compute_mask(self, inputs, previous_mask=None):
        return self._keep(inputs, False)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


def drop(inputs, rate, seed, noise_shape=None):
    """Training-time dropout: keep where uniform(noise_shape) >= rate, scaled by 1 / (1 - rate). The uniforms
    are the op random_uniform on the step's rng_counter with ``seed``, and a stream number that tells apart the
    draws made with the same seed in one trace (a shared layer called twice)."""
    from ..tracing import current_builder, emit, rng_counter
    stream = sum(1 for op in current_builder().ops if op.kind == "random_uniform" and op.attrs["seed"] == seed)
    noise = emit("random_uniform", inputs, rng_counter(), seed=seed, stream=stream, shape=noise_shape)
    return ops.where(ops.greater_equal(noise, rate), inputs * (1.0 / (1.0 - rate)), 0.0)


def _check_channels_last(layer, data_format):
    if data_format not in (None, "channels_last"):
        raise ValueError(f"{type(layer).__name__} '{layer.name}': graphc supports data_format='channels_last' "
                         f"only, received {data_format!r}")


@register("layers")
class Flatten(Layer):
    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(self, data_format)
        self.input_spec = InputSpec(min_ndim=1)

    def call(self, inputs):
        rest = inputs.shape[1:]
        if any(d is None for d in rest):
            raise ValueError(f"Flatten '{self.name}': all non-batch dimensions must be known, "
                             f"received input shape {inputs.shape}")
        return ops.reshape(inputs, (inputs.shape[0] if inputs.shape[0] is not None else -1, math.prod(rest)))

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last"}


@register("layers")
class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (one -1 allowed)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(target_shape)

    def call(self, inputs):
        rest = inputs.shape[1:]
        target = list(self.target_shape)
        if all(d is not None for d in rest):
            total, known = math.prod(rest), math.prod(d for d in target if d != -1)
            if -1 in target and known and total % known == 0:
                target[target.index(-1)] = total // known
            if -1 in target or math.prod(target) != total:
                raise ValueError(f"Reshape '{self.name}': cannot reshape an input of shape {inputs.shape} "
                                 f"({total} elements per sample) to target_shape {self.target_shape}")
        batch = inputs.shape[0]
        return ops.reshape(inputs, (batch if batch is not None else -1, *target))

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


@register("layers")
class Permute(Layer):
    """Permute the non-batch axes; ``dims`` counts from 1 (as in Keras)."""

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(f"Permute '{self.name}': dims must be a permutation of 1..{len(self.dims)}, "
                             f"received dims={self.dims}")
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)

    def call(self, inputs):
        return ops.transpose(inputs, (0, *self.dims))

    def get_config(self):
        return {**super().get_config(), "dims": list(self.dims)}


@register("layers")
class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features)."""

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, int) or n <= 0:
            raise ValueError(f"RepeatVector '{self.name}': n must be a positive integer, received n={n!r}")
        self.n = n
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        return ops.repeat(ops.expand_dims(inputs, 1), self.n, axis=1)

    def get_config(self):
        return {**super().get_config(), "n": self.n}
