"""Callbacks and the progress bar, driven by hand against a small fake model that has the interface
Model.fit gives them (stop_training, get/set_weights, save, save_weights, optimizer.learning_rate)."""
import csv
import json
import os

import numpy as np
import pytest

from graphc import callbacks as cbks
from graphc.utils import progbar as progbar_mod
from graphc.utils.progbar import Progbar


class FakeOptimizer:
    def __init__(self, learning_rate=0.01):
        self.learning_rate = learning_rate
        self.iterations = 0

    @property
    def learning_rate(self):
        return float(self._lr)

    @learning_rate.setter
    def learning_rate(self, value):
        self._lr = np.float32(value)  # stored like a float32 variable


class FakeModel:
    def __init__(self, learning_rate=0.01):
        self.stop_training = False
        self.optimizer = FakeOptimizer(learning_rate)
        self.weights = [np.zeros((2, 2), "float32"), np.zeros(2, "float32")]
        self.history = None
        self.fail_next_save = False

    def get_weights(self):
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        self.weights = [np.array(w, "float32") for w in weights]

    def train_batch(self, epoch):
        # Weights that say which epoch produced them.
        self.weights = [np.full((2, 2), epoch + 1.0, "float32"), np.full(2, -(epoch + 1.0), "float32")]

    def _write(self, filepath, suffix):
        assert filepath.endswith(suffix)
        with open(filepath, "w") as f:
            f.write('{"weights": ')  # half a file when the save fails below
            if self.fail_next_save:
                self.fail_next_save = False
                raise OSError("disk full")
            f.write(json.dumps([w.tolist() for w in self.weights]) + "}")

    def save(self, filepath, overwrite=True):
        self._write(filepath, ".keras")

    def save_weights(self, filepath, overwrite=True):
        self._write(filepath, ".weights.h5")


def read_saved(path):
    with open(path) as f:
        return json.load(f)["weights"]


def drive_fit(model, callbacks, epoch_logs, steps=3, verbose=0, batch_loss=None):
    """The hook sequence of Keras 3's fit loop; returns what fit returns (model.history)."""
    cl = cbks.CallbackList(callbacks, add_history=True, add_progbar=verbose != 0, model=model,
                           verbose=verbose, epochs=len(epoch_logs), steps=steps)
    model.stop_training = False
    cl.on_train_begin()
    training_logs = None
    for epoch, logs in enumerate(epoch_logs):
        cl.on_epoch_begin(epoch)
        for batch in range(steps):
            cl.on_train_batch_begin(batch)
            model.train_batch(epoch)
            loss = batch_loss(epoch, batch) if batch_loss else logs.get("loss", 0.0)
            cl.on_train_batch_end(batch, {"loss": loss})
            if model.stop_training:
                break
        cl.on_epoch_end(epoch, dict(logs))
        training_logs = logs
        if model.stop_training:
            break
    cl.on_train_end(training_logs)
    return model.history


