"""Keras 3 losses, written with graphc.ops so that they trace into the training step and run on NumPy.

A loss function maps ``(y_true, y_pred)`` to per-sample values (its last axis reduced); a ``Loss``
object adds Keras's sample weighting and reduction. Formulas follow Keras 3 on TensorFlow, including
its clipping of probabilities to ``[1e-7, 1 - 1e-7]`` and its use of the logits when the prediction is
the direct output of a softmax (categorical) or sigmoid (binary) inside the traced graph.
"""
from __future__ import annotations

import functools
import inspect
import warnings

import numpy as np

from . import ops
from .ir import format_shape
from .layers.base import input_mask, to_snake_case, unique_name
from .serialization import (function_from_config, get_from_registry, register, serialize_function,
                            serialize_object, visible_custom_objects)
from .tracing import Tensor, current_builder, eager

EPSILON = 1e-7  # keras.backend.epsilon()
REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


# --- helpers -------------------------------------------------------------------------------------------------
DATA_ARGS = ("y_true", "y_pred", "sample_weight", "values")


def graph_function(fn):
    """Inside a trace ``fn`` emits ops; outside one, it runs at once on NumPy inputs (as one small graph).

    The arguments named in DATA_ARGS are the data (arrays, lists, numbers); the others stay Python values.
    """
    sig = inspect.signature(fn)
    names = [n for n in DATA_ARGS if n in sig.parameters]

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        if current_builder() is not None:
            return fn(*args, **kwargs)
        arguments = sig.bind(*args, **kwargs).arguments
        given = [n for n in names if arguments.get(n) is not None]

        def run(*tensors):
            bound = sig.bind(*args, **kwargs)
            bound.arguments.update(zip(given, tensors))
            return fn(*bound.args, **bound.kwargs)
        return eager(run, *[_as_array(arguments[n]) for n in given])
    return wrapper


def _as_array(x):
    """Data -> an array: float32 or int32 (as Keras converts them), bool kept."""
    if not hasattr(x, "path"):  # a graphc Variable stays a parameter
        arr = np.asarray(x)
        if arr.dtype.kind in "iu":
            return arr.astype(np.int32)
        if arr.dtype.kind == "f" and arr.dtype != np.float32:
            return arr.astype(np.float32)
        return arr
    return x


def _float(x):
    return x if x.dtype == "float32" else ops.cast(x, "float32")


def _f32(x):
    """A Python float holding exactly the float32 value TensorFlow would compute."""
    return float(np.float32(x))


def _check_dtype(dtype):
    if dtype not in (None, "float32") and getattr(dtype, "name", None) != "float32":
        raise ValueError(f"graphc computes losses and metrics in float32, received dtype={dtype!r}")
    return "float32"


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1=True):
    """Keras's rule: when ranks differ by one and the longer ends in 1, squeeze it (or expand a rank-1 peer)."""
    r1, r2 = len(x1.shape), len(x2.shape)
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = ops.expand_dims(x2, -1)
        else:
            x1 = ops.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = ops.expand_dims(x1, -1)
        else:
            x2 = ops.squeeze(x2, -1)
    return x1, x2


def _squeeze_or_expand_shapes(s1, s2):
    """The same rule on static shapes (for target checks before any tracing)."""
    s1, s2 = tuple(s1), tuple(s2)
    if len(s1) == len(s2) + 1 and s1[-1] == 1:
        return (s1, s2 + (1,)) if len(s2) == 1 else (s1[:-1], s2)
    if len(s2) == len(s1) + 1 and s2[-1] == 1:
        return (s1 + (1,), s2) if len(s1) == 1 else (s1, s2[:-1])
    return s1, s2


def _dims_match(a, b):
    return len(a) == len(b) and all(x is None or y is None or x == y for x, y in zip(a, b))


def _broadcastable(a, b):
    for x, y in zip(reversed(a), reversed(b)):
        if x is not None and y is not None and x != y and 1 not in (x, y):
            return False
    return True


def _check_same_shape(fn_name, target, output):
    """TensorFlow's check in binary/categorical crossentropy (no broadcasting between targets and outputs)."""
    if len(target.shape) != len(output.shape):
        raise ValueError(f"{fn_name}: arguments `target` and `output` must have the same rank (ndim). "
                         f"Received: target.shape={format_shape(target.shape)}, "
                         f"output.shape={format_shape(output.shape)}")
    if not _dims_match(target.shape, output.shape):
        raise ValueError(f"{fn_name}: arguments `target` and `output` must have the same shape. "
                         f"Received: target.shape={format_shape(target.shape)}, "
                         f"output.shape={format_shape(output.shape)}")


