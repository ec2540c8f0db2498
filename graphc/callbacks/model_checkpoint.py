"""ModelCheckpoint: saves the model (or its weights) during training, every epoch or every N batches,
optionally only when the monitored value improves. Every write goes to a temporary file in the target
directory that then replaces the target in one rename, so an interrupted or failing save never
leaves a half-written file where a good checkpoint was."""
from __future__ import annotations

import os
import uuid
import warnings

import numpy as np

from ..utils.progbar import print_msg
from .monitor import MonitorCallback

_WEIGHTS_SUFFIX = ".weights.h5"
_MODEL_SUFFIX = ".keras"


class ModelCheckpoint(MonitorCallback):
    """Saves the model to ``filepath`` (which may hold ``{epoch:02d}``, ``{batch}`` and log keys such as
    ``{val_loss:.2f}``; ``epoch`` and ``batch`` are 1-based). ``save_best_only`` saves only when
    ``monitor`` improves on the best so far (initially ``initial_value_threshold``).
    ``save_weights_only`` calls ``model.save_weights`` (path ending in ``.weights.h5``), otherwise
    ``model.save`` (path ending in ``.keras``). ``save_freq``: "epoch" or a number of batches."""

    def __init__(self, filepath, monitor="val_loss", verbose=0, save_best_only=False,
                 save_weights_only=False, mode="auto", save_freq="epoch", initial_value_threshold=None):
        super().__init__(monitor, mode, initial_value_threshold)
        self.verbose = verbose
        self.filepath = os.fspath(filepath)
        self.save_best_only = save_best_only
        self.save_weights_only = save_weights_only
        self.save_freq = save_freq
        self._batches_seen_since_last_saving = 0
        self._last_batch_seen = None
        self._current_epoch = 0
        if save_freq != "epoch" and (not isinstance(save_freq, int) or isinstance(save_freq, bool)):
            raise ValueError(f"Unrecognized save_freq: {save_freq}. Expected save_freq are 'epoch' or "
                             "integer values")
        if save_weights_only:
            if not self.filepath.endswith(_WEIGHTS_SUFFIX):
                raise ValueError("When using `save_weights_only=True` in `ModelCheckpoint`, the filepath "
                                 "provided must end in `.weights.h5` (Keras weights format). Received: "
                                 f"filepath={self.filepath}")
        elif not self.filepath.endswith(_MODEL_SUFFIX):
            legacy = self.filepath.endswith(".h5")
            hint = " graphc does not write the legacy HDF5 `.h5` model format." if legacy else ""
            raise ValueError("The filepath provided must end in `.keras` (Keras model format). Received: "
                             f"filepath={self.filepath}.{hint}")

    def on_train_batch_end(self, batch, logs=None):
        if self._should_save_on_batch(batch):
            self._save_model(self._current_epoch, batch, logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._current_epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.save_freq == "epoch":
            self._save_model(epoch, None, logs)

    def _should_save_on_batch(self, batch):
        if self.save_freq == "epoch":
            return False
        if self._last_batch_seen is None or batch <= self._last_batch_seen:
            added = batch + 1  # a new epoch began: batches are 0-based
        else:
            added = batch - self._last_batch_seen
        self._batches_seen_since_last_saving += added
        self._last_batch_seen = batch
        if self._batches_seen_since_last_saving >= self.save_freq:
            self._batches_seen_since_last_saving = 0
            return True
        return False

    def _should_save_model(self, epoch, logs, filepath):
        if not self.save_best_only:
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: saving model to {filepath}")
            return True
        current = logs.get(self.monitor)
        if current is None:
            warnings.warn(f"Can save best model only with {self.monitor} available.", stacklevel=3)
            return True
        if isinstance(current, np.ndarray) and current.ndim > 0:
            warnings.warn("Can save best model only when `monitor` is a scalar value. Received: "
                          f"{current}. Falling back to `save_best_only=False`.", stacklevel=3)
            return True
        if self.monitor_op is None:  # resolved only when needed: plain saving ignores `monitor`
            self._set_monitor_op()
        best_str = "None" if self.best is None else f"{self.best:.5f}"
        if self._is_improvement(current, self.best):
            if self.verbose > 0:
                print_msg(f"\nEpoch {epoch + 1}: {self.monitor} improved from {best_str} to {current:.5f}, "
                          f"saving model to {filepath}")
            self.best = current
            return True
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: {self.monitor} did not improve from {best_str}")
        return False

    def _save_model(self, epoch, batch, logs):
        logs = logs or {}
        filepath = self._get_file_path(epoch, batch, logs)
        if not self._should_save_model(epoch, logs, filepath):
            return
        if os.path.isdir(filepath):
            raise IOError("Please specify a non-directory filepath for ModelCheckpoint. Filepath used is an "
                          f"existing directory: {filepath}")
        dirname = os.path.dirname(filepath)
        if dirname:
            os.makedirs(dirname, exist_ok=True)
        if self.save_weights_only:
            _atomic_save(lambda p: self.model.save_weights(p, overwrite=True), filepath, _WEIGHTS_SUFFIX)
        else:
            _atomic_save(lambda p: self.model.save(p, overwrite=True), filepath, _MODEL_SUFFIX)
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: finished saving model to {filepath}")

    def _get_file_path(self, epoch, batch, logs):
        try:
            if batch is None or "batch" in logs:
                return self.filepath.format(epoch=epoch + 1, **logs)
            return self.filepath.format(epoch=epoch + 1, batch=batch + 1, **logs)
        except KeyError as e:
            raise KeyError(f'Failed to format this callback filepath: "{self.filepath}". '
                           f"Reason: {e}") from None


def _atomic_save(save, filepath, suffix):
    """Run ``save(tmp)`` on a fresh name beside ``filepath`` (same suffix, so the saver accepts it),
    then rename it over ``filepath``; on any failure the temporary file goes and ``filepath`` is
    untouched."""
    directory, base = os.path.split(filepath)
    tmp = os.path.join(directory, f".{base[:-len(suffix)]}.tmp-{uuid.uuid4().hex[:12]}{suffix}")
    try:
        save(tmp)
        os.replace(tmp, filepath)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
