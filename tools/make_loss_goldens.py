"""Write tests/goldens_train/losses.npz and metrics.npz from real Keras 3 (TensorFlow backend).

Run from the repository root with the Keras virtualenv (graphc's tests never need Keras):

    /work/venv-keras/bin/python tools/make_loss_goldens.py

Each file holds a JSON index (key ``index``) of cases; a case's arrays are stored under ``<case>/<name>``.
Losses: the class and config, y_true, y_pred (or the logits ``x`` that Keras turned into y_pred with a
softmax/sigmoid activation, so it used the logits), the sample weights, Keras's reduced value ``value`` and
the loss function's per-sample values ``per_sample``. Metrics: the class and config, one or more batches
(``y_true<i>``, ``y_pred<i>``, ``sample_weight<i>``), Keras's ``result`` after all of them and, for
function-backed metrics, the function's values on the first batch. The data are seeded: re-running gives
the same files.
"""
from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras.src.metrics import accuracy_metrics  # noqa: E402
from keras.src.trainers import compile_utils  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "goldens_train")
F = np.float32
B, C = 8, 5


def data(rng):
    d = {}
    d["y"] = rng.normal(size=(B, 3)).astype(F)
    d["p"] = rng.normal(size=(B, 3)).astype(F)
    d["sw"] = rng.uniform(0, 2, size=(B,)).astype(F)
    d["sw"][3] = 0.0
    d["y3"] = rng.normal(size=(B, 4, 3)).astype(F)
    d["p3"] = rng.normal(size=(B, 4, 3)).astype(F)
    d["sw2"] = rng.uniform(0, 2, size=(B, 4)).astype(F)
    # binary probabilities that touch the clipping range
    pb = rng.uniform(0, 1, size=(B, 3)).astype(F)
    pb[0, 0], pb[1, 1], pb[2, 2], pb[3, 0], pb[4, 1] = 0.0, 1.0, 1e-9, 1 - 1e-9, 1e-7
    d["pb"] = pb
    d["yb"] = rng.integers(0, 2, size=(B, 3)).astype(F)
    xb = (rng.normal(size=(B, 3)) * 4).astype(F)
    xb[0, 0], xb[1, 1], xb[2, 2] = 30.0, -30.0, 90.0
    d["xb"] = xb
    # class probabilities, unnormalised, with zeros
    x = (rng.normal(size=(B, C)) * 3).astype(F)
    pc = np.exp(x) / np.exp(x).sum(-1, keepdims=True) * rng.uniform(0.5, 1.5, size=(B, 1))
    pc[0, 1], pc[1, :2], pc[2, 3] = 0.0, 0.0, 1e-9
    d["pc"] = pc.astype(F)
    d["labels"] = rng.integers(0, C, size=(B,)).astype(np.int32)
    d["labels"][:2] = [1, 0]  # the true class has probability 0 in rows 0 and 1
    d["onehot"] = np.eye(C, dtype=F)[d["labels"]]
    d["xc"] = (rng.normal(size=(B, C)) * 3).astype(F)
    d["xc_big"] = (rng.normal(size=(B, C)) * 12).astype(F)  # softmax saturates: clipping would matter
    d["labels3"] = rng.integers(0, C, size=(B, 4)).astype(np.int32)
    d["xc3"] = (rng.normal(size=(B, 4, C)) * 3).astype(F)
    d["ysoft"] = (np.exp(x) / np.exp(x).sum(-1, keepdims=True)).astype(F)[::-1].copy()
    return d