def _logits_of(y_pred, kind, axis, fn_name, from_logits):
    """Keras (TensorFlow) computes the crossentropy of a softmax/sigmoid output from that op's input:
    the same here when ``y_pred`` is produced by such an op in the traced graph."""
    value = y_pred.value if isinstance(y_pred, Tensor) else None
    op = getattr(value, "op", None)
    if op is None or op.kind != kind:
        return None
    if kind == "softmax" and op.attrs["axis"] % value.type.rank != axis % value.type.rank:
        return None
    if from_logits:
        warnings.warn(f"`{fn_name}` received `from_logits=True`, but the `output` argument was produced by a "
                      f"{kind} activation and thus does not represent logits. Was this intended?", stacklevel=3)
    return Tensor(op.inputs[0])


def _divide_no_nan(x, y):
    """x / y, and 0 where y == 0 (without a division by zero, so gradients stay finite)."""
    zero = ops.equal(y, 0.0)
    return ops.where(zero, 0.0, x / ops.where(zero, 1.0, y))


def _one_hot(labels, num_classes):
    """int32 class ids -> bool (..., num_classes); ids outside [0, num_classes) give an all-False row."""
    return ops.equal(ops.expand_dims(labels, -1), np.arange(num_classes, dtype=np.int32))


# --- loss functions: (y_true, y_pred) -> per-sample values ---------------------------------------------------
@graph_function
def mean_squared_error(y_true, y_pred):
    y_pred = _float(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
    return ops.mean(ops.square(y_true - y_pred), axis=-1)


@graph_function
def mean_absolute_error(y_true, y_pred):
    y_pred = _float(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
    return ops.mean(ops.abs(y_true - y_pred), axis=-1)


@graph_function
def huber(y_true, y_pred, delta=1.0):
    y_pred = _float(y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(_float(y_true), y_pred)
    error = y_pred - y_true
    abs_error = ops.abs(error)
    half_delta_sq = float(np.float32(0.5) * np.square(np.float32(delta)))
    linear = _f32(delta) * abs_error - half_delta_sq
    # Keras: where(|e| <= delta, quadratic, linear); written with `greater`, same values (NaN included)
    return ops.mean(ops.where(ops.greater(abs_error, _f32(delta)), linear, 0.5 * ops.square(error)), axis=-1)


@graph_function
def kl_divergence(y_true, y_pred):
    y_pred = ops.clip(_float(y_pred), EPSILON, 1.0)
    y_true = ops.clip(_float(y_true), EPSILON, 1.0)
    return ops.sum(y_true * ops.log(y_true / y_pred), axis=-1)


@graph_function
def binary_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    y_pred, y_true = _float(y_pred), _float(y_true)
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    _check_same_shape("binary_crossentropy", y_true, y_pred)
    logits = _logits_of(y_pred, "sigmoid", -1, "binary_crossentropy", from_logits)
    if logits is not None:
        y_pred, from_logits = logits, True
    if from_logits:
        # TF's sigmoid_cross_entropy_with_logits: max(x, 0) - x*z + log1p(exp(-|x|)) = softplus(x) - x*z
        values = ops.softplus(y_pred) - y_pred * y_true
    else:
        p = ops.clip(y_pred, EPSILON, 1.0 - EPSILON)
        values = -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))
    return ops.mean(values, axis=axis)


@graph_function
def categorical_crossentropy(y_true, y_pred, from_logits=False, label_smoothing=0.0, axis=-1):
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    y_pred, y_true = _float(y_pred), _float(y_true)
    if y_pred.shape[-1] == 1:
        warnings.warn("In loss categorical_crossentropy, expected y_pred.shape to be (batch_size, num_classes) "
                      f"with num_classes > 1. Received: y_pred.shape={format_shape(y_pred.shape)}. "
                      "Consider using 'binary_crossentropy' if you only have 2 classes.", SyntaxWarning,
                      stacklevel=3)
    if label_smoothing:
        num_classes = y_true.shape[-1]
        if num_classes is None:
            raise ValueError("categorical_crossentropy: label_smoothing needs a known number of classes "
                             f"(last axis), received y_true.shape={format_shape(y_true.shape)}")
        y_true = y_true * (1.0 - label_smoothing) + _f32(np.float32(label_smoothing) / np.float32(num_classes))
    _check_same_shape("categorical_crossentropy", y_true, y_pred)
    logits = _logits_of(y_pred, "softmax", axis, "categorical_crossentropy", from_logits)
    if logits is not None:
        y_pred, from_logits = logits, True
    if from_logits:
        return -ops.sum(y_true * ops.log_softmax(y_pred, axis=axis), axis=axis)
    # TF normalises the probabilities to sum to one, then clips them
    p = ops.clip(y_pred / ops.sum(y_pred, axis=axis, keepdims=True), EPSILON, 1.0 - EPSILON)
    return -ops.sum(y_true * ops.log(p), axis=axis)


def _sparse_labels(y_true, y_pred, axis, fn_name):
    """Check shapes as TensorFlow does; return int32 labels of shape y_pred.shape[:-1]."""
    rank = len(y_pred.shape)
    if axis not in (-1, rank - 1):
        raise ValueError(f"{fn_name}: only axis=-1 is currently supported. Received: axis={axis}")
    if len(y_true.shape) == rank and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    if len(y_true.shape) != rank - 1 or not _dims_match(y_true.shape, y_pred.shape[:-1]):
        raise ValueError(f"{fn_name}: arguments `target` and `output` must have the same shape up until the "
                         f"last dimension: target.shape={format_shape(y_true.shape)}, "
                         f"output.shape={format_shape(y_pred.shape)}")
    if y_pred.shape[-1] is None:
        raise ValueError(f"{fn_name} needs a known number of classes (last axis of y_pred), received "
                         f"output.shape={format_shape(y_pred.shape)}")
    return y_true if y_true.dtype == "int32" else ops.cast(y_true, "int32")


def _ignore_mask(labels, ignore_class):
    return ops.cast(ops.equal(labels, int(ignore_class)), "float32")


@graph_function
def sparse_categorical_crossentropy(y_true, y_pred, from_logits=False, ignore_class=None, axis=-1):
    """y_true: integer class ids, shape y_pred.shape[:-1] (or with a trailing 1). Ids outside
    [0, num_classes) give a loss of 0 here (TensorFlow raises on CPU): Loss.check_target_values checks them."""
    y_pred = _float(y_pred)
    labels = _sparse_labels(y_true, y_pred, axis, "sparse_categorical_crossentropy")
    if ignore_class is not None:
        # as Keras: ignored positions get label 0 and zero predictions, then a zero loss
        valid = ops.equal(_ignore_mask(labels, ignore_class), 0.0)
        labels = ops.where(valid, labels, np.zeros((1,), np.int32))
        y_pred = ops.where(ops.expand_dims(valid, -1), y_pred, 0.0)
    logits = _logits_of(y_pred, "softmax", -1, "sparse_categorical_crossentropy", from_logits)
    if logits is not None:
        y_pred, from_logits = logits, True
    if not from_logits:
        # TF takes log of the clipped probabilities as logits of sparse_softmax_cross_entropy_with_logits
        y_pred = ops.log(ops.clip(y_pred, EPSILON, 1.0 - EPSILON))
    one_hot = ops.cast(_one_hot(labels, y_pred.shape[-1]), "float32")
    values = -ops.sum(one_hot * ops.log_softmax(y_pred, axis=-1), axis=-1)
    if ignore_class is not None:
        values = ops.where(valid, values, 0.0)
    return values


# --- reduction (keras.src.losses.loss) -------------------------------------------------------------------------
def standardize_reduction(reduction):
    if reduction not in REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {set(REDUCTIONS)}. "
                         f"Received: reduction={reduction}")
    return reduction


