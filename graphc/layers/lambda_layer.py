"""Lambda: a function of tensors as a layer (``keras.layers.Lambda``).

The function runs on symbolic tensors like a custom layer's ``call``, so anything written with
``graphc.ops`` (or Python operators) compiles. It is saved as Keras saves it: a named function by its
name (found again through ``custom_objects``), a Python lambda as its marshalled bytecode, which
``load_model`` only runs with ``safe_mode=False``, as in Keras.
"""
from __future__ import annotations

import base64
import builtins
import inspect
import marshal
import types

from ..serialization import in_safe_mode, register, serialize_function, visible_custom_objects
from .base import Layer


@register("layers")
class Lambda(Layer):
    """``function(inputs, **arguments)`` as a layer.

    Args:
        function: called on the layer's input (a tensor, or a list of them); may take ``training``.
        output_shape: accepted for Keras compatibility; graphc infers the output shape by tracing.
        mask: not supported (graphc propagates no masks); must be None.
        arguments: keyword arguments passed to ``function`` on every call.
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Lambda '{self.name}': function must be callable, received {type(function).__name__}")
        if mask is not None:
            raise ValueError(f"Lambda '{self.name}': mask is not supported; a custom layer's compute_mask can "
                             "give the mask instead")
        if arguments is not None and not isinstance(arguments, dict):
            raise TypeError(f"Lambda '{self.name}': arguments must be a dict, received {type(arguments).__name__}")
        self.function = function
        self.output_shape_arg = output_shape
        self.arguments = dict(arguments or {})
        try:
            self._takes_training = "training" in inspect.signature(function).parameters
        except (TypeError, ValueError):  # (builtins without a signature)
            self._takes_training = False

    def call(self, inputs, training=None):
        kwargs = dict(self.arguments)
        if self._takes_training:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def get_config(self):
        config = {**super().get_config(), "function": _function_config(self.function, self.name),
                  "arguments": self.arguments}
        if self.output_shape_arg is not None:
            config["output_shape"] = self.output_shape_arg
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["function"] = _function_from_config(config.get("function"), config.get("name", "lambda"),
                                                   visible_custom_objects(custom_objects))
        config.pop("function_type", None)
        config.pop("output_shape_type", None)
        config.pop("output_shape_module", None)
        config.pop("module", None)
        return cls(**config)


def _function_config(fn, layer):
    """Keras's two forms: a named function by name, a Python lambda by its bytecode (marshal, base64)."""
    if isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>":
        closure = [cell.cell_contents for cell in fn.__closure__] if fn.__closure__ else None
        return {"class_name": "__lambda__",
                "config": {"code": base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii"),
                           "defaults": list(fn.__defaults__) if fn.__defaults__ else None, "closure": closure}}
    name = getattr(fn, "__name__", None)
    if not name:
        raise ValueError(f"Lambda '{layer}': its function {fn!r} has no name to save it by; use a def or a lambda")
    return serialize_function(fn)


def _tuple_value(entry):
    """A saved lambda's defaults or closure: a JSON list, as Keras writes them, or a __tuple__ entry."""
    if isinstance(entry, dict) and entry.get("class_name") == "__tuple__":
        entry = (entry.get("config") or {}).get("value")
    return tuple(entry) if entry else None


def _function_from_config(entry, layer, custom_objects):
    if callable(entry):
        return entry
    if not isinstance(entry, dict):
        raise ValueError(f"Lambda '{layer}': its saved function must be a dict, received {entry!r}")
    if entry.get("class_name") == "__lambda__":
        if in_safe_mode():
            raise ValueError(f"Lambda '{layer}' holds a Python lambda, saved as bytecode: loading it would run "
                             "code from the file. If you trust the file, pass safe_mode=False to load_model.")
        return _lambda_from_bytecode(entry.get("config") or {}, layer, custom_objects)
    name = entry.get("config")
    if name in custom_objects:
        return custom_objects[name]
    raise ValueError(f"Lambda '{layer}' calls the function {name!r}, which is not known here: pass it with "
                     f"custom_objects={{{name!r}: {name}}} or register it with "
                     "@graphc.saving.register_keras_serializable()")


def _lambda_from_bytecode(config, layer, custom_objects):
    import graphc
    try:
        code = marshal.loads(base64.decodebytes(str(config["code"]).encode("ascii")))
    except (KeyError, ValueError, EOFError, TypeError) as e:
        raise ValueError(f"Lambda '{layer}': its saved bytecode cannot be read here ({e}); it must be loaded by "
                         "the Python version that saved it") from None
    if not isinstance(code, types.CodeType):
        raise ValueError(f"Lambda '{layer}': its saved function is not Python bytecode")
    # the names a Keras or graphc lambda body uses: keras.ops / graphc.ops (both graphc's here), ops
    scope = {"__builtins__": builtins, "graphc": graphc, "keras": graphc, "ops": graphc.ops, **custom_objects}
    closure = _tuple_value(config.get("closure"))
    cells = tuple(types.CellType(value) for value in closure) if closure else None
    return types.FunctionType(code, scope, code.co_name, _tuple_value(config.get("defaults")), cells)
