"""Model configs laid out as Keras 3 writes them, and models rebuilt from such configs.

A layer entry is ``{"module", "class_name", "config", "registered_name", "build_config"}``; inside a
Functional config it also has ``"name"`` and ``"inbound_nodes"`` (each call's ``args``/``kwargs``, where a
symbolic tensor is ``{"class_name": "__keras_tensor__", "config": {"shape", "dtype", "keras_history"}}``).
Node indices count only the nodes that belong to the model being serialized, as in Keras.
"""
from __future__ import annotations

import copy
import warnings
import inspect

import numpy as np

from .. import serialization
from ..layers.base import Layer
from ..layers.input_layer import InputLayer
from ..layers.node import KerasTensor, map_structure
from ..layers.op_layer import OpLayer
from .functional import Functional, Model
from .sequential import Sequential

# Keras 3 arguments graphc has no counterpart for; dropped on load only when they hold this inert value.
_KERAS_ONLY_DEFAULTS = {"quantization_config": None, "lora_rank": None, "lora_alpha": None, "ragged": False,
                        "optional": False, "input_axes": None, "output_axes": None, "synchronized": False}
_COMPILE_CATEGORIES = {"keras.optimizers": "optimizers", "keras.losses": "losses", "keras.metrics": "metrics"}


# --- writing ---------------------------------------------------------------------------------------------
def _is_functional(layer) -> bool:
    """Keras gives a Functional a built-in node 0, so input/output references to it are offset by one."""
    return isinstance(layer, Model) and not isinstance(layer, Sequential) and hasattr(layer, "_nodes")


def _entry(layer) -> dict:
    """module/class_name/config/registered_name, with the module names Keras gives models."""
    if isinstance(layer, OpLayer):  # as Keras writes an operation on functional tensors
        module, class_name, config = layer.keras_entry()
        return {"module": module, "class_name": class_name, "config": copy.deepcopy(config),
                "registered_name": class_name}
    entry = serialization.serialize_object(layer)
    if not isinstance(entry["config"], dict):
        raise TypeError(f"Layer '{layer.name}' ({type(layer).__name__}).get_config() must return a dict, "
                        f"returned {type(entry['config']).__name__}")
    entry["config"] = copy.deepcopy(entry["config"])
    if type(layer) is Sequential:
        entry["module"], entry["registered_name"] = "keras", None
    elif type(layer) in (Functional, Model):
        entry["module"], entry["registered_name"] = "keras.src.models.functional", "Functional"
    elif entry["module"] == "__main__":  # as Keras: a class with no importable module
        entry["module"] = None
    return entry


def _shapes(structure):
    return map_structure(lambda t: list(t.shape), structure)


def _build_config(layer):
    if isinstance(layer, Sequential):
        first = layer._stack[0] if layer._stack else None
        return {"input_shape": list(first.batch_shape) if layer.built and isinstance(first, InputLayer) else None}
    if isinstance(layer, Model):
        return {"input_shape": None}
    if type(layer).build is Layer.build or not layer.built or not layer._inbound_nodes:
        return None  # layers without a build step record none (as Keras's Dropout, Activation, ...)
    names = getattr(layer, "_tensor_args", None)
    if names:  # (Keras builds such a layer from each tensor's shape by name: build(query_shape, value_shape))
        return {"shapes_dict": {f"{n}_shape": list(t.shape)
                                for n, t in zip(names[:3], layer._inbound_nodes[0].call_args)}}
    return {"input_shape": _shapes(layer._inbound_nodes[0].call_args)}


def serialize_layer(layer) -> dict:
    """A layer as Keras 3's ``serialize_keras_object`` writes it (plus build/compile configs)."""
    entry = _entry(layer)
    build_config = _build_config(layer)
    if build_config is not None:
        entry["build_config"] = build_config
    if isinstance(layer, Model):
        entry["compile_config"] = serialize_compile_config(layer)
    return entry


def _own_index(layer, node_index, own_nodes) -> int:
    """Position of a node among the nodes of ``layer`` that belong to the model."""
    return sum(1 for node in layer._inbound_nodes[:node_index] if node in own_nodes)


def _serialize_value(value, own_nodes, where):
    """A call argument in Keras 3's layout (tensors, tuples and arrays tagged with a class_name)."""
    if isinstance(value, KerasTensor):
        layer, node_index, tensor_index = value._history
        return {"class_name": "__keras_tensor__",
                "config": {"shape": list(value.shape), "dtype": value.dtype,
                           "keras_history": [layer.name, _own_index(layer, node_index, own_nodes), tensor_index]}}
    if isinstance(value, tuple):
        return {"class_name": "__tuple__", "config": {"value": [_serialize_value(v, own_nodes, where) for v in value]}}
    if isinstance(value, list):
        return [_serialize_value(v, own_nodes, where) for v in value]
    if isinstance(value, dict):
        return {k: _serialize_value(v, own_nodes, where) for k, v in value.items()}
    if isinstance(value, slice):
        return {"class_name": "__slice__", "config": {"start": value.start, "stop": value.stop, "step": value.step}}
    if value is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"Cannot serialize the call of layer '{where}': argument of type {type(value).__name__} "
                    f"({value!r}) is not a tensor, number, string, list, tuple, dict or array")


