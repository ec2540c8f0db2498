"""A graphc.ops function applied to functional-API tensors (``Input(...) * 2``, ``ops.mean(x, 1)``)
becomes a small layer, so the model records it like any other call."""
from __future__ import annotations

from ..serialization import register
from .base import Layer, unique_name
from .node import KerasTensor


def _template(obj, tensors):
    """Replace KerasTensors in nested args by {'__tensor__': i} and collect them."""
    if isinstance(obj, KerasTensor):
        tensors.append(obj)
        return {"__tensor__": len(tensors) - 1}
    if isinstance(obj, (list, tuple)):
        return [_template(o, tensors) for o in obj] if isinstance(obj, list) else tuple(_template(o, tensors) for o in obj)
    return obj


def _fill(obj, values):
    if isinstance(obj, dict) and set(obj) == {"__tensor__"}:
        return values[obj["__tensor__"]]
    if isinstance(obj, (list, tuple)):
        return type(obj)(_fill(o, values) for o in obj)
    return obj


@register("layers")
class OpLayer(Layer):
    def __init__(self, op, args, kwargs=None, **layer_kwargs):
        layer_kwargs.setdefault("name", unique_name(op))
        super().__init__(**layer_kwargs)
        from .. import ops
        if not hasattr(ops, op):
            raise ValueError(f"OpLayer '{self.name}': graphc.ops has no function {op!r}")
        self.op, self.args, self.op_kwargs = op, args, dict(kwargs or {})
        self._fn = getattr(ops, op)

    def call(self, inputs):
        values = inputs if isinstance(inputs, list) else [inputs]
        return self._fn(*_fill(self.args, values), **self.op_kwargs)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "args": self.args, "kwargs": self.op_kwargs}


def apply_op(name, fn, args, kwargs):
    tensors = []
    template = _template(list(args), tensors)
    layer = OpLayer(name, template, kwargs)
    return layer(tensors if len(tensors) > 1 else tensors[0])
