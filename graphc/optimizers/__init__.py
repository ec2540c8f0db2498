"""``graphc.optimizers``: Keras 3's optimizers, whose update traces into the compiled training step."""
from __future__ import annotations

from ..serialization import get_from_registry, registered, serialize_object
from . import schedules  # noqa: F401
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

BUILTINS = {cls.__name__.lower(): cls for cls in (SGD, RMSprop, Adam, AdamW, Adagrad)}


def serialize(optimizer) -> dict:
    """``{"module": "keras.optimizers", "class_name", "config", "registered_name"}`` as Keras writes it."""
    return serialize_object(optimizer)


def deserialize(config, custom_objects=None):
    """An optimizer from its serialized dict; built-in class names match case-insensitively, as in Keras."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret optimizer identifier: {config!r}")
    cls = None if config.get("registered_name") else BUILTINS.get(str(config["class_name"]).lower())
    if cls is None:
        name = config.get("registered_name") or config["class_name"]
        cls = {**registered("optimizers"), **(custom_objects or {})}.get(name)
    if cls is None:
        return get_from_registry("optimizers", config, custom_objects=custom_objects)
    return cls.from_config(dict(config.get("config", {})), custom_objects=custom_objects)


def get(identifier):
    """An optimizer from a name ('adam', 'SGD', ...), a config dict, a class or an instance."""
    if identifier is None or isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Optimizer):
        return identifier()
    if isinstance(identifier, str):
        cls = BUILTINS.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. "
                             f"Known optimizers: {', '.join(sorted(BUILTINS))}.")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. Pass a name "
                     f"({', '.join(sorted(BUILTINS))}), a config dict, an Optimizer class or instance.")


__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "Adagrad", "schedules", "get", "serialize",
           "deserialize"]
