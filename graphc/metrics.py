"""Keras 3 metrics. A metric's per-batch sums are computed with graphc.ops (inside the compiled training
step, or eagerly on NumPy); the running state lives in Python, accumulated across batches in float32.

``MeanMetricWrapper.graph_sums(y_true, y_pred, sample_weight) -> (total, count)`` are the weighted sums
of one batch (Keras's weighted mean); ``accumulate(total, count)`` adds them; ``result()`` is total/count.
"""
from __future__ import annotations

import numpy as np

from . import losses, ops
from .layers.base import input_mask, to_snake_case, unique_name
from .losses import _check_dtype, _float, _one_hot, graph_function, squeeze_or_expand_to_same_rank
from .serialization import (function_from_config, get_from_registry, register, serialize_object,
                            visible_custom_objects)

_LOWEST = float(np.finfo(np.float32).min)
_HIGHEST = float(np.finfo(np.float32).max)
_ZERO = np.float32(0.0)  # (NumPy scalars cannot change: metrics reset to this one)


# --- metric functions: (y_true, y_pred) -> per-sample float32 values -------------------------------------
@graph_function
def accuracy(y_true, y_pred):
    y_true = y_true if y_true.dtype == y_pred.dtype else ops.cast(y_true, y_pred.dtype)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return ops.cast(ops.equal(y_true, y_pred), "float32")


@graph_function
def binary_accuracy(y_true, y_pred, threshold=0.5):
    y_true, y_pred = squeeze_or_expand_to_same_rank(_float(y_true), _float(y_pred))
    y_pred = ops.cast(ops.greater(y_pred, float(threshold)), "float32")
    return ops.cast(ops.equal(y_true, y_pred), "float32")


@graph_function
def categorical_accuracy(y_true, y_pred):
    labels = ops.cast(ops.argmax(y_true, axis=-1), "float32")
    shape = labels.shape
    if len(labels.shape) == len(y_pred.shape):  # y_true had one more axis than y_pred (Keras squeezes it)
        labels = ops.squeeze(labels, -1)
    matches = ops.cast(ops.equal(labels, ops.cast(ops.argmax(y_pred, axis=-1), "float32")), "float32")
    return ops.reshape(matches, shape) if len(shape) != len(matches.shape) else matches


@graph_function
def sparse_categorical_accuracy(y_true, y_pred):
    y_true = _float(y_true)  # Keras compares the ids as floats
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    return ops.cast(ops.equal(y_true, ops.cast(ops.argmax(y_pred, axis=-1), "float32")), "float32")


def _is_finite(x):
    """1.0 where x is finite, else 0.0 (NaN fails the first test, +-inf the second)."""
    return ops.cast(ops.equal(x, x), "float32") * (1.0 - ops.cast(ops.greater(ops.abs(x), _HIGHEST), "float32"))


def _in_top_k(labels, predictions, k):
    """TensorFlow's in_top_k: a label is in the top k when fewer than k classes score strictly higher than it
    (so ties at the boundary all count); False for an id out of range or a row with a non-finite score."""
    is_label = _one_hot(labels, predictions.shape[-1])
    label_score = ops.max(ops.where(is_label, predictions, _LOWEST), axis=-1, keepdims=True)
    higher = ops.sum(ops.cast(ops.greater(predictions, label_score), "float32"), axis=-1)
    in_range = ops.max(ops.cast(is_label, "float32"), axis=-1)
    finite = ops.min(_is_finite(predictions), axis=-1)
    return ops.cast(ops.less(higher, float(k)), "float32") * in_range * finite


@graph_function
def top_k_categorical_accuracy(y_true, y_pred, k=5):
    return _in_top_k(ops.argmax(y_true, axis=-1), _float(y_pred), k)


@graph_function
def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """from_sorted_ids: y_pred holds class ids sorted by score (its first k columns are the top k)."""
    shape = y_true.shape
    if len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    if from_sorted_ids:
        top = ops.getitem(_float(y_pred), (Ellipsis, slice(0, k)))
        matches = ops.max(ops.cast(ops.equal(ops.expand_dims(_float(y_true), -1), top), "float32"), axis=-1)
    else:
        labels = y_true if y_true.dtype == "int32" else ops.cast(y_true, "int32")
        matches = _in_top_k(labels, _float(y_pred), k)
    return ops.reshape(matches, shape) if len(shape) != len(matches.shape) else matches


