"""Keras's training API on a Model: compile, fit, evaluate, train_on_batch, test_on_batch.

Every batch is one call of a compiled step (graphc/training/step.py); this module only moves data,
accumulates the logs and drives the callbacks.
"""
from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..layers.base import Layer, weight_sets_version
from . import data
from .step import build_step, run_step


@dataclass
class CompileSpec:
    optimizer: object
    losses: list          # per output: a graphc Loss, or None (output not trained)
    loss_weights: list    # per output: float
    metric_ids: list      # per output: list of identifiers as given (resolved once targets are seen)
    output_names: list
    metrics: list = None  # per output: list of Metric objects

    def __post_init__(self):
        self.live = [k for k, lo in enumerate(self.losses) if lo is not None]  # the outputs with a loss


def _resolve_compile(model, optimizer, loss, loss_weights, metrics):
    from .. import losses as losses_mod
    from .. import metrics as metrics_mod
    from .. import optimizers
    names = data.output_keys(model)
    opt = optimizers.get(optimizer)
    if loss is None:
        raise ValueError(f"Model '{model.name}': compile() needs a loss (e.g. loss='mse'); "
                         "graphc does not train models without one")
    per_loss = data.per_output(model, loss, "loss")
    if not any(lo is not None for lo in per_loss):
        raise ValueError(f"Model '{model.name}': compile() received no loss for any output {names}")
    per_loss = [None if lo is None else losses_mod.get(lo) for lo in per_loss]
    if loss_weights is None:
        weights = [1.0] * len(names)
    else:
        weights = [1.0 if w is None else float(w) for w in data.per_output(model, loss_weights, "loss_weights",
                                                                         allow_single=False)]
    if metrics is None:
        per_metric = [[] for _ in names]
    elif isinstance(metrics, dict):
        per_metric = [m if isinstance(m, (list, tuple)) else [m] if m is not None else []
                      for m in data.per_output(model, metrics, "metrics")]
    elif len(names) > 1 and isinstance(metrics, (list, tuple)) and any(isinstance(m, (list, tuple)) or m is None
                                                                       for m in metrics):
        per_metric = [list(m) if isinstance(m, (list, tuple)) else [] if m is None else [m]
                      for m in data.per_output(model, list(metrics), "metrics")]
    else:
        per_metric = [list(metrics) if isinstance(metrics, (list, tuple)) else [metrics] for _ in names]
    for ids in per_metric:  # unknown names fail now, before any data or compilation
        for m in ids:
            if isinstance(m, str) and m not in ("accuracy", "acc"):
                metrics_mod.get(m)
    return CompileSpec(opt, per_loss, weights, per_metric, data.output_keys(model))


def _overrides_trainable_weights(layer):
    """Whether ``layer`` or a layer in it defines ``trainable_weights`` itself."""
    return type(layer).trainable_weights is not Layer.trainable_weights or any(
        _overrides_trainable_weights(sub) for sub in layer._layers_for_weights())


