"""Keras's training API on graphc: fit/evaluate/train_on_batch behaviour, callbacks in a real fit, bad input
rejected before any compilation, and weights left whole when training stops abruptly."""
from __future__ import annotations

import os

import numpy as np
import pytest

import graphc
from graphc import layers


def mlp(n_in=6, n_out=3, activation="softmax"):
    model = graphc.Sequential([graphc.Input((n_in,)), layers.Dense(8, activation="relu", name="hidden"),
                               layers.Dense(n_out, activation=activation, name="out")])
    return model


def blobs(rng, n=96, n_in=6, classes=3):
    """Separable classes: each has its own mean."""
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, n_in)).astype("float32") * 0.5 + np.eye(classes, n_in, dtype="float32")[y] * 2
    return x, y


def test_fit_learns_and_history_has_keras_keys(rng):
    x, y = blobs(rng)
    model = mlp()
    model.compile(optimizer=graphc.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, validation_split=0.25, verbose=0)
    assert history is model.history
    assert list(history.history) == ["loss", "accuracy", "val_loss", "val_accuracy"]
    assert history.epoch == list(range(8))
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.9
    loss, acc = model.evaluate(x, y, verbose=0)
    assert acc > 0.9
    assert model.evaluate(x, y, verbose=0, return_dict=True) == {"loss": loss, "accuracy": acc}
    assert np.argmax(model.predict(x, verbose=0), -1).tolist() == np.argmax(model(x), -1).tolist()


def test_evaluate_matches_a_numpy_computation(rng):
    x, y = blobs(rng, n=10)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    p = model.predict(x, verbose=0)
    expected_loss = float(np.mean(-np.log(np.clip(p[np.arange(10), y], 1e-7, 1))))
    loss, acc = model.evaluate(x, y, batch_size=4, verbose=0)  # batches of 4, 4, 2: weighted by size
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    np.testing.assert_allclose(acc, np.mean(np.argmax(p, -1) == y), rtol=1e-6)


def test_evaluate_steps_takes_the_first_batches(rng):
    x, y = blobs(rng, n=10)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    first = model.evaluate(x[:8], y[:8], batch_size=4, verbose=0)
    assert model.evaluate(x, y, batch_size=4, steps=2, verbose=0) == first  # (Keras: 2 batches of 4)
    assert model.evaluate(x, y, batch_size=4, steps=9, verbose=0) == model.evaluate(x, y, batch_size=4, verbose=0)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        model.evaluate(x, y, steps=0)


def test_fit_steps_per_epoch_and_validation_steps_limit_the_batches(rng):
    x, y = blobs(rng, n=16)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    seen = []
    counter = graphc.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))
    history = model.fit(x, y, batch_size=4, epochs=2, steps_per_epoch=2, validation_data=(x, y),
                        validation_steps=1, callbacks=[counter], verbose=0, shuffle=False)
    assert seen == [0, 1, 0, 1]  # (it ran all 4 batches an epoch)
    # validation on the first batch of 4 only, after the last step
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x[:4], y[:4], verbose=0), rel=1e-6)
    with pytest.warns(UserWarning, match="steps_per_epoch=9, but the data make 4 batches of 4; each epoch runs 4"):
        model.fit(x, y, batch_size=4, steps_per_epoch=9, verbose=0)
    with pytest.raises(ValueError, match="validation_steps must be a positive int"):
        model.fit(x, y, validation_steps=0)


def test_train_on_batch_reports_that_batch_and_evaluate_without_metrics_is_a_scalar(rng):
    x, y = blobs(rng, n=8)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    before = model.evaluate(x, y, verbose=0)
    assert isinstance(before, float)
    assert model.train_on_batch(x, y) == pytest.approx(before, rel=1e-5)  # the loss before the update
    assert model.test_on_batch(x, y) < before