def _apply_mask(sample_weight, mask, reduction):
    """Merge a {0, 1} float mask into the sample weights (Keras's apply_mask)."""
    if mask is None:
        return sample_weight
    if reduction in ("mean", "sum_over_batch_size"):
        # valid entries weigh total/valid, so the mean over all entries is the mean over the valid ones
        mask = mask * _divide_no_nan(1.0, ops.mean(mask))
    if sample_weight is None:
        return mask
    mask, sample_weight = squeeze_or_expand_to_same_rank(mask, sample_weight)
    return sample_weight * mask


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    if reduction in (None, "none") or tuple(values.shape) in ((), (0,)):
        return values
    if reduction == "sum":
        return ops.sum(values)
    if reduction == "mean_with_sample_weight" and sample_weight is not None:
        return _divide_no_nan(ops.sum(values), ops.sum(sample_weight))
    return ops.mean(values)  # the sum over the number of elements, whatever the weights


@graph_function
def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size"):
    reduction = standardize_reduction(reduction)
    values = _float(values)
    if sample_weight is not None:
        sample_weight = _float(sample_weight)
    sample_weight = _apply_mask(sample_weight, mask, reduction)
    if sample_weight is not None:
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        mismatched = any(w is not None and v is not None and 1 not in (w, v) and w != v
                         for w, v in zip(sample_weight.shape, values.shape))
        if 0 < len(sample_weight.shape) < len(values.shape) or mismatched:
            # broadcasting would align the weights' batch axis with a later axis of the values: TensorFlow
            # fails on that (unless the sizes happen to agree, and then it weighs the wrong entries)
            raise ValueError(f"sample_weight of shape {format_shape(sample_weight.shape)} cannot weigh loss values "
                             f"of shape {format_shape(values.shape)}; give one weight per value "
                             f"(shape {format_shape(values.shape)}) or leave sample_weight out")
        values = values * sample_weight
    return reduce_values(values, sample_weight, reduction)


