"""Keras 2 module path (``from keras.layers.merge import concatenate``, used by the seeds)."""
from .merging import (Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract, add,  # noqa: F401
                      average, concatenate, maximum, minimum, multiply, subtract)