@graph_function
def weighted_sums(values, sample_weight=None):
    """Keras's Mean.update_state on one batch: (sum of weighted per-sample values, sum of weights) as
    float32 scalars. Values are first averaged down to the weights' rank, then to one per sample."""
    values = _float(values)
    if sample_weight is not None:
        sample_weight = _float(sample_weight)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        w_rank, v_rank = len(sample_weight.shape), len(values.shape)
        if v_rank > w_rank:
            values = ops.mean(values, axis=list(range(w_rank, v_rank)))
        sample_weight = sample_weight * _ones_like(values)  # broadcast, so the weight sum counts every entry
        values = values * sample_weight
        if w_rank > 1:
            sample_weight = ops.mean(sample_weight, axis=list(range(1, w_rank)))
    if len(values.shape) > 1:
        values = ops.mean(values, axis=list(range(1, len(values.shape))))
    total = ops.sum(values)
    if sample_weight is not None:
        count = ops.sum(sample_weight)
    elif len(values.shape) >= 1:
        count = ops.sum(_ones_like(values))  # the batch size, symbolic inside a trace
    else:
        count = _ones_like(total)  # one scalar value
    return total, count


def _ones_like(x):
    """Ones of x's shape whatever x holds (NaN included)."""
    return ops.where(ops.equal(x, x), 1.0, 1.0)


# --- metric classes -----------------------------------------------------------------------------------------
class Metric:
    """Keras's Metric: ``update_state``, ``result``, ``reset_state``; ``m(...)`` updates then returns result."""

    def __init__(self, dtype=None, name=None):
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self._dtype = _check_dtype(dtype)
        self.reset_state()

    @property
    def dtype(self):
        return self._dtype

    def reset_state(self):
        """Metrics without state have nothing to reset."""

    def __call__(self, *args, **kwargs):
        self.update_state(*args, **kwargs)
        return self.result()

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


@register("metrics")
class Mean(Metric):
    """Weighted mean of the values given to ``update_state(values, sample_weight=None)``."""

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.total = self.count = _ZERO

    def graph_sums(self, values, sample_weight=None):
        return weighted_sums(values, sample_weight)

    def accumulate(self, total, count):
        """Add one batch's sums (in float32, as Keras's metric variables)."""
        self.total = np.float32(self.total + np.float32(total))
        self.count = np.float32(self.count + np.float32(count))

    def update_state(self, values, sample_weight=None):
        self.accumulate(*weighted_sums(values, sample_weight))

    def result(self):
        return np.float32(0.0) if self.count == 0 else np.float32(self.total / self.count)


