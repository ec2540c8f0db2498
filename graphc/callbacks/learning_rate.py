"""Callbacks that set the optimizer's learning rate: ReduceLROnPlateau and LearningRateScheduler."""
from __future__ import annotations

import inspect
import warnings

import numpy as np

from ..utils.progbar import print_msg
from .callback import Callback
from .monitor import MonitorCallback


def _optimizers(model):
    """(name, optimizer) pairs: one, or each inner optimizer of a multi-optimizer."""
    opt = model.optimizer
    inner = getattr(opt, "optimizers", None)
    if inner is not None:
        return [(getattr(o, "name", f"optimizer_{i}"), o) for i, o in enumerate(inner)]
    return [("", opt)]


def _log_learning_rates(model, logs):
    for name, opt in _optimizers(model):
        logs[f"learning_rate_{name}" if name else "learning_rate"] = float(opt.learning_rate)


class ReduceLROnPlateau(MonitorCallback):
    """Multiplies the learning rate by ``factor`` (floored at ``min_lr``) once ``monitor`` has not
    improved by more than ``min_delta`` for ``patience`` epochs, then waits ``cooldown`` epochs before
    counting again. Adds ``learning_rate`` to the epoch logs."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, verbose=0, mode="auto",
                 min_delta=1e-4, cooldown=0, min_lr=0.0, **kwargs):
        if "epsilon" in kwargs:  # the Keras 1/2 name of min_delta
            warnings.warn("ReduceLROnPlateau: `epsilon` is deprecated, use `min_delta` instead.",
                          stacklevel=2)
            min_delta = kwargs.pop("epsilon")
        if kwargs:
            raise TypeError(f"ReduceLROnPlateau got unexpected keyword arguments: {sorted(kwargs)}")
        super().__init__(monitor, mode, min_delta=min_delta)
        if factor >= 1.0:
            raise ValueError(f"ReduceLROnPlateau does not support a factor >= 1.0. Received factor={factor}")
        self.factor = factor
        self.min_lr = min_lr
        self.patience = patience
        self.verbose = verbose
        self.cooldown = cooldown
        self.cooldown_counter = 0
        self.wait = 0

    def _reset(self):
        self.best = None
        self.cooldown_counter = 0
        self.wait = 0

    def on_train_begin(self, logs=None):
        self._reset()

    def in_cooldown(self):
        return self.cooldown_counter > 0

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor_op is None:
            self._set_monitor_op()
        logs = {} if logs is None else logs
        _log_learning_rates(self.model, logs)
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Learning rate reduction is conditioned on metric `{self.monitor}` which is not "
                          f"available. Available metrics are: {','.join(logs)}.", stacklevel=2)
            return
        if self.in_cooldown():
            self.cooldown_counter -= 1
            self.wait = 0
        if self._is_improvement(current, self.best):
            self.best = current
            self.wait = 0
        elif not self.in_cooldown():
            self.wait += 1
            if self.wait >= self.patience:
                reduced = [self._reduce(opt, epoch, name) for name, opt in _optimizers(self.model)]
                if any(reduced):
                    self.cooldown_counter = self.cooldown
                    self.wait = 0

    def _reduce(self, optimizer, epoch, name):
        old_lr = float(optimizer.learning_rate)
        # Compared in float32, as the rate is stored: a rate already at min_lr is not "above" it.
        if old_lr <= np.float32(self.min_lr):
            return False
        new_lr = max(old_lr * self.factor, self.min_lr)
        optimizer.learning_rate = new_lr
        if self.verbose > 0:
            which = f" {name}" if name else ""
            print_msg(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing{which} learning rate to {new_lr}.")
        return True


def _takes_two_args(fn):
    try:
        inspect.signature(fn).bind(0, 0.0)
        return True
    except TypeError:
        return False
    except ValueError:  # no signature available (some builtins): try the Keras 3 form
        return True


class LearningRateScheduler(Callback):
    """At each epoch start, sets the learning rate to ``schedule(epoch, lr)`` (or ``schedule(epoch)``)
    with ``epoch`` 0-based and ``lr`` the current rate; adds ``learning_rate`` to the epoch logs."""

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def _update(self, optimizer, epoch):
        if not hasattr(optimizer, "learning_rate"):
            raise ValueError('Optimizer must have a "learning_rate" attribute.')
        if _takes_two_args(self.schedule):
            lr = self.schedule(epoch, float(optimizer.learning_rate))
        else:
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr}")
        optimizer.learning_rate = float(lr)
        return lr

    def on_epoch_begin(self, epoch, logs=None):
        for name, opt in _optimizers(self.model):
            lr = self._update(opt, epoch)
            if self.verbose > 0:
                which = f"{name} " if name else ""
                print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting {which}learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            _log_learning_rates(self.model, logs)
