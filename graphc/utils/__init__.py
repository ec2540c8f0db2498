"""Utilities: to_categorical, plot_model, set_random_seed, and the custom-object registry (as keras.utils)."""
from __future__ import annotations

import numpy as np

from .progbar import Progbar  # noqa: F401
from .random import set_random_seed  # noqa: F401
from ..serialization import (CustomObjectScope, custom_object_scope, deserialize_keras_object,  # noqa: F401
                             get_custom_objects, get_registered_name, get_registered_object,
                             register_keras_serializable, serialize_keras_object)


def to_categorical(x, num_classes=None):
    """Class indices -> one-hot float32 rows (a trailing axis of size 1 is dropped, as in Keras)."""
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.all(x == np.round(x)):
            raise ValueError("to_categorical expects integer class indices, received non-integer values")
    x = x.astype("int64")
    if x.ndim > 1 and x.shape[-1] == 1:
        x = x.reshape(x.shape[:-1])
    if x.size and x.min() < 0:
        raise ValueError(f"to_categorical: class indices must be >= 0, received {int(x.min())}")
    n = int(x.max()) + 1 if num_classes is None else int(num_classes)
    if x.size and x.max() >= n:
        raise ValueError(f"to_categorical: class index {int(x.max())} is out of range for num_classes={n}")
    out = np.zeros(x.shape + (n,), dtype="float32")
    np.put_along_axis(out, x[..., None], 1.0, axis=-1)
    return out
from .plot import plot_model, model_to_dot  # noqa: F401
