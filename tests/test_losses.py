"""Losses: numbers vs NumPy formulas written here and vs Keras 3 goldens (tools/make_loss_goldens.py),
the traced path (ops only, symbolic batch), target checks, lookup and configs."""
import json
import os
import warnings

import numpy as np
import pytest

import graphc.losses as L
from graphc import ops
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.tracing import Tensor, eager, tracing

GOLDENS = os.path.join(os.path.dirname(__file__), "goldens_train", "losses.npz")
TOL = dict(rtol=1e-5, atol=1e-5)
EPS = 1e-7


def _load():
    z = np.load(GOLDENS)
    return z, json.loads(str(z["index"]))


Z, INDEX = _load()


def _sw(case):
    key = f"{case}/sample_weight"
    return Z[key] if key in Z else None


def _loss(entry):
    return L.deserialize({"class_name": entry["class_name"], "config": entry["config"]})


def _prediction(entry, fn):
    """Run fn(y_true, y_pred, sample_weight) in one graph; for the activation cases y_pred is the
    softmax/sigmoid of the stored logits inside that graph (as a model's last layer would give it)."""
    case = entry["case"]
    if entry["activation"]:
        act = getattr(ops, entry["activation"])
        return eager(lambda t, x, w: fn(t, act(x), w), Z[f"{case}/y_true"], Z[f"{case}/x"], _sw(case))
    return fn(Z[f"{case}/y_true"], Z[f"{case}/y_pred"], _sw(case))


# --- Keras goldens -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("entry", INDEX, ids=[e["case"] for e in INDEX])
def test_loss_matches_keras(entry):
    loss = _loss(entry)
    got = _prediction(entry, lambda t, p, w: loss(t, p, sample_weight=w))
    expected = Z[f"{entry['case']}/value"]
    assert np.shape(got) == expected.shape
    np.testing.assert_allclose(got, expected, **TOL)


@pytest.mark.parametrize("entry", [e for e in INDEX if f"{e['case']}/per_sample" in Z],
                         ids=[e["case"] for e in INDEX if f"{e['case']}/per_sample" in Z])
def test_loss_function_matches_keras(entry):
    fn = getattr(L, entry["function"])
    got = _prediction(entry, lambda t, p, w: fn(t, p, **entry["fn_kwargs"]))
    np.testing.assert_allclose(got, Z[f"{entry['case']}/per_sample"], **TOL)


def test_goldens_exercise_clipping_and_the_logits_shortcut():
    # the same saturated softmax gives a different loss through its logits than through clipped probabilities
    assert abs(float(Z["cce_softmax_out/value"]) - float(Z["cce_softmax_probs/value"])) > 0.1
    assert Z["bce_probs/y_pred"].min() == 0.0 and Z["bce_probs/y_pred"].max() == 1.0


# --- independent NumPy formulas --------------------------------------------------------------------------------
def np_bce(t, p):
    p = np.clip(p, EPS, 1 - EPS)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p)).mean(-1)


def np_bce_logits(t, x):
    return (np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))).mean(-1)


def np_cce(t, p):
    p = np.clip(p / p.sum(-1, keepdims=True), EPS, 1 - EPS)
    return -(t * np.log(p)).sum(-1)


def np_log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def np_huber(t, p, delta):
    e = np.abs(p - t)
    return np.where(e <= delta, 0.5 * e ** 2, delta * e - 0.5 * delta ** 2).mean(-1)


@pytest.fixture
def batch(rng):
    t = rng.normal(size=(6, 4)).astype("float32")
    p = rng.normal(size=(6, 4)).astype("float32")
    probs = rng.uniform(0, 1, size=(6, 4)).astype("float32")
    probs[0, 0], probs[1, 1] = 0.0, 1.0
    labels = rng.integers(0, 4, size=(6,)).astype("int32")
    return dict(t=t, p=p, probs=probs, bits=(t > 0).astype("float32"), labels=labels,
                onehot=np.eye(4, dtype="float32")[labels], sw=rng.uniform(0, 2, size=(6,)).astype("float32"))