def test_sample_weight_and_class_weight_follow_keras(rng):
    x, y = blobs(rng, n=12)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    p = model.predict(x, verbose=0)
    per_sample = -np.log(p[np.arange(12), y])
    sw = rng.uniform(0, 2, 12).astype("float32")
    np.testing.assert_allclose(model.evaluate(x, y, sample_weight=sw, batch_size=12, verbose=0),
                               np.sum(per_sample * sw) / 12, rtol=1e-5)  # divided by the count, as Keras
    weights = {0: 1.0, 1: 3.0, 2: 0.5}
    expected = np.sum(per_sample * np.array([weights[c] for c in y])) / 12
    np.testing.assert_allclose(model.train_on_batch(x, y, class_weight=weights), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"class_weight has no entry for class\(es\) \[2\]"):
        model.fit(x, y, class_weight={0: 1.0, 1: 2.0}, verbose=0)
    before = model.get_weights()
    for call in (lambda: model.fit(x, y, sample_weight=sw, class_weight=weights, verbose=0),
                 lambda: model.train_on_batch(x, y, sample_weight=sw, class_weight=weights)):
        with pytest.raises(ValueError, match="sample_weight and class_weight cannot be given together"):
            call()  # Keras refuses the pair rather than guess how they combine
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)


def test_multi_output_with_dict_targets_and_loss_weights(rng):
    a = graphc.Input((4,), name="a")
    h = layers.Dense(5, activation="relu")(a)
    model = graphc.Model(a, [layers.Dense(1, name="age")(h), layers.Dense(3, activation="softmax", name="kind")(h)])
    model.compile(optimizer="rmsprop", loss={"age": "mse", "kind": "categorical_crossentropy"},
                  loss_weights={"age": 0.25, "kind": 10.0}, metrics={"kind": "acc"})
    x = rng.normal(size=(9, 4)).astype("float32")
    targets = {"age": rng.normal(size=(9, 1)), "kind": np.eye(3)[rng.integers(0, 3, 9)]}
    logs = model.evaluate(x, targets, batch_size=9, verbose=0, return_dict=True)
    assert list(logs) == ["loss", "age_loss", "kind_loss", "kind_acc"]
    np.testing.assert_allclose(logs["loss"], 0.25 * logs["age_loss"] + 10 * logs["kind_loss"], rtol=1e-5)
    history = model.fit(x, [targets["age"], targets["kind"]], epochs=2, verbose=0)
    assert set(history.history) == {"loss", "age_loss", "kind_loss", "kind_acc"}


def test_bad_input_fails_before_any_compilation(rng, monkeypatch):
    from graphc import runtime
    model = mlp()
    with pytest.raises(ValueError, match="Unknown loss 'mean_sqared_error'"):
        model.compile(optimizer="sgd", loss="mean_sqared_error")
    with pytest.raises(ValueError, match="adamm"):
        model.compile(optimizer="adamm", loss="mse")
    with pytest.raises(ValueError, match="Unknown metric 'acuracy'"):
        model.compile(optimizer="sgd", loss="mse", metrics=["acuracy"])
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    monkeypatch.setattr(runtime, "compile_graph", lambda *a, **k: pytest.fail("compiled before checking"))
    x = rng.normal(size=(5, 6)).astype("float32")
    with pytest.raises(ValueError, match=r"Output 'out'.*categorical_crossentropy.*\(5, 4\)"):
        model.fit(x, np.zeros((5, 4)), verbose=0)
    with pytest.raises(ValueError, match="5 samples"):
        model.fit(x, np.zeros((4, 3)), verbose=0)
    with pytest.raises(ValueError, match="must call compile"):
        mlp().fit(x, np.zeros((5, 3)))
    two = graphc.Model(model.inputs, [model.outputs[0], model.outputs[0] * 2.0])
    two.compile(optimizer="sgd", loss=["mse", "mse"])
    with pytest.raises(ValueError, match=r"no target for output\(s\)"):
        two.fit(x, {two.output_names[0]: np.zeros((5, 3))}, verbose=0)


def test_terminate_on_nan_stops_with_keras_message(rng, capsys):
    x, y = blobs(rng, n=32)
    model = mlp()
    model.compile(optimizer=graphc.optimizers.SGD(learning_rate=1e30), loss="sparse_categorical_crossentropy")
    history = model.fit(x, y, epochs=5, batch_size=4, verbose=0, callbacks=[graphc.callbacks.TerminateOnNaN()])
    out = capsys.readouterr().out
    assert "Invalid loss, terminating training" in out
    assert len(history.epoch) == 1 and model.stop_training


def test_keyboard_interrupt_leaves_the_last_finished_step(rng):
    x, y = blobs(rng, n=32)
    model = mlp()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seen = []

    class Interrupt(graphc.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(model.get_weights())
            if batch == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=4, epochs=1, verbose=0, callbacks=[Interrupt()])
    assert model.optimizer.iterations == 3
    for got, expected in zip(model.get_weights(), seen[-1]):
        np.testing.assert_array_equal(got, expected)