# --- Loss classes ------------------------------------------------------------------------------------------------
class Loss:
    """Keras's Loss: subclasses define ``call(y_true, y_pred)`` (per-sample values) with graphc.ops."""

    target_dtype = "float32"  # the dtype the trainer feeds targets in
    _shape_rule = None  # "broadcast" | "same" | "sparse" | None (no check: a custom loss decides)

    def __init__(self, name=None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.reduction = standardize_reduction(reduction)
        self._dtype = _check_dtype(dtype)

    @property
    def dtype(self):
        return self._dtype

    @graph_function
    def __call__(self, y_true, y_pred, sample_weight=None):
        keras_mask = input_mask(y_pred)  # a masked output's padding is left out, as in Keras
        y_pred = _float(y_pred)
        if self.target_dtype == "float32":
            y_true = _float(y_true)
        values = self.call(y_true, y_pred)
        mask = self.mask(y_true, y_pred)
        if keras_mask is not None:
            keras_mask = ops.cast(keras_mask, "float32")
            mask = keras_mask if mask is None else mask * keras_mask
        return reduce_weighted_values(values, sample_weight, mask, self.reduction)

    def mask(self, y_true, y_pred):
        """A float {0, 1} mask over the per-sample values (entries to leave out), or None."""
        return None

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def check_target_shape(self, y_true_shape, y_pred_shape, output_name):
        """Raise ValueError when targets of ``y_true_shape`` cannot meet predictions of ``y_pred_shape``
        (both with the batch axis; None = unknown) under this loss, as Keras would at its first step."""
        rule = self._shape_rule
        if rule is None:
            return
        t, p = tuple(y_true_shape), tuple(y_pred_shape)
        passed = self.__dict__.setdefault("_passed_shapes", set())  # remembered: the trainer checks every batch
        if (rule, t, p) in passed:
            return
        t2, p2 = _squeeze_or_expand_shapes(t, p)
        if rule == "sparse":
            if len(t2) == len(p2) and t2[-1] == 1:
                t2 = t2[:-1]
            ok = len(t2) == len(p2) - 1 and _dims_match(t2, p2[:-1]) and p[-1] is not None
        elif rule == "same":
            ok = _dims_match(t2, p2)
        else:
            ok = _broadcastable(t2, p2) and len(t2) <= len(p2)
        if not ok:
            raise ValueError(f"Output '{output_name}': loss '{self.name}' ({type(self).__name__}) expects targets "
                             f"of shape {_expected_targets(rule, p)}, received targets of shape {format_shape(t)} "
                             f"for predictions of shape {format_shape(p)}.")
        passed.add((rule, t, p))

    def check_target_values(self, y_true, y_pred_shape, output_name):
        """Raise ValueError for target values the loss cannot take (class ids out of range)."""

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}>"


