"""graphc against real Keras 3: every case of golden_cases.py, built with graphc, loaded with the weights
Keras used, must reproduce the outputs Keras computed (tests/goldens/*.npz, written by
tools/make_goldens.py). Keras is not needed here."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from golden_cases import BATCH_SIZES, CASES

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens")


def load_golden(name):
    with np.load(os.path.join(GOLDEN_DIR, f"{name}.npz")) as data:
        return dict(data)


def count(golden, prefix, suffix=""):
    """How many arrays are stored as <prefix>0<suffix>, <prefix>1<suffix>, ..."""
    n = 0
    while f"{prefix}{n}{suffix}" in golden:
        n += 1
    return n


def test_every_case_has_a_golden_and_no_golden_is_stale():
    files = {f[:-len(".npz")] for f in os.listdir(GOLDEN_DIR) if f.endswith(".npz")}
    assert sorted(set(CASES) - files) == [], "run tools/make_goldens.py with the Keras venv"
    assert sorted(files - set(CASES)) == []
    total = sum(os.path.getsize(os.path.join(GOLDEN_DIR, f)) for f in os.listdir(GOLDEN_DIR))
    assert total < 2 * 1024 * 1024


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_keras(name):
    golden = load_golden(name)
    build = CASES[name]
    model = build(graphc)

    weights = [golden[f"w{i}"] for i in range(count(golden, "w"))]
    assert [tuple(w.shape) for w in model.get_weights()] == [w.shape for w in weights], \
        "weight shapes/order differ from Keras's get_weights()"
    model.set_weights(weights)

    for batch in BATCH_SIZES:
        inputs = [golden[f"in{j}_b{batch}"] for j in range(len(build.feeds))]
        expected = [golden[f"out{j}_b{batch}"] for j in range(count(golden, "out", f"_b{batch}"))]
        got = model.predict(inputs if len(inputs) > 1 else inputs[0])
        got = list(got) if isinstance(got, (list, tuple)) else [got]
        assert len(got) == len(expected), f"{len(got)} outputs, Keras has {len(expected)}"
        for j, (g, e) in enumerate(zip(got, expected)):
            g = np.asarray(g)
            assert g.shape == e.shape, f"output {j} at batch {batch}: shape {g.shape}, Keras {e.shape}"
            np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}: output {j} at batch size {batch}")