def test_callbacks_in_fit(rng, tmp_path):
    x, y = blobs(rng, n=64)
    model = mlp()
    model.compile(optimizer=graphc.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    path = str(tmp_path / "best-{epoch:02d}.keras")
    csv = tmp_path / "log.csv"
    history = model.fit(x, y, epochs=6, batch_size=16, validation_data=(x, y), verbose=0, callbacks=[
        graphc.callbacks.ModelCheckpoint(path, save_best_only=True),
        graphc.callbacks.ReduceLROnPlateau(patience=1, factor=0.5, min_delta=10.0),
        graphc.callbacks.CSVLogger(str(csv))])
    assert os.path.exists(tmp_path / "best-01.keras")
    assert history.history["learning_rate"][-1] < 0.05  # no 'improvement' of 10 ever: the rate was halved
    lines = csv.read_text().splitlines()
    assert lines[0].split(",")[0] == "epoch" and len(lines) == 7
    restored = graphc.models.load_model(tmp_path / "best-01.keras")
    assert restored.optimizer.iterations == 4  # the optimizer's state travels with the checkpoint


def test_early_stopping_restores_best_weights(rng):
    x, y = blobs(rng, n=32)
    model = mlp()
    model.compile(optimizer=graphc.optimizers.SGD(learning_rate=0.5), loss="sparse_categorical_crossentropy")
    after = []

    class Track(graphc.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            after.append(model.get_weights())

    # No later epoch improves on the first by min_delta, so training stops after epoch 1 with epoch 0's weights.
    stopper = graphc.callbacks.EarlyStopping(monitor="loss", patience=0, min_delta=1e9, restore_best_weights=True)
    model.fit(x, y, epochs=5, verbose=0, callbacks=[Track(), stopper])
    assert stopper.stopped_epoch == 1 and len(after) == 2
    assert any(not np.array_equal(a, b) for a, b in zip(after[1], after[0]))
    for got, expected in zip(model.get_weights(), after[0]):
        np.testing.assert_array_equal(got, expected)


def test_frozen_layer_does_not_change_and_batchnorm_statistics_move(rng):
    x, y = blobs(rng, n=32)
    inputs = graphc.Input((6,))
    h = layers.Dense(8, name="frozen")(inputs)
    h = layers.BatchNormalization(name="bn")(h)
    model = graphc.Model(inputs, layers.Dense(3, activation="softmax")(layers.Activation("relu")(h)))
    model.get_layer("frozen").trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    frozen = model.get_layer("frozen").get_weights()
    bn_before = model.get_layer("bn").get_weights()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for got, expected in zip(model.get_layer("frozen").get_weights(), frozen):
        np.testing.assert_array_equal(got, expected)
    moved = [not np.array_equal(a, b) for a, b in zip(model.get_layer("bn").get_weights(), bn_before)]
    assert moved == [True, True, True, True]  # gamma, beta (trained), moving mean and variance (updated)


def test_trainable_flag_set_between_train_on_batch_calls_freezes_and_unfreezes(rng):
    """The train step is cached per set of trainable weights: setting ``trainable`` (on a layer, or on a
    nested model) between two calls must give the next call a step that (no longer) updates those weights."""
    x, y = blobs(rng, n=16)
    inner = graphc.Sequential([graphc.Input((6,)), layers.Dense(5, activation="relu", name="inner_dense")],
                              name="inner")
    inputs = graphc.Input((6,))
    h = layers.Dense(8, activation="relu", name="first")(inner(inputs))
    model = graphc.Model(inputs, layers.Dense(3, activation="softmax", name="last")(h))
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")

    def changed_by_one_step():
        before = {layer.name: layer.get_weights() for layer in (inner, model.get_layer("first"))}
        model.train_on_batch(x, y)
        return {name: any(not np.array_equal(a, b) for a, b in zip(ws, model.get_layer(name).get_weights()))
                for name, ws in before.items()}

    assert changed_by_one_step() == {"inner": True, "first": True}
    model.get_layer("first").trainable = False
    assert changed_by_one_step() == {"inner": True, "first": False}
    inner.trainable = False
    assert changed_by_one_step() == {"inner": False, "first": False}
    model.get_layer("first").trainable = True
    inner.trainable = True
    assert changed_by_one_step() == {"inner": True, "first": True}


def test_weights_added_after_a_train_step_give_a_new_step(rng):
    """A weight created after a step was compiled (a layer added to a Sequential, or add_weight) changes the
    set of trainable weights, so the next call builds a new step, which sees the new weights."""
    x, y = blobs(rng, n=8)
    model = mlp()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    model.get_layer("out").add_weight((2,), name="unused")
    with pytest.warns(UserWarning, match=r"gradients do not exist for \['out/unused'\]"):
        model.train_on_batch(x, y)
    model.add(layers.Dense(3, activation="softmax", name="added"))
    with pytest.raises(ValueError, match=r"weights \['added/kernel', 'added/bias'\] became trainable after the "
                                         "optimizer was built"), pytest.warns(UserWarning, match="out/unused"):
        model.train_on_batch(x, y)


def test_a_layer_computing_its_own_trainable_weights_is_asked_every_step(rng):
    """The trainer keeps the ids of the trainable weights between steps only while no layer defines
    trainable_weights itself (such a layer changes them without telling anyone)."""
    class Switchable(layers.Dense):
        frozen = False

        @property
        def trainable_weights(self):
            return [] if self.frozen else super().trainable_weights

    x, y = blobs(rng, n=8)
    switchable = Switchable(3, activation="softmax", name="switchable")
    model = graphc.Sequential([graphc.Input((6,)), layers.Dense(8, activation="relu"), switchable])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    Switchable.frozen = True  # a class attribute: no layer's __setattr__ runs
    before = switchable.get_weights()
    model.train_on_batch(x, y)
    for got, expected in zip(switchable.get_weights(), before):
        np.testing.assert_array_equal(got, expected)


def test_dropout_training_is_reproducible_and_c_equals_reference(rng, monkeypatch):
    x, y = blobs(rng, n=40)

    def run():
        graphc.utils.set_random_seed(7)
        model = graphc.Sequential([graphc.Input((6,)), layers.Dense(16, activation="relu"), layers.Dropout(0.5),
                                   layers.Dense(3, activation="softmax")])
        weights = [np.full(w.shape, 0.1, "float32") * (i + 1) for i, w in enumerate(model.get_weights())]
        model.set_weights(weights)
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0)
        return model.get_weights()

    first, second = run(), run()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    for a, b in zip(first, run()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_per_timestep_sample_weight_of_a_sequence_output_follows_keras(rng):
    # Keras weighs each loss value of a (samples, steps, features) output by a (samples, steps) sample_weight,
    # then divides by the number of values.
    def model(lr):
        inp = graphc.Input((None, 5))
        m = graphc.Model(inp, graphc.layers.Dense(3)(inp))
        m.compile(optimizer=graphc.optimizers.SGD(lr), loss="mse")
        return m

    x, y = rng.standard_normal((6, 4, 5)).astype("float32"), rng.standard_normal((6, 4, 3)).astype("float32")
    sw = rng.uniform(0, 2, (6, 4)).astype("float32")
    weighted = model(0.1)
    per_value = np.mean((weighted.predict(x, verbose=0) - y) ** 2, axis=-1)
    expected = np.sum(sw * per_value) / per_value.size
    np.testing.assert_allclose(weighted.evaluate(x, y, sample_weight=sw, verbose=0), expected, rtol=1e-5)
    np.testing.assert_allclose(weighted.train_on_batch(x, y, sample_weight=sw), expected, rtol=1e-5)

    # Weight 1 on the first step only: the same SGD step as training on that step alone at a quarter of the
    # rate (its values are divided by 4x as many).
    first_only, alone = model(0.1), model(0.025)
    alone.set_weights(first_only.get_weights())
    first_only.fit(x, y, sample_weight=np.eye(4, dtype="float32")[[0] * 6], batch_size=6, verbose=0)
    alone.fit(x[:, :1], y[:, :1], batch_size=6, verbose=0)
    for a, b in zip(first_only.get_weights(), alone.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    with pytest.raises(ValueError, match=r"one weight per sample, shape \(6,\)"):
        weighted.evaluate(x, y, sample_weight=sw[:5], verbose=0)
    with pytest.raises(ValueError, match="cannot weigh loss values"):
        weighted.evaluate(x, y, sample_weight=np.ones((6, 5), "float32"), verbose=0)