def test_functions_match_numpy_formulas(batch):
    b = batch
    np.testing.assert_allclose(L.mean_squared_error(b["t"], b["p"]), ((b["t"] - b["p"]) ** 2).mean(-1), **TOL)
    np.testing.assert_allclose(L.mean_absolute_error(b["t"], b["p"]), np.abs(b["t"] - b["p"]).mean(-1), **TOL)
    np.testing.assert_allclose(L.huber(b["t"], b["p"], delta=0.7), np_huber(b["t"], b["p"], 0.7), **TOL)
    tp, pp = np.clip(b["probs"][::-1], EPS, 1), np.clip(b["probs"], EPS, 1)
    np.testing.assert_allclose(L.kl_divergence(b["probs"][::-1], b["probs"]), (tp * np.log(tp / pp)).sum(-1),
                               **TOL)
    np.testing.assert_allclose(L.binary_crossentropy(b["bits"], b["probs"]), np_bce(b["bits"], b["probs"]), **TOL)
    np.testing.assert_allclose(L.binary_crossentropy(b["bits"], b["p"] * 20, from_logits=True),
                               np_bce_logits(b["bits"], b["p"] * 20), **TOL)
    smoothed = b["bits"] * 0.8 + 0.1
    np.testing.assert_allclose(L.binary_crossentropy(b["bits"], b["probs"], label_smoothing=0.2),
                               np_bce(smoothed, b["probs"]), **TOL)
    np.testing.assert_allclose(L.categorical_crossentropy(b["onehot"], b["probs"]), np_cce(b["onehot"], b["probs"]),
                               **TOL)
    np.testing.assert_allclose(L.categorical_crossentropy(b["onehot"], b["p"], from_logits=True, label_smoothing=0.1),
                               -((b["onehot"] * 0.9 + 0.025) * np_log_softmax(b["p"])).sum(-1), **TOL)
    rows = np.arange(6)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(b["labels"], b["p"], from_logits=True),
                               -np_log_softmax(b["p"])[rows, b["labels"]], **TOL)
    # from probabilities TF takes log(clipped p) as logits: -log(p_y) + log(sum(clipped p))
    clipped = np.clip(b["probs"], EPS, 1 - EPS)
    np.testing.assert_allclose(L.sparse_categorical_crossentropy(b["labels"][:, None], b["probs"]),
                               -np.log(clipped[rows, b["labels"]]) + np.log(clipped.sum(-1)), **TOL)


def test_reductions_and_sample_weights(batch):
    t, p, sw = batch["t"], batch["p"], batch["sw"]
    per = ((t - p) ** 2).mean(-1)
    np.testing.assert_allclose(L.MeanSquaredError()(t, p), per.mean(), **TOL)
    # sum_over_batch_size divides by the number of values, not by the sum of the weights
    np.testing.assert_allclose(L.MeanSquaredError()(t, p, sample_weight=sw), (per * sw).sum() / 6, **TOL)
    np.testing.assert_allclose(L.MeanSquaredError(reduction="sum")(t, p, sw), (per * sw).sum(), **TOL)
    np.testing.assert_allclose(L.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, sw),
                               (per * sw).sum() / sw.sum(), **TOL)
    np.testing.assert_allclose(L.MeanSquaredError(reduction="none")(t, p, sw), per * sw, **TOL)
    np.testing.assert_allclose(L.MeanSquaredError(reduction=None)(t, p), per, **TOL)
    # a (batch, 1) weight column and a Python scalar weight
    np.testing.assert_allclose(L.MeanSquaredError()(t, p, sw[:, None]), (per * sw).sum() / 6, **TOL)
    np.testing.assert_allclose(L.MeanSquaredError()(t, p, 2.0), per.mean() * 2, **TOL)
    assert L.MeanSquaredError(reduction="mean_with_sample_weight")(t, p, np.zeros(6, "float32")) == 0.0
    # per-sample weights cannot weigh per-timestep values (TensorFlow fails too, or weighs the wrong entries)
    seq_t, seq_p = np.zeros((6, 6, 2), "float32"), np.ones((6, 6, 2), "float32")
    with pytest.raises(ValueError, match=r"sample_weight of shape \(6,\) cannot weigh loss values of shape \(6, 6\)"):
        L.MeanSquaredError()(seq_t, seq_p, sample_weight=sw)
    np.testing.assert_allclose(L.MeanSquaredError()(seq_t, seq_p, sample_weight=np.ones((6, 6))), 1.0)
    # rank-1 targets against (batch, 1) predictions are expanded, not broadcast to (batch, batch)
    np.testing.assert_allclose(L.MeanAbsoluteError(reduction="none")(t[:, 0], p[:, :1]), np.abs(t[:, 0] - p[:, 0]),
                               **TOL)


