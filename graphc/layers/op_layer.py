"""A graphc.ops function applied to functional-API tensors (``Input(...) * 2``, ``ops.mean(x, 1)``)
becomes a small layer, so the model records it like any other call."""
from __future__ import annotations

import inspect
import re

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
    """A graphc.ops function called on functional tensors, recorded as Keras records an operation: the call's
    positional arguments (tensors and constants) and the function's keyword arguments. Files write it as
    Keras's operation class (``x + y`` is ``keras.src.ops.numpy.Add``), so each side loads the other's."""

    def __init__(self, op, args=None, kwargs=None, **layer_kwargs):
        layer_kwargs.setdefault("name", unique_name(op))
        super().__init__(**layer_kwargs)
        from .. import ops
        if not hasattr(ops, op):
            raise ValueError(f"OpLayer '{self.name}': graphc.ops has no function {op!r}")
        self.op, self.args, self.op_kwargs = op, args, dict(kwargs or {})
        self._fn = getattr(ops, op)

    @classmethod
    def from_keras(cls, class_name, config):
        """The layer for an operation entry of a Keras file (class 'Mean', config {'name', 'axis', ...})."""
        config = dict(config)
        name = config.pop("name", None)
        return cls(graphc_op(class_name), None, config, name=name)  # (__init__ refuses an op graphc lacks)

    def __call__(self, *args, **kwargs):
        if self.args is not None and len(args) == 1 and not kwargs:  # (graphc's older files: tensors packed)
            return super().__call__(args[0])
        tensors = []
        self.args = _template(list(args), tensors)
        if self.op == "getitem" and isinstance(self.args[1], list):  # (Keras writes a key tuple as a list)
            self.args[1] = tuple(self.args[1])
        self.op_kwargs.update(kwargs)
        if _LEADING_SETTING.get(self.op) in self.op_kwargs:  # (a Keras file gives it as a constructor setting)
            self.args.insert(0, self.op_kwargs.pop(_LEADING_SETTING[self.op]))
        return super().__call__(tensors if len(tensors) > 1 else tensors[0])

    def call(self, inputs):
        values = inputs if isinstance(inputs, list) else [inputs]
        return self._fn(*_fill(self.args, values), **self.op_kwargs)

    def get_config(self):
        return {**super().get_config(), "op": self.op, "args": self.args, "kwargs": self.op_kwargs}

    def _keras_split(self):
        """Keras passes an operation's tensors to its call and its settings to its constructor: here all
        positional arguments of the elementwise and matmul-like functions are call arguments; of the others the
        first is, and the rest become constructor settings by parameter name (reshape's newshape, ...)."""
        if self.op in _LEADING_SETTING:
            return list(self.args[1:]), {_LEADING_SETTING[self.op]: self.args[0]}
        if self.op in _ALL_CALL_ARGS or len(self.args) <= 1:
            return list(self.args), {}
        names = list(inspect.signature(self._fn).parameters)[1:]
        return list(self.args[:1]), dict(zip(names, self.args[1:]))

    def keras_entry(self):
        """(module, class name, config) of the Keras operation this call is."""
        module, class_name = keras_operation(self.op)
        return module, class_name, {"name": self.name, **self._keras_split()[1], **self.op_kwargs}

    def keras_call_args(self, call_args):
        """The call's positional arguments as Keras records them: the template with the node's tensors."""
        args = _fill(self._keras_split()[0], call_args if isinstance(call_args, list) else [call_args])
        if self.op == "getitem" and isinstance(args[1], tuple):  # (Keras writes the key as a list)
            args[1] = list(args[1])
        return args


# functions whose positional arguments are all call arguments of Keras's operation
_ALL_CALL_ARGS = {"add", "subtract", "multiply", "divide", "true_divide", "maximum", "minimum", "power", "greater",
                  "less", "equal", "greater_equal", "less_equal", "not_equal", "logical_and", "logical_or", "matmul", "where", "getitem", "concatenate", "stack"}
# functions whose first argument is a setting of Keras's operation and the rest its call arguments
_LEADING_SETTING = {"einsum": "subscripts"}
# graphc.ops names whose Keras operation class is not the CamelCase of the name, or not in keras.src.ops.numpy
_KERAS_CLASS = {"abs": "Absolute", "getitem": "GetItem", "true_divide": "TrueDivide"}
_KERAS_NN = {"relu", "relu6", "sigmoid", "softmax", "log_softmax", "gelu", "silu", "elu", "selu", "leaky_relu",
             "softplus", "softsign", "hard_sigmoid", "one_hot"}


def keras_operation(op):
    """(module, class name) of Keras 3's operation for the graphc.ops function ``op``."""
    module = "keras.src.ops.nn" if op in _KERAS_NN else "keras.src.ops.core" if op == "cast" else "keras.src.ops.numpy"
    return module, _KERAS_CLASS.get(op) or "".join(part.capitalize() for part in op.split("_"))


def graphc_op(class_name):
    """The graphc.ops function name of a Keras operation class ('Add' -> 'add', 'Absolute' -> 'abs')."""
    inverse = {v: k for k, v in _KERAS_CLASS.items()}
    return inverse.get(class_name) or re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", class_name).lower()


def apply_op(name, fn, args, kwargs):
    return OpLayer(name, None, kwargs)(*args)
