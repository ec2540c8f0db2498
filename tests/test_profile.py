"""Model.profile: the compiled program's twin with a timer per op (graphc/runtime/profile.py, generate_c's
profile option)."""
from __future__ import annotations

import re

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.codegen.generate import generate_c


def small_model(name="dense_a"):
    model = graphc.Sequential([graphc.Input((12,)), layers.Dense(16, activation="relu", name=name),
                               layers.Dropout(0.5), layers.Dense(4, activation="softmax", name="head")])
    model.set_weights([np.random.default_rng(k).uniform(-0.5, 0.5, w.shape).astype("float32")
                       for k, w in enumerate(model.get_weights())])
    return model


def data(n=5):
    rng = np.random.default_rng(0)
    return rng.uniform(-1, 1, (n, 12)).astype("float32"), rng.integers(0, 4, n)


def test_inference_profile_times_each_op_of_the_compiled_program():
    model = small_model()
    x, _ = data()
    before = model.predict(x, verbose=0)
    profile = model.profile(x, runs=7, warmup=2)
    assert (profile.runs, profile.batch) == (7, 5)  # the warm-up's calls are not counted
    assert [label.split(":")[0] for label, _ in profile.rows] == ["dense_a", "head", "head", "graph outputs"]
    assert all(ms >= 0 for _, ms in profile.rows) and profile.total_ms > 0
    # every timer runs inside the call Python times: the sum of the rows cannot exceed it
    assert profile.total_ms <= profile.call_ms
    assert profile.top(1)[0][1] == max(ms for _, ms in profile.rows)
    table = str(profile)
    assert "model 'sequential" in table.splitlines()[0] and "dense_a: dense(" in table
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)


def test_training_profile_runs_on_copies_of_the_weights_and_optimizer_state():
    model = small_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = data()
    weights = [w.copy() for w in model.get_weights()]
    profile = model.profile(x, y, training=True, runs=3, warmup=1)
    assert profile.runs == 3 and profile.title.startswith("train step of model")
    labels = [label for label, _ in profile.rows]
    assert any(label.startswith("dense_a (backward): matmul(") for label in labels)
    assert any("fused]" in label for label in labels)  # Adam's update: one loop of many ops
    assert profile.total_ms <= profile.call_ms
    for a, b in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(model.optimizer.iterations) == 0
    slots = [v for v in model.optimizer.variables if v.path.endswith(("momentum", "velocity"))]
    assert len(slots) == 8 and not any(np.any(v.value) for v in slots)
    model.train_on_batch(x, y)  # the model's own step is unaffected
    assert int(model.optimizer.iterations) == 1


def test_profile_errors_name_what_is_missing():
    model = small_model()
    x, y = data()
    with pytest.raises(ValueError, match=r"call compile\(\) before profile with training=True$"):
        model.profile(x, y, training=True)
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match="targets"):
        model.profile(x, training=True)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="runs must be a positive integer"):
            model.profile(x, runs=bad)
    with pytest.raises(ValueError, match="warmup"):
        model.profile(x, warmup=-1)
    with pytest.raises(ValueError, match="incompatible"):
        model.profile(np.zeros((2, 3), "float32"))


def test_labels_from_user_names_reach_the_c_source_only_as_comments():
    model = small_model(name="a*/ b\\??/x")
    x, _ = data()
    profile = model.profile(x, runs=1, warmup=0)
    assert profile.rows[0][0].startswith("a* / b/? ?/x: dense(")  # as the C comment has it
    source = generate_c(model._inference_graph([x])[1], profile=True).source
    assert "a*/ b" not in source and "??" not in source and "a* / b/? ?/x: dense(" in source


def test_programs_compiled_without_profile_carry_no_timers():
    model = small_model()
    graph = model._inference_graph([data()[0]])[1]
    plain, timed = generate_c(graph), generate_c(graph, profile=True)
    assert "profile" not in plain.source and "profile" not in plain.cdef and plain.profile_labels == ()
    assert len(re.findall(r"_profile_mark\(\d+, profile_t\)", timed.source)) == len(timed.profile_labels) == 4
    assert "_profile_take(double *seconds)" in timed.cdef
    with pytest.raises(ValueError, match="without profile=True"):
        model._compiled([data()[0]]).take_profile()
