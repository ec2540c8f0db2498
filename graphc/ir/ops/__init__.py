"""Importing this package registers every IR op."""
from . import elementwise, linalg, shape, reduce, nn  # noqa: F401
