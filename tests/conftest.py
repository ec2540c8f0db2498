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


@pytest.fixture(autouse=True, scope="session")
def _graphc_cache(tmp_path_factory):
    """One compile cache for the whole run, outside the user's home (unless GRAPHC_CACHE_DIR is set)."""
    import os
    if "GRAPHC_CACHE_DIR" not in os.environ:
        os.environ["GRAPHC_CACHE_DIR"] = str(tmp_path_factory.mktemp("graphc-cache"))
    yield
