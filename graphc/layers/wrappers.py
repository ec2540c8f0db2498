"""TimeDistributed: apply a layer (or a whole model) to every timestep of (batch, time, ...) inputs."""
from __future__ import annotations

from .. import ops
from ..serialization import get_from_registry, register, registered, serialize_object
from ..tracing import Tensor
from .base import Layer
from .input_spec import InputSpec
from .node import KerasTensor


@register("layers")
class TimeDistributed(Layer):
    """(N, T, ...) -> (N, T, ...'): the wrapped layer sees (N, ...) per timestep and shares its weights
    across timesteps. Its weights (and parameter count) are those of the wrapped layer."""

    def __init__(self, layer, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, Layer):
            raise ValueError(f"TimeDistributed '{self.name}': please initialize it with a graphc layer or model "
                             f"instance. Received: {layer!r}")
        self.layer = layer
        self.input_spec = InputSpec(min_ndim=3)

    def build(self, input_shape):
        if not isinstance(input_shape, tuple) or len(input_shape) < 3:
            raise ValueError(f"TimeDistributed '{self.name}' should be called on an input with at least 3 "
                             f"dimensions (batch, time, ...), received input shape {input_shape}")
        if input_shape[1] is None:
            raise ValueError(f"TimeDistributed '{self.name}': the time axis (axis 1) must have a known size "
                             f"(it is folded into the batch), received input shape {input_shape}")
        if not self.layer.built:
            self.layer._maybe_build(KerasTensor((input_shape[0],) + input_shape[2:], self.dtype))
        self.built = True

    def call(self, inputs, training=None):
        steps = inputs.shape[1]
        if training and _uses_batch_statistics(self.layer):
            # Keras 3 runs the layer once per timestep: batch statistics are per timestep.
            return ops.stack([self._one(inputs[:, t], training) for t in range(steps)], axis=1)
        # Fold time into the batch, run the layer once, unfold: (N, T, ...) -> (N*T, ...) -> (N, T, ...').
        out = self._one(ops.reshape(inputs, (-1,) + tuple(inputs.shape[2:])), training)
        return ops.reshape(out, (-1, steps) + tuple(out.shape[1:]))

    def _one(self, x, training):
        out = self.layer(x, training=training)
        if not isinstance(out, Tensor):
            raise ValueError(f"TimeDistributed '{self.name}': the wrapped layer '{self.layer.name}' must "
                             f"return a single tensor, it returned {type(out).__name__}")
        return out

    def get_config(self):
        return {**super().get_config(), "layer": serialize_object(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = config.pop("layer")
        name = inner.get("registered_name") or inner.get("class_name")
        category = "models" if name in registered("models") else "layers"
        return cls(get_from_registry(category, inner, custom_objects=custom_objects), **config)


def _uses_batch_statistics(layer):
    from .normalization import BatchNormalization
    if isinstance(layer, BatchNormalization):
        return True
    inner = getattr(layer, "layers", None) or layer._sublayers
    return any(_uses_batch_statistics(sub) for sub in inner)
