"""Model, Sequential, saving and loading."""
from .functional import Model, Functional  # noqa: F401
from .sequential import Sequential  # noqa: F401
from .saving import load_model, model_from_json, save_model  # noqa: F401
from .cloning import clone_model  # noqa: F401