class Recorder(cbks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __getattribute__(self, name):
        attr = object.__getattribute__(self, name)
        if name.startswith("on_") and callable(attr):
            def record(*args, **kwargs):
                object.__getattribute__(self, "calls").append((name,) + args + tuple(kwargs.values()))
                return attr(*args, **kwargs)
            return record
        return attr


# ---------------------------------------------------------------- Callback, CallbackList, History

def test_keras2_batch_aliases_are_called_by_the_train_batch_hooks():
    seen = []

    class Old(cbks.Callback):
        def on_batch_begin(self, batch, logs=None):
            seen.append(("begin", batch))

        def on_batch_end(self, batch, logs=None):
            seen.append(("end", batch, logs))

    cl = cbks.CallbackList([Old()], model=FakeModel())
    cl.on_train_batch_begin(0)
    cl.on_train_batch_end(0, {"loss": np.float32(0.5)})
    cl.on_test_batch_end(0, {"loss": 1.0})  # not a training batch: no alias
    assert seen == [("begin", 0), ("end", 0, {"loss": 0.5})]


def test_callback_list_sets_model_params_and_adds_history_and_progbar_once():
    model, user_history = FakeModel(), cbks.History()
    cl = cbks.CallbackList([user_history], add_history=True, add_progbar=True, model=model,
                           verbose=2, epochs=3, steps=7)
    kinds = [type(cb) for cb in cl.callbacks]
    assert kinds == [cbks.History, cbks.ProgbarLogger]
    assert cl.callbacks[0] is user_history and model.history is user_history
    assert all(cb.model is model for cb in cl.callbacks)
    assert user_history.params == {"verbose": 2, "epochs": 3, "steps": 7}
    assert cl.callbacks[1].verbose == 2 and cl.callbacks[1].target == 7
    plain = cbks.CallbackList([], model=model, verbose=0, epochs=1, steps=1)
    assert plain.callbacks == []
    with pytest.raises(TypeError, match="Callback"):
        cbks.CallbackList([object()])


def test_callback_list_dispatches_every_hook_in_order_with_python_floats():
    rec = Recorder()
    cl = cbks.CallbackList([[rec]], model=FakeModel())  # nested lists are flattened, as in Keras
    cl.on_train_begin()
    cl.on_epoch_begin(0)
    cl.on_train_batch_begin(0)
    cl.on_train_batch_end(0, {"loss": np.float32(2.0), "acc": np.array(0.5)})
    cl.on_test_begin()
    cl.on_test_batch_begin(0)
    cl.on_test_batch_end(0, {"loss": 1.0})
    cl.on_test_end({"loss": 1.0})
    cl.on_epoch_end(0, {"loss": 2.0, "val_loss": np.float64(1.0)})
    cl.on_train_end({"loss": 2.0})
    cl.on_predict_begin()
    cl.on_predict_batch_begin(0)
    cl.on_predict_batch_end(0, {"outputs": np.ones((2, 3))})
    cl.on_predict_end()
    names = [c[0] for c in rec.calls]
    assert names == ["on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_batch_begin",
                     "on_train_batch_end", "on_batch_end", "on_test_begin", "on_test_batch_begin",
                     "on_test_batch_end", "on_test_end", "on_epoch_end", "on_train_end",
                     "on_predict_begin", "on_predict_batch_begin", "on_predict_batch_end", "on_predict_end"]
    batch_logs = rec.calls[4][2]
    assert batch_logs == {"loss": 2.0, "acc": 0.5} and all(type(v) is float for v in batch_logs.values())
    assert rec.calls[14][2]["outputs"].shape == (2, 3)  # predictions pass through untouched


def test_history_records_epochs_and_is_model_history():
    model = FakeModel()
    logs = [{"loss": 1.0, "accuracy": 0.5}, {"loss": 0.5, "accuracy": 0.75}, {"loss": 0.25, "accuracy": 1.0}]
    history = drive_fit(model, [], logs, steps=4)
    assert isinstance(history, cbks.History) and model.history is history
    assert history.history == {"loss": [1.0, 0.5, 0.25], "accuracy": [0.5, 0.75, 1.0]}
    assert history.epoch == [0, 1, 2]
    assert history.params == {"verbose": 0, "epochs": 3, "steps": 4}
    assert history.model is model


# ---------------------------------------------------------------- EarlyStopping

def test_early_stopping_stops_after_patience_and_restores_best_weights(capsys):
    model = FakeModel()
    stop = cbks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True, verbose=1)
    val = [1.0, 0.8, 0.9, 0.85, 0.7, 0.6]
    history = drive_fit(model, [stop], [{"loss": 1.0, "val_loss": v} for v in val])
    # Best at epoch 1; epochs 2 and 3 do not improve: stop at the end of epoch 3 (the 4th).
    assert history.epoch == [0, 1, 2, 3]
    assert stop.stopped_epoch == 3 and stop.best == 0.8 and stop.best_epoch == 1
    np.testing.assert_array_equal(model.weights[0], np.full((2, 2), 2.0))  # weights after epoch 1
    assert capsys.readouterr().out == ("Epoch 4: early stopping\n"
                                       "Restoring model weights from the end of the best epoch: 2.\n")


def test_early_stopping_keras_doc_example_runs_four_epochs_without_restoring():
    model = FakeModel()
    history = drive_fit(model, [cbks.EarlyStopping(monitor="loss", patience=3)], [{"loss": 1.0}] * 10)
    assert len(history.history["loss"]) == 4
    np.testing.assert_array_equal(model.weights[0], np.full((2, 2), 4.0))  # last weights kept


