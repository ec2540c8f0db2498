"""Datasets in Keras's `keras.datasets` style, read only from local files (graphc never downloads).

- `mnist.load_data(path="mnist.npz")`: Keras's mnist.npz or the four original IDX files.
- `digits.load_data(test_split=0.25, seed=0)`: scikit-learn's bundled 8x8 digits, split by seed.
"""
from . import digits, mnist  # noqa: F401
