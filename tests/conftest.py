import numpy as np
import pytest

import graphc


@pytest.fixture(autouse=True)
def _fresh_names():
    """Each test starts with Keras's automatic names (dense, dense_1, ...) reset."""
    graphc.layers.clear_session()
    graphc.utils.set_random_seed(1234)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(0)