def loss_cases(d):
    """(case, class, config, y_true, y_pred or None, logits of a softmax/sigmoid or None, sample_weight)."""
    softmax = ("softmax", d["xc_big"])
    sigmoid = ("sigmoid", d["xb"])
    return [
        ("mse", "MeanSquaredError", {}, d["y"], d["p"], None, None),
        ("mse_sw", "MeanSquaredError", {}, d["y"], d["p"], None, d["sw"]),
        ("mse_rank1", "MeanSquaredError", {}, d["y"][:, 0], d["p"][:, :1], None, d["sw"]),
        ("mse_3d_sw2", "MeanSquaredError", {}, d["y3"], d["p3"], None, d["sw2"]),
        ("mse_sum", "MeanSquaredError", {"reduction": "sum"}, d["y"], d["p"], None, d["sw"]),
        ("mse_none", "MeanSquaredError", {"reduction": "none"}, d["y"], d["p"], None, d["sw"]),
        ("mse_mean", "MeanSquaredError", {"reduction": "mean"}, d["y3"], d["p3"], None, d["sw2"]),
        ("mse_mean_sw", "MeanSquaredError", {"reduction": "mean_with_sample_weight"}, d["y"], d["p"], None,
         d["sw"]),
        ("mae_sw", "MeanAbsoluteError", {}, d["y"], d["p"], None, d["sw"]),
        ("mae_3d", "MeanAbsoluteError", {"reduction": "sum"}, d["y3"], d["p3"], None, d["sw2"]),
        ("huber", "Huber", {}, d["y"], d["p"] * 2, None, d["sw"]),
        ("huber_delta", "Huber", {"delta": 0.3}, d["y"], d["p"], None, None),
        ("kld", "KLDivergence", {}, d["ysoft"], d["pc"], None, d["sw"]),
        ("bce_probs", "BinaryCrossentropy", {}, d["yb"], d["pb"], None, None),
        ("bce_probs_sw", "BinaryCrossentropy", {}, d["yb"], d["pb"], None, d["sw"]),
        ("bce_smooth", "BinaryCrossentropy", {"label_smoothing": 0.1}, d["yb"], d["pb"], None, None),
        ("bce_logits", "BinaryCrossentropy", {"from_logits": True}, d["yb"], d["xb"], None, d["sw"]),
        ("bce_logits_smooth", "BinaryCrossentropy", {"from_logits": True, "label_smoothing": 0.2}, d["yb"],
         d["xb"], None, None),
        ("bce_rank1", "BinaryCrossentropy", {}, d["yb"][:, 0], d["pb"][:, :1], None, d["sw"]),
        ("bce_sigmoid_out", "BinaryCrossentropy", {}, d["yb"], None, sigmoid, None),
        ("cce_probs", "CategoricalCrossentropy", {}, d["onehot"], d["pc"], None, None),
        ("cce_probs_sw", "CategoricalCrossentropy", {}, d["onehot"], d["pc"], None, d["sw"]),
        ("cce_smooth", "CategoricalCrossentropy", {"label_smoothing": 0.2}, d["onehot"], d["pc"], None, None),
        ("cce_logits", "CategoricalCrossentropy", {"from_logits": True}, d["onehot"], d["xc"], None, d["sw"]),
        ("cce_logits_smooth", "CategoricalCrossentropy", {"from_logits": True, "label_smoothing": 0.1},
         d["onehot"], d["xc_big"], None, None),
        ("cce_softmax_out", "CategoricalCrossentropy", {}, d["onehot"], None, softmax, d["sw"]),
        ("cce_softmax_probs", "CategoricalCrossentropy", {}, d["onehot"],
         keras.ops.convert_to_numpy(keras.ops.softmax(d["xc_big"])), None, d["sw"]),
        ("scce_probs", "SparseCategoricalCrossentropy", {}, d["labels"], d["pc"], None, None),
        ("scce_probs_2d", "SparseCategoricalCrossentropy", {}, d["labels"][:, None], d["pc"], None, d["sw"]),
        ("scce_logits", "SparseCategoricalCrossentropy", {"from_logits": True}, d["labels"], d["xc"], None,
         d["sw"]),
        ("scce_softmax_out", "SparseCategoricalCrossentropy", {}, d["labels"], None, softmax, None),
        ("scce_3d", "SparseCategoricalCrossentropy", {"from_logits": True}, d["labels3"], d["xc3"], None,
         d["sw2"]),
        ("scce_ignore", "SparseCategoricalCrossentropy", {"ignore_class": 2}, d["labels"], d["pc"], None,
         d["sw"]),
        ("scce_ignore_logits", "SparseCategoricalCrossentropy", {"ignore_class": 2, "from_logits": True},
         d["labels"], d["xc"], None, None),
        ("scce_ignore_sum", "SparseCategoricalCrossentropy", {"ignore_class": 2, "reduction": "sum"},
         d["labels"], d["pc"], None, None),
    ]


LOSS_FUNCTIONS = {"MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
                  "Huber": "huber", "KLDivergence": "kl_divergence", "BinaryCrossentropy": "binary_crossentropy",
                  "CategoricalCrossentropy": "categorical_crossentropy",
                  "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy"}
FN_KEYS = ("from_logits", "label_smoothing", "delta", "ignore_class")