def _serialize_node(node, own_nodes):
    extra = node.call_kwargs.get("extra_args", [])
    kwargs = {k: v for k, v in node.call_kwargs.items() if k != "extra_args"}
    if isinstance(node.layer, Model):
        kwargs.setdefault("mask", None)  # as Keras records a model call
    where = node.layer.name
    args = [node.call_args, *extra]
    if isinstance(node.layer, OpLayer):
        args = node.layer.keras_call_args(node.call_args)
    names = getattr(node.layer, "_tensor_args", None)
    if names:  # the tensors as Keras records them: the first two positional, the rest by name (MultiHeadAttention)
        args = list(node.call_args[:2]) + list(extra)
        kwargs.update(zip(names[2:], node.call_args[2:]))
    return {"args": [_serialize_value(a, own_nodes, where) for a in args],
            "kwargs": _serialize_value(kwargs, own_nodes, where)}


def functional_config(model) -> dict:
    """``Functional.get_config()``: name, trainable, layers (with their calls), input and output layers."""
    if not hasattr(model, "_nodes"):  # a subclassed model without a graph: only its base arguments
        return {"name": model.name, "trainable": model.trainable, "dtype": model.dtype}
    own = model._network_nodes
    layers = []
    for layer in model.layers:
        entry = serialize_layer(layer)
        entry["name"] = layer.name
        entry["inbound_nodes"] = [_serialize_node(n, own) for n in layer._inbound_nodes
                                  if n in own and not n.is_input]
        layers.append(entry)

    def reference(tensor):
        layer, node_index, tensor_index = tensor._history
        return [layer.name, _own_index(layer, node_index, own) + _is_functional(layer), tensor_index]

    return {"name": model.name, "trainable": model.trainable, "layers": layers,
            "input_layers": map_structure(reference, model._input_struct),
            "output_layers": map_structure(reference, model._output_struct)}


def sequential_config(model) -> dict:
    """``Sequential.get_config()``: the stack (InputLayer first once built) and the build input shape."""
    config = {"name": model.name, "trainable": model.trainable, "dtype": model.dtype,
              "layers": [serialize_layer(layer) for layer in model._stack]}
    if model.built and model._stack and isinstance(model._stack[0], InputLayer):
        config["build_input_shape"] = list(model._stack[0].batch_shape)
    return config


def _serialize_compile_value(value, key):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_serialize_compile_value(v, key) for v in value]
    if isinstance(value, dict):
        return {str(k): _serialize_compile_value(v, key) for k, v in value.items()}
    if hasattr(value, "get_config"):
        return serialization.serialize_object(value)
    if inspect.isfunction(value) or inspect.isbuiltin(value):  # (Keras's module for built-ins, else by name)
        return serialization.serialize_keras_object(value)
    raise TypeError(f"compile({key}=...) holds a {type(value).__name__} ({value!r}) that cannot be saved: "
                    "use a name (e.g. 'adam', 'mse'), an object with get_config(), or a function")


def serialize_compile_config(model) -> dict:
    """What ``compile()`` recorded, with objects as Keras-style dicts ({} when not compiled, as Keras)."""
    recorded = getattr(model, "_compile_config", None)
    if not getattr(model, "compiled", False) or not recorded:
        return {}
    return {key: _serialize_compile_value(value, key) for key, value in recorded.items()}


def serialize_model(model) -> dict:
    """The top-level entry Keras writes to config.json and to_json()."""
    return serialize_layer(model)


# --- reading -----------------------------------------------------------------------------------------------
def _keras_args(config):
    """Map a Keras-written config to graphc arguments: DTypePolicy dicts become dtype names, and
    Keras-only options holding their inert default are dropped (recursively in nested objects)."""
    out = {}
    for key, value in config.items():
        if key in _KERAS_ONLY_DEFAULTS and value is _KERAS_ONLY_DEFAULTS[key]:
            continue
        if key == "dtype" and isinstance(value, dict):
            value = (value.get("config") or {}).get("name", "float32")
        elif isinstance(value, dict) and "class_name" in value and isinstance(value.get("config"), dict) \
                and value["class_name"] not in ("Functional", "Sequential", "Model"):
            value = {**value, "config": _keras_args(value["config"])}
        out[key] = value
    return out