def test_ignore_class_averages_over_the_kept_entries(batch):
    labels, p = batch["labels"].copy(), batch["p"]
    labels[:2] = 3
    per = -np_log_softmax(p)[np.arange(6), labels]
    keep = labels != 3
    loss = L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3)
    np.testing.assert_allclose(loss(labels, p), per[keep].mean(), **TOL)
    np.testing.assert_allclose(L.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3,
                                                               reduction="sum")(labels, p), per[keep].sum(), **TOL)


# --- traced path ---------------------------------------------------------------------------------------------------
def _trace(loss_fn, y_true_type, y_pred_type, weighted=True):
    b = GraphBuilder()
    with tracing(b):
        t = Tensor(b.input("y_true", y_true_type))
        p = Tensor(b.input("y_pred", y_pred_type))
        w = Tensor(b.input("w", TensorType((None,)))) if weighted else None
        out = loss_fn(t, p, w)
        assert isinstance(out, Tensor) and out.shape == ()
        return b.finish([out.value])


def _run(graph, *arrays):
    return reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)}, {})[0]


@pytest.mark.parametrize("loss,true_shape,true_dtype,kinds", [
    (L.CategoricalCrossentropy(from_logits=True), (None, 4), "float32", {"log_softmax"}),
    (L.CategoricalCrossentropy(), (None, 4), "float32", {"clip", "log", "divide"}),
    (L.SparseCategoricalCrossentropy(from_logits=True), (None,), "int32", {"equal", "log_softmax"}),
    (L.BinaryCrossentropy(from_logits=True), (None, 4), "float32", {"softplus"}),
    (L.Huber(), (None, 4), "float32", {"where", "abs"}),
])
def test_loss_traces_into_ops_with_a_symbolic_batch(loss, true_shape, true_dtype, kinds, rng):
    graph = _trace(lambda t, p, w: loss(t, p, sample_weight=w), TensorType(true_shape, true_dtype),
                   TensorType((None, 4)))
    assert kinds <= {op.kind for op in graph.ops}
    assert all(c.size <= 4 for c in graph.constants.values())  # no data baked in: scalars and the class ids
    for n in (1, 5):  # any batch size runs through the same graph
        p = rng.normal(size=(n, 4)).astype("float32")
        if not loss.get_config().get("from_logits") and not isinstance(loss, L.Huber):
            p = np.abs(p)
        t = rng.integers(0, 4, size=(n,)).astype("int32") if true_dtype == "int32" else \
            rng.uniform(0, 1, size=(n, 4)).astype("float32")
        w = rng.uniform(0, 2, size=(n,)).astype("float32")
        np.testing.assert_allclose(_run(graph, t, p, w), loss(t, p, sample_weight=w), **TOL)