def test_early_stopping_min_delta_mode_auto_max_baseline_and_warmup():
    # accuracy is maximized; gains below min_delta do not count.
    stop = cbks.EarlyStopping(monitor="val_accuracy", min_delta=0.05, patience=1)
    history = drive_fit(FakeModel(), [stop], [{"val_accuracy": a} for a in (0.5, 0.6, 0.62, 0.64, 0.9)])
    assert history.epoch == [0, 1, 2] and stop.best == 0.6
    # Improvements that stay above the baseline do not restart the patience count.
    values = [{"val_loss": v} for v in (1.0, 0.9, 0.95, 0.95, 0.95)]
    assert drive_fit(FakeModel(), [cbks.EarlyStopping(patience=2)], values).epoch == [0, 1, 2, 3]
    stop = cbks.EarlyStopping(monitor="val_loss", patience=2, baseline=0.1)
    assert drive_fit(FakeModel(), [stop], values).epoch == [0, 1, 2] and stop.best == 0.9
    # Nothing is watched before start_from_epoch.
    stop = cbks.EarlyStopping(monitor="loss", patience=0, start_from_epoch=3)
    history = drive_fit(FakeModel(), [stop], [{"loss": v} for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)])
    assert history.epoch == [0, 1, 2, 3, 4]


def test_early_stopping_restores_the_first_epoch_when_later_ones_are_worse():
    model = FakeModel()
    stop = cbks.EarlyStopping(monitor="loss", patience=2, restore_best_weights=True)
    drive_fit(model, [stop], [{"loss": v} for v in (1.0, 2.0, 3.0, 4.0)])
    np.testing.assert_array_equal(model.weights[1], np.full(2, -1.0))


def test_early_stopping_missing_monitor_warns_and_never_stops():
    stop = cbks.EarlyStopping(monitor="val_loss", patience=0)
    with pytest.warns(UserWarning, match="Early stopping conditioned on metric `val_loss` which is not "
                                         "available. Available metrics are: loss,accuracy"):
        history = drive_fit(FakeModel(), [stop], [{"loss": 1.0, "accuracy": 0.5}] * 3)
    assert history.epoch == [0, 1, 2]


def test_mode_auto_cannot_guess_an_unknown_metric_and_unknown_mode_warns():
    stop = cbks.EarlyStopping(monitor="val_score")
    with pytest.raises(ValueError, match="monitor=val_score.*mode='max'"):
        drive_fit(FakeModel(), [stop], [{"val_score": 1.0}])
    with pytest.warns(UserWarning, match="mode 'lowest' is unknown, fallback to auto mode"):
        stop = cbks.EarlyStopping(mode="lowest")
    assert stop.mode == "auto"

    class Metric:
        name, _direction = "score", "up"

    model = FakeModel()
    model.metrics = [Metric()]  # a compiled metric object tells the direction, as in Keras 3
    stop = cbks.EarlyStopping(monitor="val_score", patience=0)
    history = drive_fit(model, [stop], [{"val_score": s} for s in (1.0, 2.0, 1.5, 3.0)])
    assert history.epoch == [0, 1, 2]
    for name, op in [("val_out_accuracy", "max"), ("auc", "max"), ("val_mae", "min"),
                     ("val_out_loss", "min"), ("sparse_categorical_crossentropy", "min")]:
        cb = cbks.EarlyStopping(monitor=name)
        cb.set_model(FakeModel())
        cb._set_monitor_op()
        assert cb.monitor_op == op, name


# ---------------------------------------------------------------- ModelCheckpoint

def test_checkpoint_save_best_only_formats_the_path_and_writes_improvements_only(tmp_path, capsys):
    model = FakeModel()
    pattern = str(tmp_path / "ckpt" / "w-{epoch:02d}-{val_loss:.2f}.keras")
    ckpt = cbks.ModelCheckpoint(pattern, save_best_only=True, verbose=1)
    drive_fit(model, [ckpt], [{"val_loss": v} for v in (0.5, 0.6, 0.4, 0.45)])
    assert sorted(os.listdir(tmp_path / "ckpt")) == ["w-01-0.50.keras", "w-03-0.40.keras"]
    assert read_saved(tmp_path / "ckpt" / "w-03-0.40.keras")[0] == [[3.0, 3.0], [3.0, 3.0]]
    out = capsys.readouterr().out
    first = tmp_path / "ckpt" / "w-01-0.50.keras"
    assert f"\nEpoch 1: val_loss improved from None to 0.50000, saving model to {first}\n" in out
    assert "\nEpoch 2: val_loss did not improve from 0.50000\n" in out
    assert "\nEpoch 3: val_loss improved from 0.50000 to 0.40000" in out