def _expected_targets(rule, y_pred_shape):
    """The targets' shape a shape rule accepts for predictions of ``y_pred_shape``, as error messages say it."""
    p = y_pred_shape
    if rule == "sparse":
        return f"{format_shape(p[:-1])} or {format_shape(p[:-1] + (1,))} (integer class ids)"
    if rule == "same":
        return format_shape(p)
    return f"{format_shape(p)} (or broadcastable to it)"


def _ids_in_range(ids, num_classes):
    """Whether every integer id is in [0, num_classes)."""
    if ids.size <= 256:  # a batch's labels: Python's min and max of a list cost less than NumPy's reductions
        values = ids.ravel().tolist()
        return not values or (min(values) >= 0 and max(values) < num_classes)
    return ids.min() >= 0 and ids.max() < num_classes


def _sparse_check_values(loss, y_true, y_pred_shape, output_name, ignore_class):
    num_classes = y_pred_shape[-1]
    y_true = np.asarray(y_true)
    if y_true.dtype.kind in "iu" and _ids_in_range(y_true, num_classes):
        return  # (the trainer's int32 targets, checked on every batch: no float copy when all are valid)
    ids = np.trunc(np.asarray(y_true, dtype=np.float64))  # float labels are truncated, as TF casts them
    if ignore_class is not None:
        ids = ids[ids != ignore_class]
    bad = ids[~((ids >= 0) & (ids < num_classes))]
    if bad.size:
        raise ValueError(f"Output '{output_name}': loss '{loss.name}' received a label value of {bad.flat[0]:g} "
                         f"which is outside the valid range of [0, {num_classes}).")


@register("losses")
class LossFunctionWrapper(Loss):
    """A Loss around a function ``fn(y_true, y_pred, **kwargs)`` (what compile does with a loss name)."""

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    @property
    def target_dtype(self):
        return "int32" if self.fn is sparse_categorical_crossentropy else "float32"

    @property
    def _shape_rule(self):
        return _SHAPE_RULES.get(self.fn)

    def call(self, y_true, y_pred):
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def mask(self, y_true, y_pred):
        ignore = self._fn_kwargs.get("ignore_class")
        if self.fn is not sparse_categorical_crossentropy or ignore is None:
            return None
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        labels = _sparse_labels(y_true, y_pred, -1, "sparse_categorical_crossentropy")
        return 1.0 - _ignore_mask(labels, ignore)

    def check_target_values(self, y_true, y_pred_shape, output_name):
        if self.fn is sparse_categorical_crossentropy:
            _sparse_check_values(self, y_true, y_pred_shape, output_name, self._fn_kwargs.get("ignore_class"))

    def get_config(self):
        return {**super().get_config(), "fn": serialize(self.fn), **self._fn_kwargs}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config:
            config["fn"] = deserialize(config["fn"])
        return cls(**config)

    def __repr__(self):
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


@register("losses")
class MeanSquaredError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@register("losses")
class MeanAbsoluteError(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


@register("losses")
class Huber(LossFunctionWrapper):
    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)
        self.delta = delta

    def get_config(self):
        # Keras 3 leaves delta out of the config (and so loses it on reload); kept here
        return {**Loss.get_config(self), "delta": self.delta}


@register("losses")
class KLDivergence(LossFunctionWrapper):
    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)

    def get_config(self):
        return Loss.get_config(self)


class _Crossentropy(LossFunctionWrapper):
    def __init__(self, fn, from_logits, label_smoothing, axis, reduction, name, dtype):
        super().__init__(fn, name=name, reduction=reduction, dtype=dtype, from_logits=from_logits,
                         label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        return {**Loss.get_config(self), "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
                "axis": self.axis}


@register("losses")
class BinaryCrossentropy(_Crossentropy):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, from_logits, label_smoothing, axis, reduction, name, dtype)


@register("losses")
class CategoricalCrossentropy(_Crossentropy):
    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, from_logits, label_smoothing, axis, reduction, name, dtype)


@register("losses")
class SparseCategoricalCrossentropy(LossFunctionWrapper):
    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis

    def get_config(self):
        return {**Loss.get_config(self), "from_logits": self.from_logits, "ignore_class": self.ignore_class}


# --- lookup and serialization -------------------------------------------------------------------------------------
_SHAPE_RULES = {mean_squared_error: "broadcast", mean_absolute_error: "broadcast", huber: "broadcast",
                kl_divergence: "broadcast", binary_crossentropy: "same", categorical_crossentropy: "same",
                sparse_categorical_crossentropy: "sparse"}

