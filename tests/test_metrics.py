"""Metrics: per-batch sums with graphc.ops (traced or eager), Keras's weighted-mean accumulation, numbers
vs NumPy written here and vs Keras 3 goldens (tools/make_loss_goldens.py), 'accuracy' resolution, lookup."""
import json
import os

import numpy as np
import pytest

import graphc.losses as L
import graphc.metrics as M
from graphc import ops
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.tracing import Tensor, tracing

GOLDENS = os.path.join(os.path.dirname(__file__), "goldens_train", "metrics.npz")
TOL = dict(rtol=1e-5, atol=1e-5)

Z = np.load(GOLDENS)
META = json.loads(str(Z["index"]))
CASES = [c for c in META["cases"] if c["case"] != "mean"]


def _get(z, key):
    return z[key] if key in z else None


# --- Keras goldens -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", CASES, ids=[c["case"] for c in CASES])
def test_metric_matches_keras(entry):
    case = entry["case"]
    m = M.deserialize({"class_name": entry["class_name"], "config": entry["config"]})
    for i in range(entry["batches"]):
        m.update_state(Z[f"{case}/y_true{i}"], Z[f"{case}/y_pred{i}"],
                       sample_weight=_get(Z, f"{case}/sample_weight{i}"))
    np.testing.assert_allclose(m.result(), Z[f"{case}/result"], **TOL)
    if entry["function"]:
        kwargs = {k: v for k, v in entry["config"].items() if k in ("threshold", "k", "from_sorted_ids")}
        got = getattr(M, entry["function"])(Z[f"{case}/y_true0"], Z[f"{case}/y_pred0"], **kwargs)
        np.testing.assert_allclose(got, Z[f"{case}/per_sample"], **TOL)


def test_mean_matches_keras_fed_like_the_trainer():
    m = M.Mean()
    for i in range(META["cases"][-1]["feeds"]):
        m.update_state(Z[f"mean/values{i}"], sample_weight=_get(Z, f"mean/sample_weight{i}"))
    np.testing.assert_allclose(m.result(), Z["mean/result"], **TOL)


@pytest.mark.parametrize("combo", META["accuracy_resolution"], ids=lambda c: f"{c['y_true']}-{c['y_pred']}")
def test_accuracy_and_crossentropy_resolve_like_keras_compile(combo):
    m = M.get("acc", y_true_shape=tuple(combo["y_true"]), y_pred_shape=tuple(combo["y_pred"]))
    assert type(m).__name__ == combo["metric"] and m.name == combo["name"] == "acc"
    loss = L.get("ce", tuple(combo["y_true"]), tuple(combo["y_pred"]))
    assert loss.fn.__name__ == combo["loss"]


def test_top_k_goldens_contain_ties_and_non_finite_scores():
    scores = Z["top_k/y_pred1"]
    assert not np.isfinite(scores).all()
    assert any(len(np.unique(row)) < len(row) for row in Z["top_k/y_pred0"])


# --- independent NumPy checks -------------------------------------------------------------------------------------
def test_weighted_mean_semantics(rng):
    """total = sum(value * weight), count = sum(weight); result = total / count over all batches."""
    m = M.MeanAbsoluteError()
    totals, counts = 0.0, 0.0
    for n in (4, 7):
        t, p = rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 3)).astype("float32")
        w = rng.uniform(0, 2, size=(n,)).astype("float32")
        m.update_state(t, p, sample_weight=w)
        totals += (np.abs(t - p).mean(-1) * w).sum()
        counts += w.sum()
    np.testing.assert_allclose(m.result(), totals / counts, **TOL)
    m.reset_state()
    assert m.result() == 0.0  # nothing seen (count 0) gives 0, as Keras
    m.update_state(np.ones((3, 2)), np.zeros((3, 2)))  # unweighted: count = the number of samples
    assert (m.total, m.count) == (3.0, 3.0)


def test_weights_broadcast_to_the_values_before_they_are_counted():
    # Keras broadcasts the weights to the values' shape, so a single weight counts once per sample
    m = M.Mean()
    m.update_state(np.array([1.0, 2.0, 3.0, 4.0]), sample_weight=np.array([2.0]))
    assert (m.total, m.count, m.result()) == (20.0, 8.0, 2.5)
    m = M.MeanSquaredError()
    m.update_state(np.ones((4, 3)), np.zeros((4, 3)), sample_weight=np.array([[0.5]]))
    assert (m.count, m.result()) == (2.0, 1.0)


def test_accuracy_functions_against_numpy(rng):
    probs = rng.uniform(0, 1, size=(10, 4)).astype("float32")
    labels = rng.integers(0, 4, size=(10,))
    np.testing.assert_allclose(M.sparse_categorical_accuracy(labels, probs), probs.argmax(-1) == labels)
    np.testing.assert_allclose(M.categorical_accuracy(np.eye(4)[labels], probs), probs.argmax(-1) == labels)
    bits = (rng.uniform(size=(10, 4)) > 0.5).astype("float32")
    np.testing.assert_allclose(M.binary_accuracy(bits, probs, threshold=0.3), bits == (probs > 0.3))


