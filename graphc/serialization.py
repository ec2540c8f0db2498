"""Class registries, custom objects and Keras-3-style object configs.

A serialized object is ``{"module", "class_name", "config", "registered_name"}``
as in Keras 3's ``serialize_keras_object``, so configs read like Keras's own.
User classes and functions are found by name among the custom objects: those
registered with ``register_keras_serializable`` (under ``"package>name"``) and
those of the enclosing ``custom_object_scope`` (``load_model(custom_objects=...)``
opens one, so that a custom activation deep in a layer's config is found).
"""
from __future__ import annotations

import contextlib
import contextvars
import inspect
import types

_SAFE_MODE = contextvars.ContextVar("graphc_safe_mode", default=True)
_SCOPE = contextvars.ContextVar("graphc_custom_object_scope", default=None)
_REGISTRY: dict[str, dict[str, type]] = {}
_CUSTOM_OBJECTS: dict[str, object] = {}  # "package>name" -> class or function (register_keras_serializable)
_CUSTOM_NAMES: dict[object, str] = {}
_MODULES = {"layers": "keras.layers", "initializers": "keras.initializers", "models": "keras.models",
            "activations": "keras.activations", "losses": "keras.losses", "metrics": "keras.metrics",
            "optimizers": "keras.optimizers", "regularizers": "keras.regularizers"}


@contextlib.contextmanager
def safe_mode_scope(safe_mode: bool):
    """While loading: whether code saved in a file (a Lambda's bytecode) may not run (True, the default)."""
    token = _SAFE_MODE.set(bool(safe_mode))
    try:
        yield
    finally:
        _SAFE_MODE.reset(token)


def in_safe_mode() -> bool:
    return _SAFE_MODE.get()


# --- custom objects (Keras's keras.saving API) ----------------------------------------------------------------
def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator: make a custom class or function known to loading under ``"package>name"`` (``name``
    defaults to its ``__name__``), and saved under that name, so no ``custom_objects`` is needed."""
    def decorator(obj):
        key = f"{package}>{name if name is not None else obj.__name__}"
        if inspect.isclass(obj) and not hasattr(obj, "get_config"):
            raise ValueError(f"Cannot register class {obj.__name__!r}: it has no get_config() method")
        _CUSTOM_OBJECTS[key] = obj
        _CUSTOM_NAMES[obj] = key
        return obj
    return decorator


def get_custom_objects() -> dict:
    """The live global dict of registered custom objects (``"package>name"`` -> object); scopes not included."""
    return _CUSTOM_OBJECTS


def get_registered_name(obj) -> str:
    """The name ``obj`` is saved under: its registered ``"package>name"``, else its ``__name__``."""
    return _CUSTOM_NAMES.get(obj, obj.__name__)


class CustomObjectScope:
    """``with custom_object_scope({"MyLayer": MyLayer}):`` -- loading inside finds these names (scopes nest)."""

    def __init__(self, custom_objects=None):
        if custom_objects is not None and not isinstance(custom_objects, dict):
            raise TypeError(f"custom_object_scope expects a dict of name -> class or function, received "
                            f"{type(custom_objects).__name__}")
        self.custom_objects = dict(custom_objects or {})
        self._token = None

    def __enter__(self):
        self._token = _SCOPE.set({**(_SCOPE.get() or {}), **self.custom_objects})
        return self

    def __exit__(self, *exc):
        _SCOPE.reset(self._token)


custom_object_scope = CustomObjectScope


def visible_custom_objects(extra: dict | None = None) -> dict:
    """Every custom object visible here: registered, then the scopes', then ``extra`` (later wins)."""
    return {**_CUSTOM_OBJECTS, **(_SCOPE.get() or {}), **(extra or {})}


def get_registered_object(name, custom_objects=None, module_objects=None):
    """The class or function known as ``name`` (scopes, registered, ``custom_objects``, ``module_objects``),
    or None."""
    for table in (_SCOPE.get() or {}, _CUSTOM_OBJECTS, custom_objects or {}, module_objects or {}):
        if name in table:
            return table[name]
    return None


def serialize_function(fn) -> dict:
    """A user function's config as Keras writes it: found again by its registered name."""
    return {"module": "builtins", "class_name": "function", "config": get_registered_name(fn),
            "registered_name": "function"}


def function_from_config(config, builtins: dict, kind: str, extra: dict | None = None):
    """The function a name or a ``{"class_name": "function", "config": name}`` stands for: a custom object,
    else one of ``builtins``."""
    name = config.get("config") if isinstance(config, dict) else config
    fn = visible_custom_objects(extra).get(name) if isinstance(name, str) else None
    fn = fn if fn is not None else builtins.get(name)
    if fn is None:
        known = f" Known: {sorted(builtins)}." if builtins else ""
        raise ValueError(f"Unknown {kind} {name!r}.{known} If it is your own function, decorate it with "
                         f"@graphc.saving.register_keras_serializable() or pass custom_objects={{{name!r}: "
                         f"{str(name).split('>')[-1]}}} when loading.")
    return fn


