"""Training equivalence with Keras 3: from identical weights, one epoch of fit (shuffle off) with SGD
(momentum) and with Adam gives the same weights (atol 1e-4) and the same logs as Keras did
(tests/goldens_train/fit_*.npz, written by tools/make_train_goldens.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
import train_cases

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens_train")


def _load(case, opt):
    with np.load(os.path.join(GOLDEN_DIR, f"fit_{case}_{opt}.npz")) as g:
        return dict(g)


def _numbered(golden, prefix):
    out, i = [], 0
    while f"{prefix}{i}" in golden:
        out.append(golden[f"{prefix}{i}"])
        i += 1
    return out


def _named(golden, prefix):
    return {k[len(prefix):]: v for k, v in golden.items() if k.startswith(prefix)}


@pytest.mark.parametrize("opt", sorted(train_cases.OPTIMIZERS))
@pytest.mark.parametrize("case", sorted(train_cases.CASES))
def test_one_epoch_matches_keras(case, opt):
    golden = _load(case, opt)
    model = train_cases.CASES[case][0](graphc)
    model.set_weights(_numbered(golden, "w"))
    model.compile(**train_cases.compile_args(graphc, case, opt))
    xs, ys = _named(golden, "x_"), _named(golden, "y_")
    x = xs if len(xs) > 1 else next(iter(xs.values()))
    y = ys if len(ys) > 1 else next(iter(ys.values()))
    history = model.fit(x, y, batch_size=train_cases.BATCH, epochs=1, shuffle=False, verbose=0)
    for w, (got, exp) in enumerate(zip(model.get_weights(), _numbered(golden, "final"))):
        np.testing.assert_allclose(got, exp, atol=1e-4, rtol=1e-4, err_msg=f"{case}/{opt}: weight {w} after one epoch")
    logs = _named(golden, "log_")
    assert sorted(history.history) == sorted(logs)
    for key, value in logs.items():
        np.testing.assert_allclose(history.history[key][-1], value, rtol=1e-4, atol=1e-5, err_msg=f"{case}/{opt}: {key}")