def test_top_k_counts_ties_at_the_boundary_and_rejects_non_finite_rows():
    scores = np.array([[0.5, 0.2, 0.2, 0.1],    # label 1 ties with class 2 for 2nd place: in the top 2
                       [0.3, 0.3, 0.3, 0.1],    # label 3: three classes higher -> not in the top 2
                       [0.1, 0.4, 0.4, 0.4],    # label 0 scores lowest: 3 higher
                       [np.nan, 0.9, 0.0, 0.0],  # a NaN anywhere in the row: False (TensorFlow's in_top_k)
                       [0.1, np.inf, 0.0, 0.0]], "float32")
    labels = np.array([1, 3, 0, 1, 0])
    np.testing.assert_allclose(M.sparse_top_k_categorical_accuracy(labels, scores, k=2), [1, 0, 0, 0, 0])
    np.testing.assert_allclose(M.top_k_categorical_accuracy(np.eye(4)[labels], scores, k=4), [1, 1, 1, 0, 0])
    # a class id outside [0, num_classes) is never in the top k
    np.testing.assert_allclose(M.sparse_top_k_categorical_accuracy([7], scores[:1], k=5), [0])


# --- traced path --------------------------------------------------------------------------------------------------
def test_graph_sums_trace_with_a_symbolic_batch(rng):
    metric = M.get("accuracy", loss=L.SparseCategoricalCrossentropy())
    assert isinstance(metric, M.SparseCategoricalAccuracy) and metric.name == "accuracy"
    b = GraphBuilder()
    with tracing(b):
        t = Tensor(b.input("y_true", TensorType((None,), "int32")))
        p = Tensor(b.input("y_pred", TensorType((None, 5))))
        w = Tensor(b.input("w", TensorType((None,))))
        total, count = metric.graph_sums(t, p, w)
        assert total.shape == () and count.shape == ()
        graph = b.finish([total.value, count.value])
    assert {"argmax", "equal", "reduce_sum"} <= {op.kind for op in graph.ops}
    for n in (1, 6):
        labels = rng.integers(0, 5, size=(n,)).astype("int32")
        probs = rng.uniform(size=(n, 5)).astype("float32")
        weights = rng.uniform(0, 2, size=(n,)).astype("float32")
        total, count = reference.run(graph, dict(zip([v.id for v in graph.inputs], (labels, probs, weights))), {})
        np.testing.assert_allclose(total, ((probs.argmax(-1) == labels) * weights).sum(), **TOL)
        np.testing.assert_allclose(count, weights.sum(), **TOL)
        metric.accumulate(total, count)
    assert 0.0 <= metric.result() <= 1.0


def test_unweighted_count_is_the_symbolic_batch_size():
    b = GraphBuilder()
    with tracing(b):
        v = Tensor(b.input("values", TensorType((None, 3))))
        total, count = M.Mean().graph_sums(v)
        graph = b.finish([total.value, count.value])
    values = np.arange(12, dtype="float32").reshape(4, 3)
    total, count = reference.run(graph, {graph.inputs[0].id: values}, {})
    assert count == 4.0 and total == values.mean(-1).sum()


# --- lookup, names, configs -------------------------------------------------------------------------------------
def test_get_names_and_wrapping():
    assert M.get("mae").name == "mae" and isinstance(M.get("mae"), M.MeanAbsoluteError)
    assert isinstance(M.get("Accuracy", y_true_shape=(8, 1), y_pred_shape=(None, 1)), M.BinaryAccuracy)
    assert isinstance(M.get("accuracy", loss=L.get("categorical_crossentropy")), M.CategoricalAccuracy)
    assert isinstance(M.get("acc", loss=L.BinaryCrossentropy()), M.BinaryAccuracy)
    assert isinstance(M.get("top_k_categorical_accuracy"), M.TopKCategoricalAccuracy)
    m = M.TopKCategoricalAccuracy(k=3, name="top3")
    assert M.get(m) is m and m.name == "top3"

    def within_half(y_true, y_pred):
        return ops.cast(ops.less(ops.abs(y_true - y_pred), 0.5), "float32")
    wrapped = M.get(within_half)
    assert isinstance(wrapped, M.MeanMetricWrapper) and wrapped.name == "within_half"
    wrapped.update_state(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.1, 1.9, 2.2, 3.0]))
    assert wrapped.result() == np.float32(0.75)


def test_unknown_metric_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        M.get("acuracy")
    assert "'acuracy'" in str(e.value) and "sparse_categorical_accuracy" in str(e.value)
    with pytest.raises(ValueError, match="received `None`"):
        M.get(None)


def test_configs_have_keras_keys_and_round_trip():
    assert M.BinaryAccuracy().get_config() == {"name": "binary_accuracy", "dtype": "float32", "threshold": 0.5}
    assert M.SparseTopKCategoricalAccuracy(k=3).get_config() == {
        "name": "sparse_top_k_categorical_accuracy", "dtype": "float32", "k": 3}
    assert M.CategoricalAccuracy().get_config() == {"name": "categorical_accuracy", "dtype": "float32"}
    s = M.serialize(M.TopKCategoricalAccuracy(k=2))
    assert s["module"] == "keras.metrics" and s["class_name"] == "TopKCategoricalAccuracy"
    back = M.deserialize(s)
    assert isinstance(back, M.TopKCategoricalAccuracy) and back.k == 2
    w = M.deserialize(M.serialize(M.MeanMetricWrapper(M.binary_accuracy, name="ba", threshold=0.3)))
    assert w._fn is M.binary_accuracy and w._fn_kwargs == {"threshold": 0.3} and w.name == "ba"
