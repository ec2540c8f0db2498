"""scikit-learn's bundled 8x8 handwritten digits (1797 images, pixel values 0..16) as a Keras-style split.

A small real image data set that needs no download: it ships inside the scikit-learn package.
"""
from __future__ import annotations

import gzip
import importlib.util
import numbers
import os

import numpy as np

NUM_IMAGES = 1797


def load_data(test_split=0.25, seed=0):
    """Return `((x_train, y_train), (x_test, y_test))`: uint8 images (n, 8, 8) with values 0..16
    and uint8 labels 0..9.

    The split is stratified (each digit keeps its share in both parts) and shuffled; the test part
    has ceil(test_split * 1797) images. The same `seed` gives the same split; `seed=None` a random one.
    """
    if not isinstance(test_split, numbers.Real) or not 0 <= test_split < 1:
        raise ValueError(f"digits.load_data: test_split must be in [0, 1), received {test_split!r}")
    x, y = _load_all()
    train, test = _stratified_split(y, test_split, np.random.default_rng(seed))
    return (x[train], y[train]), (x[test], y[test])


def _load_all():
    spec = importlib.util.find_spec("sklearn")  # finds the package without importing it
    if spec is None:
        raise ImportError("graphc.datasets.digits needs scikit-learn, which ships the digits data: "
                          "pip install scikit-learn")
    data = None
    for root in spec.submodule_search_locations or ():
        csv = os.path.join(root, "datasets", "data", "digits.csv.gz")
        if os.path.isfile(csv):
            data = _read_csv(csv)
            break
    if data is None:
        # Another layout of the package: let scikit-learn read its own file.
        from sklearn.datasets import load_digits
        d = load_digits()
        data = np.column_stack([d.data, d.target])
    return _check(data)


def _read_csv(filename):
    """Rows of 64 pixel values then the label, as scikit-learn stores them; None if unparsable."""
    try:
        with gzip.open(filename, "rt") as f:
            return np.loadtxt(f, delimiter=",", ndmin=2)
    except (ValueError, OSError, EOFError):
        return None


def _check(data):
    data = np.asarray(data, dtype=np.float64)
    if data.shape != (NUM_IMAGES, 65) or np.any(data != np.round(data)):
        raise ValueError(f"scikit-learn's digits data has an unexpected form: shape {data.shape}, "
                         f"expected ({NUM_IMAGES}, 65) integers")
    x, y = data[:, :64], data[:, 64]
    if x.min() < 0 or x.max() > 16 or y.min() < 0 or y.max() > 9:
        raise ValueError("scikit-learn's digits data is out of range: pixels must be 0..16, labels 0..9")
    return x.astype(np.uint8).reshape(-1, 8, 8), y.astype(np.uint8)


def _stratified_split(y, test_split, rng):
    n = len(y)
    n_test = int(np.ceil(test_split * n))
    classes, counts = np.unique(y, return_counts=True)
    # Per-class test quotas summing exactly to n_test: floor of the share, then the largest remainders.
    share = counts * n_test / n
    quota = np.floor(share).astype(int)
    extra = np.argsort(-(share - quota), kind="stable")[: n_test - quota.sum()]
    quota[extra] += 1
    train, test = [], []
    for c, q in zip(classes, quota):
        idx = rng.permutation(np.flatnonzero(y == c))
        test.append(idx[:q])
        train.append(idx[q:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))
