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
                             f"(graphc unrolls the timesteps), received input shape {input_shape}")
        if not self.layer.built:
            self.layer._maybe_build(KerasTensor((input_shape[0],) + input_shape[2:], self.dtype))
        self.built = True

    def call(self, inputs, training=None):
        # Keras 3 also calls the layer once per static timestep, so per-batch statistics
        # (BatchNormalization in training) are per timestep as there.
        steps = []
        for t in range(inputs.shape[1]):
            out = self.layer(inputs[:, t], training=training)
            if not isinstance(out, Tensor):
                raise ValueError(f"TimeDistributed '{self.name}': the wrapped layer '{self.layer.name}' must "
                                 f"return a single tensor, it returned {type(out).__name__}")
            steps.append(out)
        return ops.stack(steps, axis=1)

    def get_config(self):
        return {**super().get_config(), "layer": serialize_object(self.layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = config.pop("layer")
        name = inner.get("registered_name") or inner.get("class_name")
        category = "models" if name in registered("models") else "layers"
        return cls(get_from_registry(category, inner, custom_objects=custom_objects), **config)