def test_softmax_output_is_used_through_its_logits(rng):
    """As Keras on TensorFlow: a crossentropy of a softmax's output is computed from the softmax's input."""
    graph = _trace(lambda t, x, w: L.CategoricalCrossentropy()(t, ops.softmax(x), w), TensorType((None, 3)),
                   TensorType((None, 3)), weighted=False)
    kinds = [op.kind for op in graph.ops]
    assert "log_softmax" in kinds and "clip" not in kinds
    x = np.array([[40.0, 0.0, -40.0], [1.0, 2.0, 3.0]], "float32")
    t = np.array([[0, 0, 1], [1, 0, 0]], "float32")
    np.testing.assert_allclose(_run(graph, t, x), (80.0 + 2.4076059) / 2, rtol=1e-5)
    # the same probabilities given as data are clipped: -log(1e-7) for the first row
    probs = np.exp(np_log_softmax(x))
    np.testing.assert_allclose(L.categorical_crossentropy(t, probs)[0], -np.log(EPS), rtol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        eager(lambda t, x: L.binary_crossentropy(t, ops.sigmoid(x), from_logits=True), t, x)
    assert any("does not represent logits" in str(w.message) for w in caught)


# --- target checks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("loss,y_true,y_pred", [
    (L.CategoricalCrossentropy(), (32, 10), (None, 10)),
    (L.CategoricalCrossentropy(), (32, 1), (None, 1)),
    (L.SparseCategoricalCrossentropy(), (32,), (None, 10)),
    (L.SparseCategoricalCrossentropy(), (32, 1), (None, 10)),
    (L.BinaryCrossentropy(), (32,), (None, 1)),
    (L.MeanSquaredError(), (32, 1), (None, 3)),
    (L.get("mse"), (32, 4, 3), (None, 4, 3)),
])
def test_target_shapes_that_fit(loss, y_true, y_pred):
    loss.check_target_shape(y_true, y_pred, "dense")


@pytest.mark.parametrize("loss,y_true,y_pred,expected", [
    (L.CategoricalCrossentropy(), (32, 3), (None, 10), "(None, 10)"),
    (L.CategoricalCrossentropy(), (32,), (None, 10), "(None, 10)"),
    (L.SparseCategoricalCrossentropy(), (32, 10), (None, 10), "(None,) or (None, 1)"),
    (L.BinaryCrossentropy(), (32, 2), (None, 1), "(None, 1)"),
    (L.get("categorical_crossentropy"), (32, 4, 10), (None, 10), "(None, 10)"),
    (L.MeanAbsoluteError(), (32, 4), (None, 3), "(None, 3)"),
])
def test_target_shapes_that_do_not_fit(loss, y_true, y_pred, expected):
    with pytest.raises(ValueError) as e:
        loss.check_target_shape(y_true, y_pred, "predictions")
    msg = str(e.value)
    assert "'predictions'" in msg and loss.name in msg and expected in msg and str(y_true) in msg


def test_sparse_labels_out_of_range_are_reported():
    loss = L.get("sparse_categorical_crossentropy")
    loss.check_target_values(np.array([0, 9, 3]), (None, 10), "out")
    with pytest.raises(ValueError, match=r"label value of 10 .* \[0, 10\)"):
        loss.check_target_values(np.array([0, 10, 3]), (None, 10), "out")
    L.SparseCategoricalCrossentropy(ignore_class=-1).check_target_values(np.array([-1, 2]), (None, 10), "out")