# --- built-in classes -----------------------------------------------------------------------------------------
def register(category: str, name: str | None = None):
    """Class decorator: make ``cls`` known to deserialization under its class name."""
    def deco(cls):
        _REGISTRY.setdefault(category, {})[name or cls.__name__] = cls
        return cls
    return deco


def registered(category: str) -> dict:
    return dict(_REGISTRY.get(category, {}))


def serialize_object(obj) -> dict:
    if isinstance(obj, types.FunctionType):
        return serialize_function(obj)
    cls = type(obj)
    category = next((c for c, reg in _REGISTRY.items() if reg.get(cls.__name__) is cls), None)
    return {
        "module": _MODULES.get(category) if category else cls.__module__,
        "class_name": cls.__name__,
        "config": obj.get_config(),
        "registered_name": None if category else get_registered_name(cls),
    }


def get_from_registry(category: str, identifier, aliases=None, custom_objects=None):
    """Resolve a class name or a serialized dict to an instance."""
    builtin = {**_REGISTRY.get(category, {}), **(aliases or {})}
    reg = {**builtin, **visible_custom_objects(custom_objects)}
    if isinstance(identifier, dict) and identifier.get("class_name") == "function":
        return function_from_config(identifier, {}, category[:-1], custom_objects)
    if isinstance(identifier, str):
        found = reg.get(identifier)
        if found is None:
            raise ValueError(f"Unknown {category[:-1]} {identifier!r}. Known: {sorted(builtin)}. Register your own "
                             "with @graphc.saving.register_keras_serializable() or pass "
                             f"custom_objects={{'{identifier}': cls}}.")
        return found() if isinstance(found, type) else found
    if isinstance(identifier, dict) and "class_name" in identifier:
        name = identifier.get("registered_name") or identifier["class_name"]
        cls = reg.get(name) or reg.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"Unknown {category[:-1]} class {name!r} in a saved config. "
                             f"Pass it with custom_objects={{'{name}': YourClass}}.")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(f"Cannot interpret {category[:-1]} identifier {identifier!r}")


# --- any object (keras.saving.serialize_keras_object / deserialize_keras_object) ---------------------------------
_LAYER_MODULES = ("keras", "keras.layers", "keras.models", "keras.src.models.functional")


def _builtin_functions() -> dict:
    """Keras's built-in functions by name, per Keras module."""
    from . import activations, losses, metrics
    return {"keras.activations": activations.ALL, "keras.losses": {**losses.ALIASES, **losses.FUNCTIONS},
            "keras.metrics": metrics.FUNCTIONS}


def serialize_keras_object(obj):
    """Any graphc object as Keras 3 writes it: layers and models with their build and compile configs,
    built-in functions by their Keras module, user functions and classes by their registered names."""
    from .layers.base import Layer
    from .models.config import serialize_layer
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(v) for v in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, Layer):
        return serialize_layer(obj)
    module = next((m for m, table in _builtin_functions().items() if table.get(getattr(obj, "__name__", None)) is obj),
                  None)
    if module is not None:
        return {"module": module, "class_name": "function", "config": obj.__name__, "registered_name": "function"}
    return serialize_object(obj)


def deserialize_keras_object(config, custom_objects=None, safe_mode=True):
    """The object a Keras 3 config stands for (``serialize_keras_object``'s inverse), with ``custom_objects``
    and the registered ones in scope; ``safe_mode=False`` lets a Lambda's saved bytecode run."""
    from . import losses, metrics, optimizers
    from .layers.base import Layer
    from .models.config import deserialize_layer
    if isinstance(config, list):
        return [deserialize_keras_object(v, custom_objects, safe_mode) for v in config]
    if not isinstance(config, dict):
        return config
    if "class_name" not in config:
        raise ValueError(f"deserialize_keras_object: expected a dict with 'class_name' and 'config', received "
                         f"{config!r}")
    module, class_name = str(config.get("module") or ""), config["class_name"]
    readers = {"keras.losses": losses.deserialize, "keras.metrics": metrics.deserialize,
               "keras.optimizers": optimizers.deserialize,
               "keras.initializers": lambda c: get_from_registry("initializers", c),
               "keras.regularizers": lambda c: get_from_registry("regularizers", c)}
    with safe_mode_scope(safe_mode), custom_object_scope(custom_objects):
        if class_name == "function":
            tables = _builtin_functions()
            return function_from_config(config, tables.get(module) or {k: v for t in tables.values()
                                                                       for k, v in t.items()}, "function")
        if module in readers:
            return readers[module](config)
        if module not in _LAYER_MODULES and not module.startswith("keras.src.ops."):  # a custom class
            name = config.get("registered_name") or class_name
            cls = visible_custom_objects().get(name) or visible_custom_objects().get(class_name)
            if cls is None:
                raise ValueError(f"Unknown class {name!r} in a saved config. Register it with "
                                 "@graphc.saving.register_keras_serializable() or pass "
                                 f"custom_objects={{'{class_name}': {class_name}}}.")
            if not (isinstance(cls, type) and issubclass(cls, Layer)):
                return cls.from_config(config.get("config") or {})
        return deserialize_layer(config)
