"""Callbacks watching one logged quantity: the shared improvement test, and EarlyStopping."""
from __future__ import annotations

import warnings

from ..utils.progbar import print_msg
from .callback import Callback

# Keras metric names (as they appear in logs, possibly prefixed by an output name) and the direction
# in which they improve; used for mode="auto" when the model's metric objects do not say.
_MAXIMIZED = ("accuracy", "acc", "auc", "precision", "recall", "f1_score", "fbeta_score", "r2_score",
              "cosine_similarity", "iou")
_MINIMIZED = ("loss", "mean_squared_error", "mse", "mean_absolute_error", "mae",
              "mean_absolute_percentage_error", "mape", "mean_squared_logarithmic_error", "msle",
              "root_mean_squared_error", "log_cosh_error", "logcosh", "crossentropy", "hinge",
              "kl_divergence", "kld", "poisson")


def _metric_direction(model, name):
    """'up'/'down' from a compiled metric object named ``name`` (Keras 3's ``_direction``), else None."""
    pending = list(getattr(model, "metrics", None) or [])
    while pending:
        m = pending.pop()
        pending.extend(getattr(m, "metrics", None) or [])
        if getattr(m, "name", None) == name and getattr(m, "_direction", None) in ("up", "down"):
            return m._direction
    return None


def _name_direction(name):
    def matches(key):
        return name == key or name.endswith("_" + key)
    if any(matches(k) for k in _MINIMIZED) or name.endswith("_loss"):
        return "down"
    if any(matches(k) for k in _MAXIMIZED) or "acc" in name or "auc" in name:
        return "up"
    return None


class MonitorCallback(Callback):
    """Base of callbacks that watch ``monitor`` in the epoch logs: resolves ``mode`` and tells whether
    a value improves on a reference by more than ``min_delta``."""

    def __init__(self, monitor="val_loss", mode="auto", baseline=None, min_delta=0):
        super().__init__()
        if mode not in ("auto", "min", "max"):
            warnings.warn(f"{type(self).__name__} mode '{mode}' is unknown, fallback to auto mode.",
                          stacklevel=3)
            mode = "auto"
        self.monitor = monitor
        self.mode = mode
        self.best = baseline
        self.min_delta = abs(min_delta)
        self.monitor_op = None  # "min" or "max" once resolved (at the first epoch end, as Keras)

    def _set_monitor_op(self):
        if self.mode != "auto":
            self.monitor_op = self.mode
            return
        name = self.monitor.removeprefix("val_")
        direction = ("down" if name == "loss" else None) or _metric_direction(self.model, name) \
            or _name_direction(name)
        if direction is None:
            raise ValueError(
                f"{type(self).__name__} callback received monitor={self.monitor}, but graphc isn't able "
                "to automatically determine whether that metric should be maximized or minimized. Pass "
                "`mode='max'` in order to monitor based on the highest metric value, or pass "
                "`mode='min'` in order to use the lowest value.")
        self.monitor_op = "max" if direction == "up" else "min"

    def _is_improvement(self, value, reference):
        if reference is None:
            return True
        if self.monitor_op == "max":
            return value - self.min_delta > reference
        return value + self.min_delta < reference


class EarlyStopping(MonitorCallback):
    """Stops training once ``monitor`` has not improved (by more than ``min_delta``) for ``patience``
    epochs. ``baseline``: training also stops if the value never beats it. ``restore_best_weights``
    puts back the weights of the best epoch when training ends. Epochs before ``start_from_epoch``
    are ignored (warm-up)."""

    def __init__(self, monitor="val_loss", min_delta=0, patience=0, verbose=0, mode="auto",
                 baseline=None, restore_best_weights=False, start_from_epoch=0):
        super().__init__(monitor, mode, min_delta=min_delta)
        self.patience = patience
        self.verbose = verbose
        self.baseline = baseline
        self.wait = 0
        self.stopped_epoch = 0
        self.restore_best_weights = restore_best_weights
        self.best_weights = None
        self.best_epoch = 0
        self.start_from_epoch = start_from_epoch

    def on_train_begin(self, logs=None):
        # Reusable across fit calls.
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_weights = None
        self.best_epoch = 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        current = self.get_monitor_value(logs)
        if current is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            # Nothing better seen yet: the current weights are the best so far.
            self.best_weights = self.model.get_weights()
            self.best_epoch = epoch
        self.wait += 1
        if self._is_improvement(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            # Patience restarts only when the value also beats the baseline.
            if self.baseline is None or self._is_improvement(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose > 0:
            print_msg(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose > 0:
                print_msg(f"Restoring model weights from the end of the best epoch: {self.best_epoch + 1}.")
            self.model.set_weights(self.best_weights)

    def get_monitor_value(self, logs):
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            warnings.warn(f"Early stopping conditioned on metric `{self.monitor}` which is not available. "
                          f"Available metrics are: {','.join(logs)}", stacklevel=2)
        return value