@pytest.mark.parametrize("n", [3, 1000])  # a batch's few labels are checked in Python, many with NumPy
@pytest.mark.parametrize("dtype", ["int32", "int64", "uint8", "float32"])
def test_sparse_label_check_finds_the_first_bad_value_whatever_the_dtype_and_size(n, dtype):
    loss = L.SparseCategoricalCrossentropy()
    ids = np.arange(n) % 10
    loss.check_target_values(ids.astype(dtype), (None, 10), "out")
    loss.check_target_values(ids.reshape(-1, 1).astype(dtype)[::2], (None, 10), "out")  # strided, 2-D
    bad = ids.copy()
    bad[n // 2], bad[-1] = 12, 11
    with pytest.raises(ValueError, match=r"label value of 12 which is outside the valid range of \[0, 10\)"):
        loss.check_target_values(bad.astype(dtype), (None, 10), "out")
    if dtype != "uint8":
        bad[n // 2] = -3
        with pytest.raises(ValueError, match="label value of -3 "):
            loss.check_target_values(bad.astype(dtype), (None, 10), "out")
        bad[-1] = -1
        L.SparseCategoricalCrossentropy(ignore_class=-1).check_target_values(np.where(bad == -3, -1, bad)
                                                                              .astype(dtype), (None, 10), "out")


def test_target_shape_check_remembers_only_what_passed():
    """The trainer checks the targets' shape on every batch; a shape that passed once passes at once after,
    and a shape that fails keeps failing with its message."""
    loss = L.CategoricalCrossentropy()
    for _ in range(2):
        loss.check_target_shape((32, 10), (None, 10), "out")
        with pytest.raises(ValueError, match=r"expects targets of shape \(None, 10\), received targets of shape "
                                             r"\(32, 3\) for predictions of shape \(None, 10\)"):
            loss.check_target_shape((32, 3), (None, 10), "out")
    assert loss._passed_shapes == {("same", (32, 10), (None, 10))}


def test_functions_reject_mismatched_shapes_like_tensorflow():
    with pytest.raises(ValueError, match="same rank"):
        L.binary_crossentropy(np.zeros(4), np.zeros((4, 1)))
    with pytest.raises(ValueError, match="same shape"):
        L.categorical_crossentropy(np.zeros((4, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="up until the last dimension"):
        L.sparse_categorical_crossentropy(np.zeros((4, 2), "int32"), np.zeros((4, 5)))


# --- lookup, names, configs --------------------------------------------------------------------------------------
def test_get_resolves_names_like_compile():
    assert L.get("mse").name == "mse" and L.get("mse").fn is L.mean_squared_error
    assert isinstance(L.get("MeanSquaredError"), L.MeanSquaredError)
    assert L.get("kld").fn is L.kl_divergence and L.get("huber").fn is L.huber
    assert L.get("sparse_categorical_crossentropy").target_dtype == "int32"
    assert L.SparseCategoricalCrossentropy().target_dtype == "int32"
    assert L.CategoricalCrossentropy().target_dtype == "float32"
    bce = L.BinaryCrossentropy(from_logits=True)
    assert L.get(bce) is bce and isinstance(L.get(L.Huber), L.Huber)
    assert L.get("crossentropy", (32,), (None, 10)).fn is L.sparse_categorical_crossentropy

    def my_loss(y_true, y_pred):
        return ops.mean(ops.abs(y_true - y_pred), axis=-1)
    wrapped = L.get(my_loss)
    assert wrapped.name == "my_loss"
    np.testing.assert_allclose(wrapped(np.ones((2, 3)), np.zeros((2, 3))), 1.0)


def test_unknown_loss_name_lists_the_known_ones():
    with pytest.raises(ValueError) as e:
        L.get("categorical_crossentropyy")
    assert "'categorical_crossentropyy'" in str(e.value) and "sparse_categorical_crossentropy" in str(e.value)
    with pytest.raises(ValueError, match="reduction"):
        L.MeanSquaredError(reduction="average")


def test_configs_have_keras_keys_and_round_trip():
    assert L.MeanSquaredError().get_config() == {"name": "mean_squared_error", "reduction": "sum_over_batch_size"}
    assert L.CategoricalCrossentropy(label_smoothing=0.1).get_config() == {
        "name": "categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": False,
        "label_smoothing": 0.1, "axis": -1}
    assert L.SparseCategoricalCrossentropy(from_logits=True).get_config() == {
        "name": "sparse_categorical_crossentropy", "reduction": "sum_over_batch_size", "from_logits": True,
        "ignore_class": None}
    s = L.serialize(L.BinaryCrossentropy(from_logits=True, reduction="sum"))
    assert s["module"] == "keras.losses" and s["class_name"] == "BinaryCrossentropy"
    back = L.deserialize(s)
    assert isinstance(back, L.BinaryCrossentropy) and back.from_logits and back.reduction == "sum"
    h = L.deserialize(L.serialize(L.Huber(delta=0.5)))
    assert h.delta == 0.5
    wrapper = L.deserialize(L.serialize(L.get("mae")))
    assert wrapper.fn is L.mean_absolute_error and wrapper.name == "mae"
    assert L.serialize(L.mean_squared_error)["config"] == "mean_squared_error"
