"""Model, Sequential, saving and loading."""
from .functional import Model, Functional  # noqa: F401
from .sequential import Sequential  # noqa: F401
