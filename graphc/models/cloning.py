"""clone_model: the same architecture with new layers and freshly initialized weights (keras.models.clone_model)."""
from __future__ import annotations


def clone_model(model, input_tensors=None, clone_function=None, **kwargs):
    """A new model of ``model``'s architecture (Sequential or Functional, custom layers included): new layers,
    new weights drawn by their initializers, not compiled. Copy the weights with ``set_weights`` if wanted."""
    if input_tensors is not None or clone_function is not None or kwargs:
        given = [k for k, v in (("input_tensors", input_tensors), ("clone_function", clone_function)) if v is not None]
        raise ValueError(f"clone_model: {given + sorted(kwargs)} not supported by graphc yet; it clones the whole "
                         "model with new weights")
    classes = {}

    def collect(layer):
        classes.setdefault(type(layer).__name__, type(layer))
        for sub in list(getattr(layer, "layers", [])) + list(layer._sublayers):
            collect(sub)

    collect(model)
    return type(model).from_config(model.get_config(), custom_objects=classes)
