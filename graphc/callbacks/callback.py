"""The Callback base class (every Keras 3 hook) and CallbackList, which fans each hook out."""
from __future__ import annotations

import numbers

import numpy as np


class Callback:
    """Base class of callbacks: subclass it and override the hooks you need.

    ``params`` is the dict the training loop passes (``verbose``, ``epochs``, ``steps``); ``model`` is
    the model being trained, evaluated or used for prediction."""

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        # getattr: a subclass that forgot super().__init__() still works once set_model ran.
        return getattr(self, "_model", None)

    # Keras 2 names: the default train-batch hooks call them, so overriding either works.
    def on_batch_begin(self, batch, logs=None):
        """Alias of ``on_train_batch_begin`` kept for Keras 2 code."""

    def on_batch_end(self, batch, logs=None):
        """Alias of ``on_train_batch_end`` kept for Keras 2 code."""

    def on_epoch_begin(self, epoch, logs=None):
        """Start of training epoch ``epoch`` (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """End of an epoch: ``logs`` holds the epoch's metrics and the ``val_`` ones when validating."""

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        """``logs``: the metrics averaged over the epoch so far."""
        self.on_batch_end(batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        """A batch of ``evaluate`` or of the validation inside ``fit`` starts."""

    def on_test_batch_end(self, batch, logs=None):
        """``logs``: the evaluation metrics averaged so far."""

    def on_predict_batch_begin(self, batch, logs=None):
        """A batch of ``predict`` starts."""

    def on_predict_batch_end(self, batch, logs=None):
        """``logs``: ``{"outputs": batch predictions}``."""

    def on_train_begin(self, logs=None):
        """Start of ``fit``."""

    def on_train_end(self, logs=None):
        """End of ``fit``; ``logs`` are those of the last epoch."""

    def on_test_begin(self, logs=None):
        """Start of ``evaluate`` (or of a validation run)."""

    def on_test_end(self, logs=None):
        """End of ``evaluate``; ``logs`` hold the final evaluation metrics."""

    def on_predict_begin(self, logs=None):
        """Start of ``predict``."""

    def on_predict_end(self, logs=None):
        """End of ``predict``."""


def pythonify_logs(logs):
    """A new dict with nested dicts flattened and scalar values (NumPy or Python) as Python floats.
    Key order is kept (so the progress bar shows loss, metrics, then val_ metrics, as the loop gives
    them); non-scalar values such as predict outputs pass through unchanged."""
    result = {}
    for key, value in (logs or {}).items():
        if isinstance(value, dict):
            result.update(pythonify_logs(value))
        elif isinstance(value, numbers.Real) or (isinstance(value, np.ndarray) and value.ndim == 0
                                                 and value.dtype.kind in "biuf"):
            result[key] = float(value)
        else:
            result[key] = value
    return result


def _flatten(callbacks):
    for cb in callbacks:
        if isinstance(cb, (list, tuple)):
            yield from _flatten(cb)
        elif isinstance(cb, Callback):
            yield cb
        else:
            raise TypeError(f"callbacks must be instances of graphc.callbacks.Callback, received "
                            f"{type(cb).__module__}.{type(cb).__name__}")


class CallbackList(Callback):
    """Calls every callback's hook in order (keras.callbacks.CallbackList).

    ``add_history`` / ``add_progbar`` append a History / ProgbarLogger unless the list already has
    one; the History becomes ``model.history``. ``**params`` (``verbose``, ``epochs``, ``steps``) are
    passed to every callback with ``set_params``. All callbacks receive the same converted logs dict,
    so keys a callback adds (``learning_rate``) reach those after it (History, the progress bar)."""

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        from .loggers import History, ProgbarLogger

        self.callbacks = list(_flatten([callbacks] if isinstance(callbacks, Callback)
                                       else (callbacks or [])))
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.extend(_flatten([callback]))

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model):
        if model is None:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    def _call(self, hook, *args, logs=None):
        logs = pythonify_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)
        return logs

    def on_batch_begin(self, batch, logs=None):
        self._call("on_batch_begin", batch, logs=logs)

    def on_batch_end(self, batch, logs=None):
        self._call("on_batch_end", batch, logs=logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs=logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs=logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs=logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs=logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs=logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._call("on_predict_batch_begin", batch, logs=logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._call("on_predict_batch_end", batch, logs=logs)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs=logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs=logs)

    def on_predict_begin(self, logs=None):
        self._call("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._call("on_predict_end", logs=logs)
