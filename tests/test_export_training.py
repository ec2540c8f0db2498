"""export_c(training=True): a C program fine-tunes the model with <name>_train_step and reaches the weights
the same steps give in Python; the weights it saves load back into the Python model."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.export import load_weights
from export_util import cmake_build, needs_cmake, run

pytestmark = needs_cmake
C_TESTS = Path(__file__).resolve().parent / "c" / "export"


def classifier(optimizer):
    graphc.utils.set_random_seed(11)
    x = graphc.Input((6,), name="features")
    h = layers.Dense(8, activation="relu")(x)
    h = layers.BatchNormalization()(h)
    h = layers.Dropout(0.25)(h)
    model = graphc.Model(x, layers.Dense(3, activation="softmax")(h), name="net")
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def build_trainer(tmp_path, model, weights="embedded"):
    pkg = graphc.export_c(model, tmp_path / "net", name="net", training=True, weights=weights)
    (tmp_path / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(train C)
add_subdirectory("{pkg}" net)
add_executable(train_steps "{C_TESTS / 'train_steps.c'}")
set_target_properties(train_steps PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
target_compile_options(train_steps PRIVATE -Wall -Wextra -pedantic)
target_link_libraries(train_steps PRIVATE net_static)
""")
    log = cmake_build(tmp_path, tmp_path / "build")
    assert "warning" not in log.lower(), log
    return pkg, tmp_path / "build" / "train_steps"


@pytest.mark.parametrize("optimizer", [lambda: graphc.optimizers.Adam(learning_rate=0.01),
                                       lambda: graphc.optimizers.SGD(learning_rate=0.1, momentum=0.9),
                                       lambda: graphc.optimizers.SGD(learning_rate=0.1)],
                         ids=["adam", "sgd_momentum", "sgd"])  # (plain SGD keeps no state: fill() went unused)
def test_steps_in_c_match_the_same_steps_in_python(tmp_path, optimizer):
    model = classifier(optimizer())
    initial = model.get_weights()
    pkg, exe = build_trainer(tmp_path, model)
    header = (pkg / "net.h").read_text()
    assert "net_train_step" in header and "#define NET_TARGET0_SAMPLE_ELEMENTS 1 " in header

    rng = np.random.default_rng(0)
    steps, batch = 6, 5
    xs = rng.normal(size=(steps, batch, 6)).astype("float32")
    ys = rng.integers(0, 3, (steps, batch)).astype("int32")
    (tmp_path / "data.bin").write_bytes(b"".join(x.tobytes() + y.tobytes() for x, y in zip(xs, ys)))
    out = run([exe, tmp_path / "data.bin", steps, batch, tmp_path / "trained.weights"]).stdout.splitlines()
    assert out[0] == "uninitialised: 1"
    c_losses = [float(line.split()[1]) for line in out if line.startswith("loss ")]
    assert out[-2] == f"iterations {steps}" and out[-1].startswith("predict 0 ")

    py_losses = [model.train_on_batch(x, y)[0] for x, y in zip(xs, ys)]  # the same steps, same Dropout masks
    trained = model.get_weights()
    np.testing.assert_allclose(c_losses, py_losses, rtol=1e-4, atol=1e-5)

    model.set_weights(initial)
    assert not np.allclose(model.get_weights()[0], trained[0])
    load_weights(model, tmp_path / "trained.weights")  # what C saved, back in Python
    for got, want in zip(model.get_weights(), trained):
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(float(out[-1].split()[2]), model.predict(xs[-1])[0, 0], atol=1e-5, rtol=1e-5)


def test_training_export_needs_a_compiled_model_and_a_constant_learning_rate(tmp_path):
    x = graphc.Input((3,))
    model = graphc.Model(x, layers.Dense(2)(x))
    with pytest.raises(ValueError, match="not compiled; call model.compile"):
        graphc.export_c(model, tmp_path / "a", training=True)
    schedule = graphc.optimizers.schedules.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9)
    model.compile(optimizer=graphc.optimizers.SGD(learning_rate=schedule), loss="mse")
    with pytest.raises(ValueError, match="constant learning rate"):
        graphc.export_c(model, tmp_path / "a", training=True)
    assert not (tmp_path / "a").exists()


def test_load_weights_refuses_another_models_file(tmp_path):
    model = classifier("adam")
    pkg = graphc.export_c(model, tmp_path / "pkg", name="net", weights="file")
    other = graphc.Model(model.inputs[0], layers.Dense(2)(model.inputs[0]))
    with pytest.raises(ValueError, match="different model"):
        load_weights(other, pkg / "net.weights")
    before = model.get_weights()
    load_weights(model, pkg / "net.weights")
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
