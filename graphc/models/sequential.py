"""``Sequential``: a linear stack of layers, kept as a functional graph once its input shape is known."""
from __future__ import annotations

from ..layers.base import Layer, weight_sets_changed
from ..layers.input_layer import InputLayer
from ..layers.node import KerasTensor
from ..serialization import register
from .functional import Model


@register("models")
class Sequential(Model):
    """``Sequential([layers])`` or ``.add(layer)``; the first layer may carry ``input_shape``/``input_dim``,
    or be a ``graphc.Input``. Without any, the model is built on its first call."""

    _builds_its_own_graph = True

    def __init__(self, layers=None, trainable=True, name=None):
        super().__init__(name=name, trainable=trainable)
        self._stack: list = []
        self._graph_cache = {}
        for layer in layers or []:
            self.add(layer, rebuild=False)
        self._rebuild()

    @classmethod
    def _default_name(cls):
        return "sequential"

    def add(self, layer, rebuild=True):
        if isinstance(layer, KerasTensor):
            origin = layer._history[0] if layer._history else None
            if not isinstance(origin, InputLayer):
                raise TypeError("Sequential.add() accepts a graphc.Input tensor or a Layer; "
                                f"received a tensor made by layer '{getattr(origin, 'name', '?')}'")
            layer = origin
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add() expects a Layer instance, received {type(layer).__name__}: {layer!r}")
        if isinstance(layer, InputLayer) and self._stack:
            raise ValueError(f"Sequential '{self.name}': an Input can only be the first layer")
        if any(existing.name == layer.name for existing in self._stack):
            raise ValueError(f"Sequential '{self.name}': all layers should have unique names; "
                             f"'{layer.name}' is already in the model")
        self._stack.append(layer)
        weight_sets_changed()  # (in place: __setattr__ does not see it)
        if rebuild:
            self._rebuild()

    def pop(self, rebuild=True):
        if not self.layers:
            raise TypeError(f"Sequential '{self.name}' has no layers to pop")
        layer = self._stack.pop()
        weight_sets_changed()
        if rebuild:
            self._rebuild()
        return layer

    def _rebuild(self):
        """(Re)create the functional graph when the input shape is known."""
        self.built = False
        self._graph_cache = {}
        self._programs = {}
        if not self._stack:
            return
        first = self._stack[0]
        if not isinstance(first, InputLayer) and first._batch_input_shape is not None:
            self._stack.insert(0, InputLayer(batch_shape=first._batch_input_shape, dtype=first.dtype))
        if isinstance(self._stack[0], InputLayer) and len(self._stack) > 1:
            x = inputs = self._stack[0].output_tensor
            for layer in self._stack[1:]:
                x = layer(x)
            self._init_graph(inputs, x)

    def build(self, input_shape=None):
        if self.built:
            return
        if input_shape is None or isinstance(input_shape, list) and input_shape and \
                isinstance(input_shape[0], (tuple, list)):
            raise ValueError(f"Sequential '{self.name}' needs a single input shape to build, "
                             f"received {input_shape!r}")
        if not self.layers:
            raise ValueError(f"Sequential '{self.name}' has no layers to build")
        self._stack = [l for l in self._stack if not isinstance(l, InputLayer)]
        self._stack.insert(0, InputLayer(batch_shape=tuple(input_shape)))
        self._rebuild()

    @property
    def layers(self):
        return [l for l in self._stack if not isinstance(l, InputLayer)]

    def _layers_for_weights(self):
        return self.layers

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"Sequential '{self.name}' has not been built yet, so it has no {what}. Give the "
                             "first layer an input_shape, start with graphc.Input(shape), call build(), or call "
                             "the model on data first.")

    def _eager_call(self, inputs, extra, kwargs):
        if not self.built:
            import numpy as np
            self.build((None,) + np.shape(inputs)[1:])
        return super()._eager_call(inputs, extra, kwargs)

    def predict(self, x, *args, **kwargs):
        if not self.built:
            import numpy as np
            self.build((None,) + np.shape(x)[1:])
        return super().predict(x, *args, **kwargs)

    def count_params(self):
        self._require_built("weights")
        return super().count_params()

    def summary(self, *args, **kwargs):
        self._require_built("summary")
        return super().summary(*args, **kwargs)

    def get_config(self):
        from .config import sequential_config
        return sequential_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .config import sequential_from_config
        return sequential_from_config(config, custom_objects)