def test_checkpoint_fixed_path_keeps_the_best_model_and_max_mode(tmp_path):
    model, path = FakeModel(), tmp_path / "best.keras"
    ckpt = cbks.ModelCheckpoint(path, monitor="val_accuracy", save_best_only=True)
    drive_fit(model, [ckpt], [{"val_accuracy": a} for a in (0.5, 0.9, 0.7, 0.8)])
    assert read_saved(path)[0] == [[2.0, 2.0], [2.0, 2.0]] and ckpt.best == 0.9
    assert os.listdir(tmp_path) == ["best.keras"]


def test_checkpoint_failed_save_leaves_previous_file_intact(tmp_path):
    model, path = FakeModel(), tmp_path / "model.keras"
    ckpt = cbks.ModelCheckpoint(str(path), monitor="loss")
    cl = cbks.CallbackList([ckpt], model=model, verbose=0, epochs=2, steps=1)
    cl.on_train_begin()
    cl.on_epoch_begin(0)
    model.train_batch(0)
    cl.on_epoch_end(0, {"loss": 1.0})
    good = path.read_bytes()
    cl.on_epoch_begin(1)
    model.train_batch(1)
    model.fail_next_save = True
    with pytest.raises(OSError, match="disk full"):
        cl.on_epoch_end(1, {"loss": 0.5})
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["model.keras"]  # no temp file left
    assert read_saved(path)[0] == [[1.0, 1.0], [1.0, 1.0]]


def test_checkpoint_weights_only_and_batch_frequency(tmp_path):
    model = FakeModel()
    ckpt = cbks.ModelCheckpoint(str(tmp_path / "e{epoch}-b{batch}.weights.h5"), save_weights_only=True,
                                save_freq=2)
    drive_fit(model, [ckpt], [{"loss": 1.0}] * 2, steps=3)
    # Every 2 batches, counted across epochs (3 per epoch); epoch and batch are 1-based in the path.
    assert sorted(os.listdir(tmp_path)) == ["e1-b2.weights.h5", "e2-b1.weights.h5", "e2-b3.weights.h5"]