def make_losses(d):
    index, arrays = [], {}
    for case, cls, config, y_true, y_pred, logits, sw in loss_cases(d):
        loss = getattr(keras.losses, cls)(**config)
        if logits is not None:
            kind, x = logits
            # the activation tags its output with the logits, as a model's final softmax/sigmoid does
            y_pred_t = keras.activations.softmax(tf.constant(x)) if kind == "softmax" else \
                keras.activations.sigmoid(tf.constant(x))
            arrays[f"{case}/x"] = x
        else:
            y_pred_t = y_pred
            arrays[f"{case}/y_pred"] = y_pred
        value = loss(y_true, y_pred_t, sample_weight=sw)
        fn = getattr(keras.losses, LOSS_FUNCTIONS[cls])
        fn_kwargs = {k: v for k, v in config.items() if k in FN_KEYS}
        try:  # the bare function (no squeeze/expand of the targets first) rejects some rank pairs
            arrays[f"{case}/per_sample"] = keras.ops.convert_to_numpy(fn(y_true, y_pred_t, **fn_kwargs))
        except ValueError:
            pass
        arrays[f"{case}/y_true"] = y_true
        if sw is not None:
            arrays[f"{case}/sample_weight"] = sw
        arrays[f"{case}/value"] = keras.ops.convert_to_numpy(value)
        index.append({"case": case, "class_name": cls, "config": config,
                      "activation": logits[0] if logits is not None else None,
                      "function": LOSS_FUNCTIONS[cls], "fn_kwargs": fn_kwargs})
    return index, arrays


def metric_cases(rng, d):
    """(case, class, config, [(y_true, y_pred, sample_weight), ...], function name or None)."""
    def probs(shape):
        return rng.uniform(0, 1, size=shape).astype(F)

    def labels(shape, n=C, dtype=np.int32):
        return rng.integers(0, n, size=shape).astype(dtype)

    ties = np.round(probs((B, 6)) * 4) / 4  # many equal scores straddle the top-k boundary
    ties_bad = ties.copy()
    ties_bad[0, 2], ties_bad[1, 0], ties_bad[2, 5] = np.nan, np.inf, -np.inf
    y_ties = labels((B,), 6)
    sw, sw2 = d["sw"], d["sw2"]
    tie_argmax = probs((B, C))
    tie_argmax[:4, 1] = tie_argmax[:4, 3] = 2.0  # argmax ties: first index wins
    sorted_ids = np.argsort(-rng.normal(size=(B, C)), axis=-1)[:, :4].astype(F)
    return [
        ("binary_accuracy", "BinaryAccuracy", {}, [(labels((B, 1), 2, F), probs((B, 1)), None),
                                                   (labels((B, 1), 2, F), probs((B, 1)), sw)], "binary_accuracy"),
        ("binary_accuracy_t07", "BinaryAccuracy", {"threshold": 0.7},
         [(labels((B, 3), 2, F), probs((B, 3)), sw), (labels((B,), 2, F), probs((B, 1)), None)], "binary_accuracy"),
        ("categorical_accuracy", "CategoricalAccuracy", {},
         [(d["onehot"], tie_argmax, None), (np.eye(C, dtype=F)[labels((B,))], probs((B, C)), sw)],
         "categorical_accuracy"),
        ("sparse_categorical_accuracy", "SparseCategoricalAccuracy", {},
         [(labels((B,)), probs((B, C)), sw), (labels((B, 1), C, F), probs((B, C)), None)],
         "sparse_categorical_accuracy"),
        ("sparse_categorical_accuracy_3d", "SparseCategoricalAccuracy", {},
         [(d["labels3"], d["xc3"], sw2), (d["labels3"][::-1].copy(), d["xc3"], sw)], "sparse_categorical_accuracy"),
        ("top_k", "TopKCategoricalAccuracy", {"k": 2},
         [(np.eye(6, dtype=F)[y_ties], ties.astype(F), None), (np.eye(6, dtype=F)[y_ties], ties_bad.astype(F), sw)],
         "top_k_categorical_accuracy"),
        ("top_k_default", "TopKCategoricalAccuracy", {},
         [(np.eye(6, dtype=F)[y_ties], ties.astype(F), sw)], "top_k_categorical_accuracy"),
        ("sparse_top_k", "SparseTopKCategoricalAccuracy", {"k": 3},
         [(y_ties, ties.astype(F), sw), (y_ties[:, None], ties_bad.astype(F), None)],
         "sparse_top_k_categorical_accuracy"),
        ("sparse_top_k_sorted", "SparseTopKCategoricalAccuracy", {"k": 2, "from_sorted_ids": True},
         [(labels((B,)), sorted_ids, sw)], "sparse_top_k_categorical_accuracy"),
        ("accuracy", "Accuracy", {}, [(labels((B, 1), 3), labels((B, 1), 3), None),
                                      (labels((B, 2), 3, F), labels((B, 2), 3, F), sw)], "accuracy"),
        ("mae_metric", "MeanAbsoluteError", {}, [(d["y3"], d["p3"], sw2), (d["y"], d["p"], None)], None),
        ("mse_metric", "MeanSquaredError", {}, [(d["y3"], d["p3"], sw), (d["y"][:, 0], d["p"][:, :1], sw)], None),
        ("bce_metric", "BinaryCrossentropy", {"from_logits": True}, [(d["yb"], d["xb"], sw)], None),
        ("cce_metric", "CategoricalCrossentropy", {"label_smoothing": 0.1}, [(d["onehot"], d["pc"], sw)], None),
        ("scce_metric", "SparseCategoricalCrossentropy", {}, [(d["labels"], d["pc"], None)], None),
        ("kld_metric", "KLDivergence", {}, [(d["ysoft"], d["pc"], sw)], None),
    ]