def _resolve_class(entry, custom_objects):
    class_name = entry.get("class_name")
    if not isinstance(class_name, str):
        raise ValueError(f"A saved layer entry has no class_name: {entry!r}")
    registered = entry.get("registered_name") or class_name
    candidates = [registered, class_name, registered.split(">")[-1]]
    for table in (serialization.visible_custom_objects(custom_objects), serialization.registered("models"),
                  serialization.registered("layers")):
        for name in candidates:
            if name in table:
                return table[name]
    where = f" (layer '{entry['name']}')" if "name" in entry else ""
    raise ValueError(f"Unknown layer class '{class_name}'{where} in the saved config. If it is a custom class, "
                     f"pass it with custom_objects={{'{class_name}': {class_name}}}.")


def deserialize_layer(entry, custom_objects=None):
    """A layer or model from its Keras 3 entry (graphc- or Keras-written). ``custom_objects`` are in scope
    while it is rebuilt, so a custom activation or initializer inside a layer's config is found too."""
    with serialization.custom_object_scope(custom_objects):
        return _deserialize_layer(entry, custom_objects)


def _deserialize_layer(entry, custom_objects):
    if not isinstance(entry, dict):
        raise ValueError(f"A saved layer must be a dict with 'class_name' and 'config', received {entry!r}")
    if str(entry.get("module") or "").startswith("keras.src.ops."):  # an operation on functional tensors
        return OpLayer.from_keras(entry.get("class_name"), entry.get("config") or {})
    cls = _resolve_class(entry, custom_objects)
    config = entry.get("config") or {}
    if not isinstance(config, dict):
        raise ValueError(f"The config of saved layer class '{entry['class_name']}' must be a dict, "
                         f"received {config!r}")
    if isinstance(cls, type) and issubclass(cls, Model):
        instance = cls.from_config(copy.deepcopy(config), custom_objects=custom_objects)
    elif "custom_objects" in inspect.signature(cls.from_config).parameters:  # (Lambda: its function by name)
        instance = cls.from_config(_keras_args(copy.deepcopy(config)), custom_objects=custom_objects)
    else:
        try:
            instance = cls.from_config(_keras_args(copy.deepcopy(config)))
        except TypeError as e:
            raise TypeError(f"Layer class '{entry['class_name']}' could not be rebuilt from its saved config "
                            f"(keys {sorted(config)}): {e}") from None
        except ValueError as e:  # (e.g. an unknown custom activation: say which layer holds it)
            raise ValueError(f"Layer '{config.get('name')}' ({entry['class_name']}): {e}") from None
    if not isinstance(instance, Layer):
        raise ValueError(f"Saved class '{entry['class_name']}' rebuilt a {type(instance).__name__}, not a layer")
    compile_config = entry.get("compile_config")
    if isinstance(instance, Model) and compile_config:
        try:
            instance.compile(**deserialize_compile_config(compile_config, custom_objects))
        except (ValueError, TypeError) as e:  # e.g. a custom loss or metric not given in custom_objects
            warnings.warn(f"Model '{instance.name}' was loaded but not compiled: {e}. Pass the custom objects "
                          "to load_model(custom_objects=...), or call compile() yourself", stacklevel=3)
    return instance


class _NodeNotReady(Exception):
    """A call refers to a node that has not been replayed yet (layers shared at several depths)."""