def test_checkpoint_path_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`.*filepath=w\.keras"):
        cbks.ModelCheckpoint("w.keras", save_weights_only=True)
    with pytest.raises(ValueError, match=r"must end in `\.keras` \(Keras model format\)\. Received: "
                                         r"filepath=m\.h5\. graphc does not write the legacy HDF5"):
        cbks.ModelCheckpoint("m.h5")
    with pytest.raises(ValueError, match="Unrecognized save_freq: batch"):
        cbks.ModelCheckpoint("m.keras", save_freq="batch")
    ckpt = cbks.ModelCheckpoint(str(tmp_path / "m-{val_acc:.2f}.keras"))
    with pytest.raises(KeyError, match="Failed to format this callback filepath.*val_acc"):
        drive_fit(FakeModel(), [ckpt], [{"loss": 1.0}])
    (tmp_path / "dir.keras").mkdir()
    with pytest.raises(OSError, match="non-directory filepath"):
        drive_fit(FakeModel(), [cbks.ModelCheckpoint(str(tmp_path / "dir.keras"))], [{"loss": 1.0}])


def test_checkpoint_initial_threshold_and_missing_monitor(tmp_path):
    path = tmp_path / "m.keras"
    ckpt = cbks.ModelCheckpoint(str(path), save_best_only=True, initial_value_threshold=0.3)
    drive_fit(FakeModel(), [ckpt], [{"val_loss": v} for v in (0.5, 0.4)])
    assert not path.exists()
    ckpt = cbks.ModelCheckpoint(str(path), save_best_only=True)
    with pytest.warns(UserWarning, match="Can save best model only with val_loss available"):
        drive_fit(FakeModel(), [ckpt], [{"loss": 0.5}])
    assert path.exists()  # saved anyway, as Keras


# ---------------------------------------------------------------- learning-rate callbacks

def test_reduce_lr_on_plateau_with_cooldown_and_min_lr(capsys):
    model = FakeModel(learning_rate=0.1)
    reduce = cbks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=2, min_lr=0.02,
                                    verbose=1)
    seen = []
    track = cbks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(model.optimizer.learning_rate))
    history = drive_fit(model, [reduce, track], [{"val_loss": 1.0}] * 9)
    # Plateau from epoch 1: reduce, wait out the cooldown (the counter drops at each epoch start, so
    # cooldown=2 skips one epoch), reduce again, ... until min_lr, which is never crossed.
    np.testing.assert_allclose(seen, [0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02, 0.02], rtol=1e-6)
    # The rate before this epoch's reduction is logged (History comes after the user callbacks).
    np.testing.assert_allclose(history.history["learning_rate"],
                               [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.02, 0.02, 0.02], rtol=1e-6)
    out = capsys.readouterr().out
    assert out.count("ReduceLROnPlateau reducing learning rate to") == 3
    assert "\nEpoch 2: ReduceLROnPlateau reducing learning rate to 0.05" in out


def test_reduce_lr_needs_more_than_min_delta_and_rejects_factor_one():
    model = FakeModel(learning_rate=1.0)
    reduce = cbks.ReduceLROnPlateau(monitor="loss", factor=0.1, patience=2, min_delta=0.01)
    drive_fit(model, [reduce], [{"loss": v} for v in (1.0, 0.995, 0.992, 0.5, 0.499)])
    # 0.995 and 0.992 are within min_delta of 1.0: two idle epochs -> reduce once; 0.5 improves.
    np.testing.assert_allclose(model.optimizer.learning_rate, 0.1, rtol=1e-6)
    with pytest.raises(ValueError, match="factor >= 1.0. Received factor=1.0"):
        cbks.ReduceLROnPlateau(factor=1.0)


def test_learning_rate_scheduler_both_signatures_and_output_check(capsys):
    model = FakeModel(learning_rate=0.1)
    seen = []
    track = cbks.LambdaCallback(on_epoch_begin=lambda e, logs: seen.append(model.optimizer.learning_rate))
    sched = cbks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5, verbose=1)
    history = drive_fit(model, [sched, track], [{"loss": 1.0}] * 4)
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.05, 0.025], rtol=1e-6)
    np.testing.assert_allclose(history.history["learning_rate"], seen, rtol=1e-6)
    assert "\nEpoch 3: LearningRateScheduler setting learning rate to 0.05" in capsys.readouterr().out

    model = FakeModel()
    drive_fit(model, [cbks.LearningRateScheduler(lambda epoch: 0.5 / (epoch + 1))], [{"loss": 1.0}] * 3)
    np.testing.assert_allclose(model.optimizer.learning_rate, 0.5 / 3, rtol=1e-6)
    with pytest.raises(ValueError, match="should be a float. Got: 1"):
        drive_fit(FakeModel(), [cbks.LearningRateScheduler(lambda epoch: 1)], [{"loss": 1.0}])


# ---------------------------------------------------------------- CSVLogger, TerminateOnNaN, LambdaCallback

def test_csv_logger_content_and_append(tmp_path):
    path = tmp_path / "log.csv"
    drive_fit(FakeModel(), [cbks.CSVLogger(path)],
              [{"loss": 0.5, "accuracy": 0.25}, {"loss": 0.125, "accuracy": 0.75}])
    # Sorted keys, val_ columns reserved (NA) since the first epoch had none; Excel line ends.
    assert path.read_bytes() == (b"epoch,accuracy,loss,val_accuracy,val_loss\r\n"
                                 b"0,0.25,0.5,NA,NA\r\n1,0.75,0.125,NA,NA\r\n")
    drive_fit(FakeModel(), [cbks.CSVLogger(path, separator=";", append=True)],
              [{"loss": 2.0, "val_loss": 3.0}])
    rows = path.read_text().splitlines()
    assert rows[-1] == "0;2.0;3.0" and len(rows) == 4  # appended, no second header
    drive_fit(FakeModel(), [cbks.CSVLogger(path)], [{"loss": 1.5, "val_loss": 2.5}])
    with open(path, newline="") as f:
        assert list(csv.reader(f)) == [["epoch", "loss", "val_loss"], ["0", "1.5", "2.5"]]


def test_terminate_on_nan_stops_with_keras_message(capsys):
    model = FakeModel()
    history = drive_fit(model, [cbks.TerminateOnNaN()], [{"loss": 1.0}] * 3, steps=5,
                        batch_loss=lambda e, b: float("nan") if (e, b) == (1, 2) else 1.0)
    assert capsys.readouterr().out == "Batch 2: Invalid loss, terminating training\n"
    assert model.stop_training and history.epoch == [0, 1]
    drive_fit(model, [cbks.TerminateOnNaN()], [{"loss": 1.0}], batch_loss=lambda e, b: float("inf"))
    assert "Batch 0: Invalid loss" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="NaN or Inf loss encountered at batch 0"):
        drive_fit(model, [cbks.TerminateOnNaN(raise_error=True)], [{"loss": 1.0}],
                  batch_loss=lambda e, b: float("nan"))


def test_lambda_callback_hooks_and_extra_keyword_hooks():
    events = []
    lam = cbks.LambdaCallback(on_train_begin=lambda logs: events.append("train_begin"),
                              on_epoch_end=lambda epoch, logs: events.append(("epoch", epoch, logs["loss"])),
                              on_train_batch_end=lambda batch, logs: events.append(("batch", batch)),
                              on_train_end=lambda logs: events.append("train_end"),
                              on_test_end=lambda logs: events.append("test_end"))
    drive_fit(FakeModel(), [lam], [{"loss": 0.5}, {"loss": 0.25}], steps=2)
    cbks.CallbackList([lam]).on_test_end({})
    assert events == ["train_begin", ("batch", 0), ("batch", 1), ("epoch", 0, 0.5), ("batch", 0),
                      ("batch", 1), ("epoch", 1, 0.25), "train_end", "test_end"]


# ---------------------------------------------------------------- progress bar

class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(progbar_mod, "_now", c)
    monkeypatch.setattr(progbar_mod, "_dynamic_display", lambda: False)
    return c


def fit_with_bar(clock, verbose, epochs=5, steps=750, first=0.25, per_step=0.005):
    """Drive fit+validation with a pinned clock: the first step takes `first` s, then `per_step` s."""
    logs = {"loss": 0.30121, "accuracy": 0.91, "val_loss": 0.25, "val_accuracy": 0.93}
    cl = cbks.CallbackList([], add_history=True, add_progbar=True, model=FakeModel(), verbose=verbose,
                           epochs=epochs, steps=steps)
    cl.on_train_begin()
    for epoch in range(2):
        cl.on_epoch_begin(epoch)
        for batch in range(steps):
            clock.t += first if batch == 0 else per_step
            cl.on_train_batch_end(batch, {"loss": 0.5, "accuracy": 0.5})
        cl.on_test_begin()  # validation inside fit draws nothing
        cl.on_test_batch_end(0, {"loss": 9.0})
        cl.on_test_end({"loss": 0.25, "accuracy": 0.93})
        cl.on_epoch_end(epoch, logs)
    cl.on_train_end(logs)


def test_progbar_verbose_1_not_a_terminal_prints_the_final_line_per_epoch(clock, capsys):
    fit_with_bar(clock, verbose=1)
    # 0.25 s + 749 * 5 ms = 4.0 s; the slow first step is left out of the time per step.
    line = ("750/750 [==============================] - 4s 5ms/step - loss: 0.3012 - accuracy: 0.9100"
            " - val_loss: 0.2500 - val_accuracy: 0.9300\n")
    assert capsys.readouterr().out == "Epoch 1/5\n" + line + "Epoch 2/5\n" + line


def test_progbar_verbose_2_one_line_per_epoch(clock, capsys):
    fit_with_bar(clock, verbose=2)
    line = ("750/750 - 4s - 5ms/step - loss: 0.3012 - accuracy: 0.9100 - val_loss: 0.2500"
            " - val_accuracy: 0.9300\n")
    assert capsys.readouterr().out == "Epoch 1/5\n" + line + "Epoch 2/5\n" + line


def test_progbar_on_a_terminal_redraws_in_place_with_eta(clock, capsys, monkeypatch):
    monkeypatch.setattr(progbar_mod, "_dynamic_display", lambda: True)
    bar = Progbar(750, stateful_metrics=["loss"])
    clock.t += 0.25
    bar.update(1, [("loss", 2.0)])
    clock.t += 0.01  # under the 0.05 s interval: no redraw
    bar.update(2, [("loss", 1.0)])
    clock.t += 0.1
    bar.update(376, [("loss", 0.5)])
    clock.t += 3.0
    bar.update(750, [("loss", 0.000123)])
    out = capsys.readouterr().out
    frames = out.split("\r")[1:]
    assert frames[0] == "  1/750 [..............................] - ETA: 3:07 - loss: 2.0000"
    # 375 steps in 0.11 s after the first: 374 left take ~0.11 s; blanks wipe the longer ETA's tail.
    assert frames[1] == "376/750 [==============>...............] - ETA: 0s - loss: 0.5000  "
    assert frames[2] == "750/750 [==============================] - 3s 4ms/step - loss: 1.2300e-04\n"
    assert len(frames) == 3


def test_progbar_pads_a_shorter_line_on_a_terminal(clock, capsys, monkeypatch):
    monkeypatch.setattr(progbar_mod, "_dynamic_display", lambda: True)
    bar = Progbar(10, width=10, interval=0)
    bar.update(1, [("loss", -123456.789)])
    bar.update(10, [("loss", 0.5)])
    first, second = capsys.readouterr().out.split("\r")[1:]
    assert first == " 1/10 [>.........] - ETA: 0s - loss: -123456.7890"
    text = "10/10 [==========] - 0s 0s/step - loss: 0.5000"
    assert second == text + " " * (len(first) - len(text)) + "\n"


def test_evaluate_and_predict_bars(clock, capsys):
    cl = cbks.CallbackList([], add_progbar=True, model=FakeModel(), verbose=1, epochs=1, steps=3)
    cl.on_test_begin()
    for b in range(3):
        clock.t += 0.002
        cl.on_test_batch_end(b, {"loss": 1.0, "mae": 0.001})
    cl.on_test_end({"loss": 0.75, "mae": 0.001})
    cl.on_predict_begin()
    for b in range(3):
        clock.t += 0.5
        cl.on_predict_batch_end(b, {"outputs": np.zeros((2, 1))})
    cl.on_predict_end()
    assert capsys.readouterr().out == (
        "3/3 [==============================] - 0s 2ms/step - loss: 0.7500 - mae: 1.0000e-03\n"
        "3/3 [==============================] - 2s 500ms/step\n")


def test_predict_calls_the_predict_hooks_takes_steps_and_shows_a_bar(capsys):
    import graphc
    model = graphc.Sequential([graphc.layers.Input((3,)), graphc.layers.Dense(2)])
    x = np.arange(21, dtype="float32").reshape(7, 3)

    class Seen(cbks.Callback):
        def __init__(self):
            super().__init__()
            self.calls = []

        def on_predict_begin(self, logs=None):
            self.calls.append("begin")

        def on_predict_batch_end(self, batch, logs=None):
            self.calls.append((batch, logs["outputs"].shape))

        def on_predict_end(self, logs=None):
            self.calls.append("end")

    seen = Seen()
    out = model.predict(x, batch_size=3, steps=2, verbose=0, callbacks=[seen])  # Keras: 2 batches of 3 rows
    np.testing.assert_allclose(out, model.predict_on_batch(x)[:6], rtol=1e-6)
    assert seen.calls == ["begin", (0, (3, 2)), (1, (3, 2)), "end"] and seen.model is model
    assert capsys.readouterr().out == ""
    model.predict(x, batch_size=4)  # verbose "auto": Keras's progress bar
    assert capsys.readouterr().out.startswith("2/2 [==============================] - ")
    with pytest.raises(ValueError, match="steps must be a positive int"):
        model.predict(x, steps=0)


def test_unknown_steps_single_epoch_and_silent_logger(clock, capsys):
    cl = cbks.CallbackList([], add_progbar=True, model=FakeModel(), verbose=2, epochs=1, steps=None)
    cl.on_train_begin()
    cl.on_epoch_begin(0)
    for b in range(12):
        clock.t += 1.5
        cl.on_train_batch_end(b, {"loss": 1.0})
    cl.on_epoch_end(0, {"loss": 0.5})
    cl.on_train_end()
    # One epoch: no "Epoch 1/1" line; the step count seen becomes the total.
    assert capsys.readouterr().out == "12/12 - 18s - 2s/step - loss: 0.5000\n"
    quiet = cbks.ProgbarLogger()
    cbks.CallbackList([quiet], model=FakeModel(), verbose=0, epochs=2, steps=2).on_epoch_begin(0)
    quiet.on_train_batch_end(0, {"loss": 1.0})
    quiet.on_epoch_end(0, {"loss": 1.0})
    assert capsys.readouterr().out == ""


def test_progbar_averages_stateless_values_weighted_by_steps(clock, capsys):
    bar = Progbar(None, verbose=1, stateful_metrics=["lr"])
    bar.update(2, [("loss", 1.0), ("lr", 0.1)])  # covers 2 steps
    bar.add(1, [("loss", 4.0), ("lr", 0.05)])  # covers 1 step
    assert bar._values["loss"] == [6.0, 3] and bar._values["lr"] == [0.05, 1]
    bar.target = 3
    bar.update(3, [], finalize=True)
    assert capsys.readouterr().out.endswith("- loss: 2.0000 - lr: 0.0500\n")
    with pytest.raises(ValueError, match="only one of `stateful_metrics`"):
        Progbar(3, stateful_metrics=["a"], stateless_metrics=["b"])


def test_checkpoint_and_restore_best_weights_on_a_real_graphc_model(tmp_path):
    import graphc
    model = graphc.Sequential([graphc.layers.Input((3,)), graphc.layers.Dense(2)])
    start = model.get_weights()
    stop = cbks.EarlyStopping(monitor="loss", patience=0, restore_best_weights=True)
    ckpt = cbks.ModelCheckpoint(tmp_path / "m-{epoch}.keras", monitor="loss", save_best_only=True)
    cl = cbks.CallbackList([ckpt, stop], add_history=True, model=model, verbose=0, epochs=3, steps=1)
    cl.on_train_begin()
    for epoch, loss in enumerate([1.0, 2.0]):
        cl.on_epoch_begin(epoch)
        model.set_weights([w + (epoch + 1) for w in model.get_weights()])  # stands in for training
        cl.on_epoch_end(epoch, {"loss": loss})
    cl.on_train_end({"loss": 2.0})
    assert model.stop_training and model.history.history == {"loss": [1.0, 2.0]}
    assert os.listdir(tmp_path) == ["m-1.keras"]
    loaded = graphc.models.load_model(tmp_path / "m-1.keras")
    for now, saved, first in zip(model.get_weights(), loaded.get_weights(), start):
        np.testing.assert_allclose(now, first + 1, rtol=1e-6)  # epoch 1's weights restored
        np.testing.assert_allclose(saved, first + 1, rtol=1e-6)


def test_a_callback_assigning_the_learning_rate_variable_changes_the_next_steps():
    # Keras's idiom: optimizer.learning_rate is the optimizer's variable, so a callback may assign to it.
    import graphc
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 2)).astype("float32")
    model = graphc.Sequential([graphc.layers.Input((3,)), graphc.layers.Dense(2)])
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    lr = model.optimizer.learning_rate
    assert float(lr) == pytest.approx(0.1) and lr is model.optimizer.variables[1]
    kept = []

    class FreezeAfterFirstEpoch(cbks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.optimizer.learning_rate.assign(0.0)
            kept.append(self.model.get_weights())

    start = model.get_weights()
    model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0, callbacks=[FreezeAfterFirstEpoch()])
    assert float(model.optimizer.learning_rate) == 0.0
    assert not np.array_equal(kept[0][0], start[0])  # the first epoch trained
    for before, after in zip(kept[0], model.get_weights()):
        np.testing.assert_array_equal(before, after)  # epochs 2 and 3 ran with rate 0