def make_metrics(rng, d):
    index, arrays = [], {}
    for case, cls, config, batches, fn_name in metric_cases(rng, d):
        m = getattr(keras.metrics, cls)(**config)
        for i, (y_true, y_pred, sw) in enumerate(batches):
            m.update_state(y_true, y_pred, sample_weight=sw)
            arrays[f"{case}/y_true{i}"], arrays[f"{case}/y_pred{i}"] = y_true, y_pred
            if sw is not None:
                arrays[f"{case}/sample_weight{i}"] = sw
        arrays[f"{case}/result"] = keras.ops.convert_to_numpy(m.result())
        if fn_name is not None:
            fn_kwargs = {k: v for k, v in config.items() if k in ("threshold", "k", "from_sorted_ids")}
            y_true, y_pred, _ = batches[0]
            fn = getattr(accuracy_metrics, fn_name)  # `accuracy` is not exported by keras.metrics
            arrays[f"{case}/per_sample"] = keras.ops.convert_to_numpy(fn(y_true, y_pred, **fn_kwargs))
        index.append({"case": case, "class_name": cls, "config": config, "batches": len(batches),
                      "function": fn_name})
    # Mean, fed the way the trainer feeds the loss (a scalar weighted by the batch size) and with arrays
    m = keras.metrics.Mean()
    feeds = [(np.float32(0.75), np.float32(32)), (np.float32(0.5), np.float32(8)), (d["y3"], d["sw2"]),
             (d["y"], None), (d["p3"], d["sw"])]
    for i, (values, sw) in enumerate(feeds):
        m.update_state(values, sample_weight=sw)
        arrays[f"mean/values{i}"] = np.asarray(values)
        if sw is not None:
            arrays[f"mean/sample_weight{i}"] = np.asarray(sw)
    arrays["mean/result"] = keras.ops.convert_to_numpy(m.result())
    index.append({"case": "mean", "class_name": "Mean", "config": {}, "feeds": len(feeds)})
    return index, arrays


def accuracy_resolution():
    """compile's choice for metrics=['accuracy'] and loss='crossentropy', from (y_true, y_pred) shapes."""
    combos = [((B,), (B, 1)), ((B, 1), (B, 1)), ((B,), (B, C)), ((B, 1), (B, C)), ((B, C), (B, C)),
              ((B, 4), (B, 4, C)), ((B, 4, C), (B, 4, C)), ((B, 3), (B, 3))]
    out = []
    for t, p in combos:
        yt, yp = np.zeros(t, F), np.zeros(p, F)
        metric = compile_utils.get_metric("acc", yt, yp)
        loss = compile_utils.get_loss("crossentropy", yt, yp)
        out.append({"y_true": t, "y_pred": p, "metric": type(metric).__name__, "name": metric.name,
                    "loss": loss.fn.__name__})
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(20240604)
    d = data(rng)
    index, arrays = make_losses(d)
    np.savez_compressed(os.path.join(OUT_DIR, "losses.npz"), index=np.array(json.dumps(index)), **arrays)
    index, arrays = make_metrics(rng, d)
    meta = {"cases": index, "accuracy_resolution": accuracy_resolution(), "keras": keras.__version__,
            "tensorflow": tf.__version__}
    np.savez_compressed(os.path.join(OUT_DIR, "metrics.npz"), index=np.array(json.dumps(meta)), **arrays)
    for name in ("losses.npz", "metrics.npz"):
        print(name, os.path.getsize(os.path.join(OUT_DIR, name)), "bytes")


if __name__ == "__main__":
    main()
