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
    across timesteps. Its weights (and parameter count) are those of the wrapped layer. A (N, T) mask passes
    through to its output."""

    _supports_masking = True

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


@register("layers")
class Bidirectional(Layer):
    """Runs a recurrent layer over the sequence forward and a copy of it backward, and merges the two outputs
    (``merge_mode``: 'concat', 'sum', 'mul', 'ave', or None for the list of both). As in Keras, the layers it
    runs are copies of ``layer`` (``forward_<name>``, and ``backward_<name>`` with ``go_backwards`` flipped,
    unless ``backward_layer`` is given); their weights are the forward layer's, then the backward one's."""

    MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(layer, Layer) and hasattr(layer, "go_backwards") and hasattr(layer, "return_sequences")):
            raise ValueError(f"Bidirectional '{self.name}': please initialize it with a recurrent layer (LSTM, GRU, "
                             f"SimpleRNN). Received: {layer!r}")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"Bidirectional '{self.name}': invalid merge_mode {merge_mode!r}; expected one of "
                             f"{list(self.MERGE_MODES)}")
        self.forward_layer = _copy(layer, "forward_", go_backwards=layer.go_backwards)
        self.backward_layer = backward_layer if backward_layer is not None else \
            _copy(layer, "backward_", go_backwards=not layer.go_backwards)
        if (self.backward_layer.return_sequences, self.backward_layer.return_state) != \
                (layer.return_sequences, layer.return_state):
            raise ValueError(f"Bidirectional '{self.name}': backward_layer must have the same return_sequences and "
                             "return_state as the forward layer")
        self.merge_mode = merge_mode
        self.return_sequences, self.return_state = layer.return_sequences, layer.return_state
        for inner in (self.forward_layer, self.backward_layer):  # (Keras: zeros at masked steps of sequences)
            inner.zero_output_for_mask = self.return_sequences
        if weights is not None:
            raise ValueError(f"Bidirectional '{self.name}': weights= is not supported; call set_weights after "
                             "building it")

    def call(self, inputs, training=None):
        forward = self.forward_layer(inputs, training=training)
        backward = self.backward_layer(inputs, training=training)
        states = []
        if self.return_state:
            forward, backward, states = forward[0], backward[0], forward[1:] + backward[1:]
        if self.return_sequences:  # the backward layer's sequence runs from the last step: put it in time order
            backward = ops.flip(backward, axis=1)
        if self.merge_mode is None:
            return [forward, backward] + states
        merged = {"concat": lambda: ops.concatenate([forward, backward], axis=-1),
                  "sum": lambda: forward + backward, "mul": lambda: forward * backward,
                  "ave": lambda: (forward + backward) * 0.5}[self.merge_mode]()
        return [merged] + states if states else merged

    def compute_mask(self, inputs, previous_mask):
        """The sequence outputs keep the input's mask; a last step and the states have none (as Keras)."""
        mask = previous_mask[0] if isinstance(previous_mask, (list, tuple)) else previous_mask
        out = mask if self.return_sequences else None
        outs = [out, out] if self.merge_mode is None else [out]
        if self.return_state:
            return outs + [None] * (2 * len(self.forward_layer.state_size))
        return outs if self.merge_mode is None else out

    def get_config(self):
        return {**super().get_config(), "merge_mode": self.merge_mode, "layer": serialize_object(self.forward_layer),
                "backward_layer": serialize_object(self.backward_layer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        layer = get_from_registry("layers", config.pop("layer"), custom_objects=custom_objects)
        backward = config.pop("backward_layer", None)
        if backward is not None:
            backward = get_from_registry("layers", backward, custom_objects=custom_objects)
        return cls(layer, backward_layer=backward, **config)


def _copy(layer, prefix, go_backwards):
    """A new layer of ``layer``'s class and configuration, named ``<prefix><name>`` (Keras's Bidirectional)."""
    config = {**layer.get_config(), "go_backwards": go_backwards}
    name = config.get("name") or layer.name
    config["name"] = prefix + (name[len(prefix):] if name.startswith(prefix) else name)
    return type(layer).from_config(config)
