"""Saving, loading and custom objects, under Keras 3's ``keras.saving`` names.

``@register_keras_serializable(package)`` makes a custom layer, loss, metric, activation or any class with
``get_config`` load without ``custom_objects``: it is saved under ``"package>Name"``, as Keras saves it, so a
``.keras`` file moves between Keras and graphc when both sides register the class under the same name.
"""
from .models.saving import load_model, load_weights, save_model, save_weights  # noqa: F401
from .serialization import (CustomObjectScope, custom_object_scope, deserialize_keras_object,  # noqa: F401
                            get_custom_objects, get_registered_name, get_registered_object,
                            register_keras_serializable, serialize_keras_object)