@register("metrics")
class MeanMetricWrapper(Mean):
    """The weighted mean of ``fn(y_true, y_pred, **kwargs)`` (a function written with graphc.ops)."""

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name or unique_name("mean_metric_wrapper"), dtype=dtype)
        self._fn = fn
        self._fn_kwargs = kwargs

    def values(self, y_true, y_pred):
        """Per-sample values of one batch (a Tensor inside a trace)."""
        return self._fn(y_true, y_pred, **self._fn_kwargs)

    @graph_function
    def graph_sums(self, y_true, y_pred, sample_weight=None):
        mask = input_mask(y_pred)  # a masked output's padding is not counted, as in Keras
        values = self.values(y_true, y_pred)
        if mask is not None:
            mask = ops.cast(mask, "float32")
            if sample_weight is not None:
                mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
                mask = mask * sample_weight
            sample_weight = mask
        return weighted_sums(values, sample_weight)

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.accumulate(*self.graph_sums(y_true, y_pred, sample_weight))

    def get_config(self):
        return {**super().get_config(), "fn": _serialize_fn(self._fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = _deserialize_fn(config["fn"])
        return cls(**config)


@register("metrics")
class Accuracy(MeanMetricWrapper):
    """Exact equality of y_true and y_pred."""

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(accuracy, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class BinaryAccuracy(MeanMetricWrapper):
    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold

    def get_config(self):
        return {**Metric.get_config(self), "threshold": self.threshold}


@register("metrics")
class CategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class SparseCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(sparse_categorical_accuracy, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class TopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k

    def get_config(self):
        return {**Metric.get_config(self), "k": self.k}


@register("metrics")
class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        super().__init__(sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k,
                         from_sorted_ids=from_sorted_ids)
        self.k = k
        self.from_sorted_ids = from_sorted_ids

    def get_config(self):
        config = {**Metric.get_config(self), "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config


@register("metrics")
class MeanSquaredError(MeanMetricWrapper):
    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(losses.mean_squared_error, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class MeanAbsoluteError(MeanMetricWrapper):
    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(losses.mean_absolute_error, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class KLDivergence(MeanMetricWrapper):
    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(losses.kl_divergence, name=name, dtype=dtype)

    def get_config(self):
        return Metric.get_config(self)


@register("metrics")
class BinaryCrossentropy(MeanMetricWrapper):
    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(losses.binary_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing

    def get_config(self):
        return {**Metric.get_config(self), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing}


@register("metrics")
class CategoricalCrossentropy(MeanMetricWrapper):
    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0,
                 axis=-1):
        super().__init__(losses.categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        return {**Metric.get_config(self), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


@register("metrics")
class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """ignore_class is left out: Keras's metric ignores those entries through a tensor mask graphc lacks."""

    def __init__(self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None,
                 axis=-1):
        if ignore_class is not None:
            raise ValueError("graphc's SparseCategoricalCrossentropy metric does not support ignore_class; "
                             "the loss of that name does")
        super().__init__(losses.sparse_categorical_crossentropy, name=name, dtype=dtype, from_logits=from_logits,
                         axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def get_config(self):
        return {**Metric.get_config(self), "from_logits": self.from_logits, "ignore_class": self.ignore_class,
                "axis": self.axis}


# --- lookup and serialization ---------------------------------------------------------------------------------
_CLASSES = (Accuracy, BinaryAccuracy, CategoricalAccuracy, SparseCategoricalAccuracy, TopKCategoricalAccuracy,
            SparseTopKCategoricalAccuracy, MeanSquaredError, MeanAbsoluteError, KLDivergence, BinaryCrossentropy,
            CategoricalCrossentropy, SparseCategoricalCrossentropy)
# keras.metrics.get's names: class names, their snake_case, and a few aliases
NAMES = {**{c.__name__: c for c in _CLASSES}, **{to_snake_case(c.__name__): c for c in _CLASSES},
         "mse": MeanSquaredError, "MSE": MeanSquaredError, "mae": MeanAbsoluteError, "MAE": MeanAbsoluteError,
         "bce": BinaryCrossentropy, "BCE": BinaryCrossentropy}
FUNCTIONS = {f.__name__: f for f in (accuracy, binary_accuracy, categorical_accuracy, sparse_categorical_accuracy,
                                     top_k_categorical_accuracy, sparse_top_k_categorical_accuracy)}


def known_names():
    return sorted({*NAMES, "accuracy", "acc"})


def _accuracy_class(loss, y_true_shape, y_pred_shape):
    """compile's 'accuracy': Keras 3 decides from the shapes; without them, from the loss."""
    if y_true_shape is not None and y_pred_shape is not None:
        if y_pred_shape[-1] == 1:
            return BinaryAccuracy
        if len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1):
            return SparseCategoricalAccuracy
        return CategoricalAccuracy
    fn = getattr(loss, "fn", loss)
    if fn is losses.sparse_categorical_crossentropy:
        return SparseCategoricalAccuracy
    if fn is losses.binary_crossentropy:
        return BinaryAccuracy
    return CategoricalAccuracy


def _resolve(identifier):
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    if isinstance(identifier, str):
        found = NAMES.get(identifier) or visible_custom_objects().get(identifier)
        if found is None:
            raise ValueError(f"Unknown metric {identifier!r}. Known metrics: {', '.join(known_names())}. A metric "
                             "of your own: pass the function or Metric, or register it with "
                             "@graphc.saving.register_keras_serializable()")
        return _resolve(found)
    if callable(identifier):
        return identifier
    raise ValueError(f"Could not interpret metric identifier: {identifier!r}")


def get(identifier, loss=None, y_true_shape=None, y_pred_shape=None):
    """A metric as ``model.compile(metrics=[...])`` takes it -> a Metric instance.

    "accuracy"/"acc" (any case) become Binary/SparseCategorical/CategoricalAccuracy from the target and
    prediction shapes (with the batch axis) or else from the loss. A string keeps its spelling as the
    metric's display name ("acc", "mse"); a plain function is wrapped in a MeanMetricWrapper.
    """
    if identifier is None:
        raise ValueError("Expected metric, received `None`")
    if str(identifier).lower() in ("accuracy", "acc"):
        metric = _accuracy_class(loss, y_true_shape, y_pred_shape)(name=str(identifier))
    else:
        metric = _resolve(identifier)
    name = identifier if isinstance(identifier, str) else getattr(metric, "name", None) or metric.__name__
    if not isinstance(metric, Metric):
        metric = MeanMetricWrapper(metric, name=name)
    metric.name = name
    return metric


def serialize(metric):
    return serialize_object(metric)


def _serialize_fn(fn):
    if FUNCTIONS.get(getattr(fn, "__name__", None)) is fn:
        return {"module": "keras.metrics", "class_name": "function", "config": fn.__name__,
                "registered_name": "function"}
    return losses.serialize(fn)


def _deserialize_fn(config, custom_objects=None):
    """A metric's function from its config or name: a custom object, else a built-in metric or loss function."""
    return function_from_config(config, {**losses.ALIASES, **losses.FUNCTIONS, **FUNCTIONS}, "metric function",
                                custom_objects)


def deserialize(config, custom_objects=None):
    if isinstance(config, dict) and config.get("class_name") == "function":
        return _deserialize_fn(config, custom_objects)
    return get_from_registry("metrics", config, aliases=NAMES, custom_objects=custom_objects)


__all__ = ["Metric", "Mean", "MeanMetricWrapper", *(c.__name__ for c in _CLASSES), *FUNCTIONS,
           "weighted_sums", "get", "serialize", "deserialize"]
