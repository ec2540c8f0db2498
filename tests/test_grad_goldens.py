"""graphc's gradients against real Keras 3: for every case of golden_cases.py, dL/dw and dL/dx of
L = sum(outputs * r), with the weights and inputs of the forward goldens (tests/goldens_grad/*.npz, written
by tools/make_grad_goldens.py with tf.GradientTape). Compiled C, batch 1 and an odd batch."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from golden_cases import BATCH_SIZES, CASES
from graphc.training.gradients import model_gradients
from test_goldens import count, load_golden

GRAD_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens_grad")


def test_every_case_has_a_gradient_golden():
    files = {f[:-len(".npz")] for f in os.listdir(GRAD_DIR) if f.endswith(".npz")}
    assert sorted(set(CASES) - files) == [], "run tools/make_grad_goldens.py with the Keras venv"
    assert sorted(files - set(CASES)) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_match_keras(name):
    golden = load_golden(name)
    with np.load(os.path.join(GRAD_DIR, f"{name}.npz")) as g:
        grads = dict(g)
    build = CASES[name]
    model = build(graphc)
    model.set_weights([golden[f"w{i}"] for i in range(count(golden, "w"))])
    for batch in BATCH_SIZES:
        inputs = [golden[f"in{j}_b{batch}"] for j in range(len(build.feeds))]
        rs = [grads[f"r{k}_b{batch}"] for k in range(count(grads, "r", f"_b{batch}"))]
        w_grads, x_grads = model_gradients(model, inputs if len(inputs) > 1 else inputs[0], rs)
        expected_w = [grads[f"gw{i}_b{batch}"] for i in range(count(grads, "gw", f"_b{batch}"))]
        assert len(w_grads) == len(expected_w), "trainable weights differ from Keras's"
        for i, (got, exp) in enumerate(zip(w_grads, expected_w)):
            scale = max(1.0, float(np.abs(exp).max()))
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-4 * scale,
                                       err_msg=f"{name}: d/d{model.trainable_weights[i].path} at batch {batch}")
        expected_x = [grads[f"gx{j}_b{batch}"] for j in range(count(grads, "gx", f"_b{batch}"))]
        got_x = [g for g in x_grads if g is not None]
        assert len(got_x) == len(expected_x)
        for j, (got, exp) in enumerate(zip(got_x, expected_x)):
            scale = max(1.0, float(np.abs(exp).max()))
            np.testing.assert_allclose(got, exp, rtol=1e-4, atol=1e-4 * scale,
                                       err_msg=f"{name}: d/d input {j} at batch {batch}")