def _deserialize_value(value, created):
    if isinstance(value, list):
        return [_deserialize_value(v, created) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get("class_name")
    if kind == "__keras_tensor__":
        name, node_index, tensor_index = value["config"]["keras_history"]
        return _tensor(created, name, node_index, tensor_index)
    if kind == "__tuple__":
        return tuple(_deserialize_value(v, created) for v in value["config"]["value"])
    if kind == "__numpy__":
        return np.array(value["config"]["value"], dtype=value["config"]["dtype"])
    if kind == "__slice__":
        c = value["config"]
        return slice(c.get("start"), c.get("stop"), c.get("step"))
    if kind == "__ellipsis__":
        return Ellipsis
    return {k: _deserialize_value(v, created) for k, v in value.items()}


def _tensor(created, name, node_index, tensor_index):
    if name not in created:
        raise ValueError(f"Invalid model config: a call refers to layer '{name}', which is not in the config")
    if not (isinstance(node_index, int) and isinstance(tensor_index, int)) or node_index < 0 or tensor_index < 0:
        raise ValueError(f"Invalid model config: bad reference {[name, node_index, tensor_index]}")
    nodes = created[name]._inbound_nodes
    if node_index >= len(nodes):
        raise _NodeNotReady(name)
    outputs = nodes[node_index].output_tensors
    if tensor_index >= len(outputs):
        raise ValueError(f"Invalid model config: layer '{name}' call {node_index} has {len(outputs)} output(s), "
                         f"the config asks for output {tensor_index}")
    return outputs[tensor_index]


def _node_call(node_data, created):
    """(args, kwargs) of one recorded call; legacy tf.keras lists ([[name, node, tensor, kwargs], ...]) too."""
    if isinstance(node_data, list):
        tensors = [_tensor(created, *ref[:3]) for ref in node_data]
        kwargs = node_data[0][3] if node_data and len(node_data[0]) > 3 else {}
        return [tensors[0] if len(tensors) == 1 else tensors], dict(kwargs)
    args = _deserialize_value(node_data.get("args", []), created)
    kwargs = _deserialize_value(node_data.get("kwargs", {}), created)
    if kwargs.get("mask", 0) is None:  # Keras records mask=None on model calls; graphc has no masks
        kwargs.pop("mask")
    return args, kwargs


def _rename(layer, name):
    for variable in layer.weights:
        if variable.path.startswith(f"{layer.name}/"):
            variable.path = f"{name}/{variable.path[len(layer.name) + 1:]}"
    layer.name = name


def functional_from_config(config, custom_objects=None, cls=None):
    """Rebuild a functional model: create every layer, then replay the recorded calls in order."""
    cls = cls or Model
    config = copy.deepcopy(config)
    if "layers" not in config:
        return cls(**config)
    missing = [k for k in ("input_layers", "output_layers") if k not in config]
    if missing:
        raise ValueError(f"A functional model config needs 'layers', 'input_layers' and 'output_layers'; "
                         f"missing {missing}")
    created, pending = {}, {}
    for entry in config.pop("layers"):
        if "name" not in entry:
            raise ValueError(f"A layer entry of a functional config has no 'name': {entry.get('class_name')}")
        layer = deserialize_layer(entry, custom_objects)
        if layer.name != entry["name"]:  # a get_config without 'name' (seed 002's CustomDense) keeps its name
            _rename(layer, entry["name"])
        created[entry["name"]] = layer
        pending[entry["name"]] = list(entry.get("inbound_nodes") or [])

    while any(pending.values()):
        progressed = False
        for name, calls in pending.items():
            while calls:
                try:
                    args, kwargs = _node_call(calls[0], created)
                except _NodeNotReady:
                    break
                created[name](*args, **kwargs)
                calls.pop(0)
                progressed = True
        if not progressed:
            stuck = sorted(name for name, calls in pending.items() if calls)
            raise ValueError(f"Invalid functional model config: the calls of layers {stuck} refer to calls that "
                             "never happen (the graph has a cycle or refers to missing nodes)")

    def reference(ref):
        name, node_index, tensor_index = ref
        layer = created.get(name)
        return _tensor(created, name, node_index - bool(_is_functional(layer)), tensor_index)

    def structure(refs):
        if isinstance(refs, list) and len(refs) == 3 and isinstance(refs[0], str):
            return reference(refs)
        if isinstance(refs, dict):
            return {k: structure(v) for k, v in refs.items()}
        return [structure(r) for r in refs]

    try:
        inputs, outputs = structure(config.pop("input_layers")), structure(config.pop("output_layers"))
    except _NodeNotReady as e:
        raise ValueError(f"Invalid functional model config: an input or output refers to a call of layer "
                         f"'{e}' that does not exist") from None
    return cls(inputs=inputs, outputs=outputs, **config)


def sequential_from_config(config, custom_objects=None):
    if not isinstance(config, dict) or "layers" not in config:
        raise ValueError(f"A Sequential config must be a dict with 'name' and 'layers', received {config!r}")
    layers = [deserialize_layer(entry, custom_objects) for entry in config["layers"]]
    model = Sequential(layers, name=config.get("name"), trainable=config.get("trainable", True))
    shape = config.get("build_input_shape")
    if not model.built and isinstance(shape, (list, tuple)) and shape:
        model.build(tuple(shape))
    return model


def deserialize_compile_config(config, custom_objects=None) -> dict:
    """compile() arguments from a saved compile config: strings stay strings, functions become their
    names, objects of registered classes are rebuilt, others stay Keras-style dicts."""
    custom_objects = serialization.visible_custom_objects(custom_objects)

    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if v.get("class_name") == "function":
            name = v.get("config")
            return custom_objects.get(name, name)
        if "class_name" in v and "config" in v:
            name = v.get("registered_name") or v["class_name"]
            if name in custom_objects:
                cls = custom_objects[name]
                return cls.from_config(v["config"]) if hasattr(cls, "from_config") else cls(**v["config"])
            category = _COMPILE_CATEGORIES.get(v.get("module"))
            if category and v["class_name"] in serialization.registered(category):
                return serialization.get_from_registry(category, v, custom_objects=custom_objects)
            return v
        return {k: value(x) for k, x in v.items()}

    return {key: value(v) for key, v in config.items()}