FUNCTIONS = {fn.__name__: fn for fn in _SHAPE_RULES}
ALIASES = {"mse": mean_squared_error, "MSE": mean_squared_error, "mae": mean_absolute_error,
           "MAE": mean_absolute_error, "bce": binary_crossentropy, "BCE": binary_crossentropy,
           "kld": kl_divergence, "KLD": kl_divergence,
           "kullback_leibler_divergence": kl_divergence}  # the last one: tf.keras 2 name, kept for old scripts
_CLASSES = (MeanSquaredError, MeanAbsoluteError, Huber, KLDivergence, BinaryCrossentropy,
            CategoricalCrossentropy, SparseCategoricalCrossentropy)


def known_names():
    return sorted([*FUNCTIONS, *ALIASES, *(c.__name__ for c in _CLASSES), "crossentropy", "ce"])


def _crossentropy_for(y_true_shape, y_pred_shape):
    """compile's 'crossentropy'/'ce': binary, sparse or categorical from the shapes (Keras's rule)."""
    if y_true_shape is None or y_pred_shape is None:
        raise ValueError("The loss 'crossentropy' is chosen from the target and prediction shapes, "
                         "which were not given")
    is_binary = y_pred_shape[-1] == 1
    is_sparse = len(y_true_shape) < len(y_pred_shape) or (y_true_shape[-1] == 1 and y_pred_shape[-1] > 1)
    return binary_crossentropy if is_binary else sparse_categorical_crossentropy if is_sparse \
        else categorical_crossentropy


def get(identifier, y_true_shape=None, y_pred_shape=None):
    """A loss name, Loss class or instance, config dict or plain function -> a Loss instance (None -> None).

    Names resolve as ``model.compile`` does: a function name or alias becomes a LossFunctionWrapper named as
    written ("mse"); "crossentropy"/"ce" pick binary/sparse/categorical from the shapes (with the batch axis).
    """
    if identifier is None or isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Loss):
        return identifier()
    if isinstance(identifier, dict):
        return get(deserialize(identifier), y_true_shape, y_pred_shape)
    if isinstance(identifier, str):
        if identifier.lower() in ("crossentropy", "ce"):
            return LossFunctionWrapper(_crossentropy_for(y_true_shape, y_pred_shape), name=identifier)
        fn = FUNCTIONS.get(identifier) or ALIASES.get(identifier)
        if fn is not None:
            return LossFunctionWrapper(fn, name=identifier)
        cls = next((c for c in _CLASSES if c.__name__ == identifier), None) \
            or visible_custom_objects().get(identifier)
        if cls is None:
            raise ValueError(f"Unknown loss {identifier!r}. Known losses: {', '.join(known_names())}. A loss of "
                             "your own: pass the function or Loss, or register it with "
                             "@graphc.saving.register_keras_serializable()")
        return get(cls, y_true_shape, y_pred_shape)
    if callable(identifier):
        return LossFunctionWrapper(identifier, name=getattr(identifier, "__name__", None))
    raise ValueError(f"Could not interpret loss identifier: {identifier!r}")


def serialize(loss):
    """A Loss -> Keras's object config; a loss function -> Keras's function config."""
    if isinstance(loss, Loss):
        return serialize_object(loss)
    name = getattr(loss, "__name__", None)
    if FUNCTIONS.get(name) is loss:
        return {"module": "keras.losses", "class_name": "function", "config": name, "registered_name": "function"}
    return serialize_function(loss)


def deserialize(config, custom_objects=None):
    """Inverse of serialize: a Loss instance, or the function for a function config or name (custom objects,
    registered or in scope, first)."""
    if isinstance(config, dict) and config.get("class_name") == "function":
        return function_from_config(config, {**ALIASES, **FUNCTIONS}, "loss function", custom_objects)
    if isinstance(config, str):
        fn = visible_custom_objects(custom_objects).get(config) or FUNCTIONS.get(config) or ALIASES.get(config)
        if fn is not None and not isinstance(fn, type):
            return fn
    return get_from_registry("losses", config, custom_objects=custom_objects)


__all__ = ["Loss", "LossFunctionWrapper", *(c.__name__ for c in _CLASSES), *FUNCTIONS, "get", "serialize",
           "deserialize", "reduce_weighted_values", "squeeze_or_expand_to_same_rank", "graph_function"]
