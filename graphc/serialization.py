"""Class registries and Keras-3-style object configs.

A serialized object is ``{"module", "class_name", "config", "registered_name"}``
as in Keras 3's ``serialize_keras_object``, so configs read like Keras's own.
"""
from __future__ import annotations

import contextlib
import contextvars

_SAFE_MODE = contextvars.ContextVar("graphc_safe_mode", default=True)
_REGISTRY: dict[str, dict[str, type]] = {}
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


def register(category: str, name: str | None = None):
    """Class decorator: make ``cls`` known to deserialization under its class name."""
    def deco(cls):
        _REGISTRY.setdefault(category, {})[name or cls.__name__] = cls
        return cls
    return deco


def registered(category: str) -> dict:
    return dict(_REGISTRY.get(category, {}))


def serialize_object(obj) -> dict:
    cls = type(obj)
    category = next((c for c, reg in _REGISTRY.items() if reg.get(cls.__name__) is cls), None)
    return {
        "module": _MODULES.get(category) if category else cls.__module__,
        "class_name": cls.__name__,
        "config": obj.get_config(),
        "registered_name": None if category else cls.__name__,
    }


def get_from_registry(category: str, identifier, aliases=None, custom_objects=None):
    """Resolve a class name or a serialized dict to an instance."""
    reg = {**_REGISTRY.get(category, {}), **(aliases or {}), **(custom_objects or {})}
    if isinstance(identifier, str):
        cls = reg.get(identifier)
        if cls is None:
            raise ValueError(f"Unknown {category[:-1]} {identifier!r}. Known: {sorted(reg)}. "
                             f"Pass custom classes with custom_objects={{'{identifier}': cls}}.")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        name = identifier.get("registered_name") or identifier["class_name"]
        cls = reg.get(name) or reg.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"Unknown {category[:-1]} class {name!r} in a saved config. "
                             f"Pass it with custom_objects={{'{name}': YourClass}}.")
        return cls.from_config(identifier.get("config", {}))
    raise TypeError(f"Cannot interpret {category[:-1]} identifier {identifier!r}")