class Trainer:
    """Mixed into Model."""

    # --- configuration ---------------------------------------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, weighted_metrics=None,
                run_eagerly=False, steps_per_execution=1, jit_compile="auto", auto_scale_loss=True):
        """Configure training (Keras's arguments). Unknown loss/optimizer/metric names raise here."""
        if weighted_metrics:
            raise ValueError("graphc does not support weighted_metrics yet; metrics use the sample weights "
                             "only through the loss")
        self._compile_config = {"optimizer": optimizer, "loss": loss, "loss_weights": loss_weights,
                                "metrics": metrics}
        self._spec = _resolve_compile(self, optimizer, loss, loss_weights, metrics)
        self.optimizer = self._spec.optimizer
        self.loss = loss
        self._steps = {}
        self._loss_tracker = None
        self.compiled = True
        self.stop_training = False

    def _require_compiled(self, what):
        if not getattr(self, "_spec", None):
            raise ValueError(f"Model '{self.name}': you must call compile() before {what}"
                             f"{'' if ' ' in what else '()'}")

    def _resolve_metrics(self, ys):
        spec = self._spec
        if spec.metrics is None:
            from .. import metrics as metrics_mod
            spec.metrics = []
            for k, ids in enumerate(spec.metric_ids):
                out = self.outputs[k]
                objs = [metrics_mod.get(m, loss=spec.losses[k], y_true_shape=None if ys[k] is None else ys[k].shape,
                                        y_pred_shape=tuple(out.shape)) for m in ids]
                spec.metrics.append(objs)
            self._loss_tracker = metrics_mod.Mean(name="loss")
            self._output_loss_trackers = [metrics_mod.Mean(name=f"{n}_loss") for n in spec.output_names]
            self._all_metrics = [self._loss_tracker, *self._output_loss_trackers, *[m for ms in spec.metrics
                                                                                    for m in ms]]

    @property
    def metrics_names(self):
        return list(self._logs().keys()) if getattr(self, "_spec", None) and self._spec.metrics is not None else []

    def reset_metrics(self):
        if getattr(self, "_spec", None) and self._spec.metrics is not None:
            for m in self._all_metrics:
                m.reset_state()

    def _logs(self):
        spec = self._spec
        logs = {"loss": self._loss_tracker.result()}
        if len(spec.live) > 1:
            for k in spec.live:
                logs[f"{spec.output_names[k]}_loss"] = self._output_loss_trackers[k].result()
        for k, ms in enumerate(spec.metrics):
            for m in ms:
                key = m.name if len(spec.output_names) == 1 else f"{spec.output_names[k]}_{m.name}"
                logs[key] = m.result()
        return {k: float(v) for k, v in logs.items()}

    # --- one step -------------------------------------------------------------------------------------------
    def _step_graph(self, train, xs, ys, sws):
        """The step for these per-sample shapes (variable-length inputs get a graph per length) and weighting,
        rebuilt when the set of trainable weights changes."""
        weighted = [None if s is None else s.shape[1:] for s in sws]
        key = (train, tuple([a.shape[1:] for a in xs]), tuple([None if y is None else y.shape[1:] for y in ys]),
               tuple(weighted), self._trainable_ids() if train else ())
        step = self._steps.get(key)
        if step is None:
            step = self._steps[key] = build_step(self, self._spec, train, [a.shape for a in xs],
                                                 [None if y is None else y.shape for y in ys], weighted)
        return step

    def _trainable_ids(self):
        """The ids of ``trainable_weights``, kept until some layer's weights may have changed
        (``weight_sets_version``): walking every layer on every batch costs more than the rest of the key.
        Not kept when a layer computes its own trainable_weights (a change there bumps no version)."""
        version = weight_sets_version()
        cached = self.__dict__.get("_trainable_ids_cache")
        if cached is not None and cached[0] == version:
            return cached[1]
        ids = tuple(id(v) for v in self.trainable_weights)
        if not _overrides_trainable_weights(self):
            self._trainable_ids_cache = (version, ids)
        return ids

    def _training_program(self, xs):
        """The compiled train step for inputs shaped like ``xs`` (targets shaped as the losses expect)."""
        from .. import runtime
        self._require_compiled("memory_report(training=True) needs")
        ys = [None if lo is None else np.zeros((1,) if lo.target_dtype == "int32" else (1,) + tuple(t.shape[1:]),
                                                lo.target_dtype)
              for lo, t in zip(self._spec.losses, self.outputs)]
        self._resolve_metrics(ys)
        step = self._step_graph(True, xs, ys, [None] * len(ys))
        if not step.program:
            step.program = runtime.compile_graph(step.graph, title="train step", output_aliases=step.output_aliases())
        return step.program

    def _profiled_step(self, x, y):
        """For Model.profile(training=True): a twin of the train step for (x, y) with a timer per op, and a
        call running it on copies of the weights and the optimizer's state (the model's stay as they are)."""
        from .. import runtime
        self._require_compiled("profile with training=True")
        xs, ys, sws = self._prepare(x, y, None, None)
        self._resolve_metrics(ys)
        step = self._step_graph(True, xs, ys, sws)
        aliases = step.output_aliases()
        program = runtime.compile_graph(step.graph, title=f"train step of model {self.name} (profiled)",
                                        output_aliases=aliases, profile=True)
        copies = {}
        params = [copies.setdefault(id(k), np.array(k.value)) for k in program.param_keys]
        outputs = [None] * (len(step.graph.outputs) - len(aliases)) + [
            copies.setdefault(id(v), np.array(v.value)) for v in step.updated]
        arrays = self._step_inputs(step, True, xs, ys, sws, 0)
        prepared = program.prepared_copies(params)  # (packed Dense kernels, as the real step keeps them)
        return program, lambda: program.run(arrays, params, outputs=outputs, prepared=prepared), len(xs[0])

    def _run_batch(self, train, xs, ys, sws):
        self._resolve_metrics(ys)
        step = self._step_graph(train, xs, ys, sws)
        rng_step = getattr(self, "_rng_steps", 0)
        results = run_step(step, self, self._step_inputs(step, train, xs, ys, sws, rng_step),
                           "train step" if train else "test step")
        self._rng_steps = rng_step + 1
        if train:
            self.optimizer.finish_step()
        n = len(xs[0])
        self._loss_tracker.accumulate(results[0] * n, n)  # Keras weighs each batch's loss by its size
        if step.n_losses > 1:
            # Keras on TensorFlow weighs these by a batch size its traced step does not know, i.e. equally.
            for k, value in zip(self._spec.live, results[1:step.n_losses]):
                self._output_loss_trackers[k].accumulate(value, 1)
        sums = results[step.n_losses:]
        for j, (k, metric) in enumerate(step.metric_slots):
            metric.accumulate(sums[2 * j], sums[2 * j + 1])
        return self._logs()

    def _step_inputs(self, step, train, xs, ys, sws, rng_step):
        """The step's input arrays, in the order of its graph's inputs (``step.feeds``)."""
        data_groups = {"x": xs, "y": ys, "sw": sws}
        hyper = self.optimizer.hyperparameters() if train else None
        arrays = []
        for feed in step.feeds:
            if feed[0] == "hyper":
                arrays.append(np.float32(hyper[feed[1]]))
            elif feed[0] == "rng":
                arrays.append(np.int32(rng_step % (2 ** 31)))
            else:
                arrays.append(data_groups[feed[0]][feed[1]])
        return arrays

    def _prepare(self, x, y, sample_weight, class_weight):
        xs = self._standardize_inputs(x)
        n = len(xs[0])
        ys = data.targets(self, self._spec, y, n)
        sws = data.sample_weights(self, self._spec, sample_weight, class_weight, ys, n)
        return [xs, ys, sws]

    @staticmethod
    def _returned(logs, return_dict):
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None, return_dict=False):
        """One optimizer step on one batch; returns this batch's loss (and metrics)."""
        self._require_compiled("train_on_batch")
        self.reset_metrics()  # Keras 3 reports this batch alone
        return self._returned(self._run_batch(True, *self._prepare(x, y, sample_weight, class_weight)), return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        self._require_compiled("test_on_batch")
        self.reset_metrics()
        return self._returned(self._run_batch(False, *self._prepare(x, y, sample_weight, None)), return_dict)

    # --- loops ----------------------------------------------------------------------------------------------
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None, validation_split=0.0,
            validation_data=None, shuffle=True, class_weight=None, sample_weight=None, initial_epoch=0,
            steps_per_epoch=None, validation_steps=None, validation_batch_size=None, validation_freq=1):
        """Train for ``epochs`` epochs over (x, y) in batches; returns the History (also ``model.history``)."""
        from ..callbacks import CallbackList
        from ..utils.random import global_rng
        self._require_compiled("fit")
        for what, value in (("steps_per_epoch", steps_per_epoch), ("validation_steps", validation_steps)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ValueError(f"fit: {what} must be a positive int (a number of batches), received {value!r}")
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"fit: batch_size must be positive, received {batch_size}")
        train = self._prepare(x, y, sample_weight, class_weight)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, val_sample_weight)")
            val = self._prepare(validation_data[0], validation_data[1],
                                validation_data[2] if len(validation_data) == 3 else None, None)
        elif validation_split:
            train, val = data.split_validation(train, validation_split)
        n = len(train[0][0])
        steps = max(1, math.ceil(n / batch_size))
        if steps_per_epoch is not None:  # (Keras: each epoch takes that many batches of the shuffled data)
            if steps_per_epoch > steps:
                warnings.warn(f"fit: steps_per_epoch={steps_per_epoch}, but the data make {steps} batches of "
                              f"{batch_size}; each epoch runs {steps}", stacklevel=2)
            steps = min(steps, steps_per_epoch)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=self,
                           verbose=verbose, epochs=epochs, steps=steps)
        self.stop_training = False
        self._resolve_metrics(train[1])
        cbs.on_train_begin()
        epoch_logs = {}
        for epoch in range(initial_epoch, epochs):
            self.reset_metrics()
            cbs.on_epoch_begin(epoch)
            logs = {}
            for step, batch in enumerate(itertools.islice(data.batches(train, batch_size, shuffle, global_rng()),
                                                          steps)):
                cbs.on_train_batch_begin(step)
                logs = self._run_batch(True, *batch)
                cbs.on_train_batch_end(step, logs)
                if self.stop_training:
                    break
            epoch_logs = dict(logs)
            if val is not None and (epoch + 1) % validation_freq == 0:
                val_logs = self._evaluate_loop(val, validation_batch_size or batch_size, cbs, verbose=0,
                                               max_steps=validation_steps)
                epoch_logs.update({f"val_{k}": v for k, v in val_logs.items()})
            cbs.on_epoch_end(epoch, epoch_logs)
            if self.stop_training:
                break
        cbs.on_train_end(logs=epoch_logs)
        return self.history

    def _evaluate_loop(self, groups, batch_size, callbacks, verbose, max_steps=None):
        from ..callbacks import CallbackList
        n = len(groups[0][0])
        steps = max(1, math.ceil(n / batch_size))
        if max_steps is not None:
            steps = min(steps, max_steps)
        cbs = callbacks if isinstance(callbacks, CallbackList) else CallbackList(
            callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1, steps=steps)
        self.reset_metrics()
        cbs.on_test_begin()
        logs = {}
        for step, batch in enumerate(itertools.islice(data.batches(groups, batch_size, False, None), steps)):
            cbs.on_test_batch_begin(step)
            logs = self._run_batch(False, *batch)
            cbs.on_test_batch_end(step, logs)
        cbs.on_test_end(logs)
        return logs

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None, steps=None,
                 callbacks=None, return_dict=False):
        """The loss and metrics over (x, y): a scalar when there are no metrics, else [loss, *metrics]."""
        self._require_compiled("evaluate")
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
            raise ValueError(f"evaluate: steps must be a positive int (batches to evaluate), received {steps!r}")
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"evaluate: batch_size must be positive, received {batch_size}")
        groups = self._prepare(x, y, sample_weight, None)
        self._resolve_metrics(groups[1])
        logs = self._evaluate_loop(groups, batch_size, callbacks, 1 if verbose == "auto" else int(verbose), steps)
        return self._returned(logs, return_dict)
