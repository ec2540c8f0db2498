"""The global random generator behind unseeded initializers."""
from __future__ import annotations

import numpy as np

_rng = np.random.default_rng()


def global_rng() -> np.random.Generator:
    return _rng


def set_random_seed(seed: int) -> None:
    """Seed graphc's global generator (unseeded initializers draw from it), like keras.utils.set_random_seed."""
    global _rng
    _rng = np.random.default_rng(seed)
