"""Weight regularizers: the penalties, layer.losses, the loss fit and evaluate report, saving. (Training equal to
Keras's, from identical weights, is checked by the 'regularized' case of tests/test_training_goldens.py.)"""
import numpy as np
import pytest

import graphc
from graphc import layers, regularizers
from graphc.models import load_model


def test_penalties_and_names(rng):
    w = rng.normal(size=(3, 4)).astype("float32")
    assert float(regularizers.L2(0.05)(w)) == pytest.approx(0.05 * np.sum(w * w), rel=1e-6)
    assert float(regularizers.L1(0.1)(w)) == pytest.approx(0.1 * np.sum(np.abs(w)), rel=1e-6)
    both = regularizers.L1L2(l1=0.1, l2=0.05)(w)
    assert float(both) == pytest.approx(0.1 * np.sum(np.abs(w)) + 0.05 * np.sum(w * w), rel=1e-6)
    assert regularizers.get("l2").l2 == 0.01 and regularizers.get("l1").l1 == 0.01  # Keras's defaults
    assert regularizers.get("l1_l2").get_config() == {"l1": 0.0, "l2": 0.0}
    with pytest.raises(ValueError, match="Unknown regularizer 'l3'"):
        regularizers.get("l3")
    with pytest.raises(ValueError, match="l2 must be a non-negative number"):
        regularizers.L2(-1.0)


def _model():
    inp = graphc.Input((4,))
    h = layers.Dense(5, activation="relu", kernel_regularizer=regularizers.L2(0.05), bias_regularizer="l1",
                     name="hidden")(inp)
    return graphc.Model(inp, layers.Dense(2, name="out")(h))


def test_fit_and_evaluate_report_the_loss_with_the_penalties(rng):
    model = _model()
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    kernel, bias = model.get_layer("hidden").get_weights()
    penalty = 0.05 * np.sum(kernel ** 2) + 0.01 * np.sum(np.abs(bias))
    assert sum(model.losses) == pytest.approx(penalty, rel=1e-6)
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    mse = float(np.mean((model.predict(x, verbose=0) - y) ** 2))
    assert model.evaluate(x, y, verbose=0) == pytest.approx(mse + penalty, rel=1e-5)
    model.get_layer("hidden").trainable = False  # a frozen weight's penalty leaves the loss, as in Keras
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    assert model.losses == [] and model.evaluate(x, y, verbose=0) == pytest.approx(mse, rel=1e-5)


def test_the_penalty_pulls_the_weights_toward_zero(rng):
    # with a zero data loss, one SGD step on L2(c) multiplies a weight by (1 - 2 * c * lr)
    inp = graphc.Input((3,))
    dense = layers.Dense(2, kernel_regularizer=regularizers.L2(0.5), use_bias=False)
    model = graphc.Model(inp, dense(inp))
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="mse")
    kernel = dense.get_weights()[0]
    x = np.zeros((4, 3), "float32")
    model.train_on_batch(x, np.zeros((4, 2), "float32"))
    np.testing.assert_allclose(dense.get_weights()[0], kernel * (1 - 2 * 0.5 * 0.1), rtol=1e-6)


def test_custom_layers_and_embeddings_take_regularizers(rng):
    class Scale(layers.Layer):
        def build(self, shape):
            self.g = self.add_weight(shape=(shape[-1],), initializer="ones", regularizer="l2", name="g")

        def call(self, x):
            return x * self.g

    inp = graphc.Input((3,), dtype="int32")
    emb = layers.Embedding(5, 2, embeddings_regularizer=regularizers.L1(0.1))
    model = graphc.Model(inp, Scale()(emb(inp)))
    table = emb.get_weights()[0]
    assert sum(model.losses) == pytest.approx(0.1 * np.abs(table).sum() + 0.01 * 2, rel=1e-6)
    with pytest.raises(ValueError, match=r"add_weight\(constraint=.*\) is not supported"):
        Scale().add_weight(shape=(2,), constraint="non_neg")


def test_regularizers_are_saved_and_loaded(tmp_path, rng):
    model = _model()
    path = tmp_path / "regularized.keras"
    model.save(path)
    restored = load_model(path)
    hidden = restored.get_layer("hidden")
    assert hidden.get_config()["kernel_regularizer"] == {"module": "keras.regularizers", "class_name": "L2",
                                                         "config": {"l2": 0.05}, "registered_name": None}
    assert sum(restored.losses) == pytest.approx(sum(model.losses), rel=1e-6)
