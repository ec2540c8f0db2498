"""Custom objects: register_keras_serializable, custom_object_scope and custom_objects reach every place a
saved config names a class or function (layers, activations, regularizers, losses, metrics), and files move
between Keras and graphc when both register the same names."""
import json
import os
import zipfile

import numpy as np
import pytest

import graphc as keras
from graphc import layers, saving

import custom_objects_def

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")
OBJECTS = custom_objects_def.define(keras)


def keras_io():
    with open(os.path.join(FIXTURES, "keras3_custom_io.json")) as f:
        return {k: np.asarray(v, dtype="float32") for k, v in json.load(f).items()}


def saved_config(path):
    with zipfile.ZipFile(path) as z:
        return json.loads(z.read("config.json"))


def test_keras_file_of_registered_objects_loads_evaluates_and_trains_as_keras():
    io = keras_io()
    model = keras.models.load_model(os.path.join(FIXTURES, "keras3_custom.keras"))  # (no custom_objects)
    assert type(model.get_layer("scaled")) is OBJECTS["ScaledDense"]
    assert model.get_layer("out").activation is OBJECTS["shifted_tanh"]
    assert isinstance(model.get_layer("out").kernel_regularizer, OBJECTS["HalfL2"])
    np.testing.assert_allclose(model.predict(io["x"], verbose=0), io["pred"], rtol=1e-5, atol=1e-6)
    # the loss is the registered twice_mse plus HalfL2's penalty; the metric is the registered mean_abs_pred
    np.testing.assert_allclose(model.evaluate(io["x"], io["y"], verbose=0), io["evaluate"], rtol=1e-5)
    model.train_on_batch(io["x"], io["y"])
    np.testing.assert_allclose(model.predict(io["x"], verbose=0), io["pred_after_step"], rtol=1e-5, atol=1e-6)


def test_graphc_saves_custom_objects_under_the_names_keras_writes(tmp_path):
    keras_config = saved_config(os.path.join(FIXTURES, "keras3_custom.keras"))
    model = custom_objects_def.build_model(keras, OBJECTS)
    model.save(tmp_path / "m.keras")
    config = saved_config(tmp_path / "m.keras")

    def layer(cfg, name):
        return next(entry for entry in cfg["config"]["layers"] if entry["name"] == name)
    for key in ("module", "class_name", "registered_name"):
        assert layer(config, "scaled")[key] == layer(keras_config, "scaled")[key]
    assert layer(config, "scaled")["registered_name"] == "graphc_test>ScaledDense"
    for key in ("activation", "kernel_regularizer"):
        assert layer(config, "out")["config"][key] == layer(keras_config, "out")["config"][key]
    for key in ("loss", "metrics"):
        assert config["compile_config"][key] == keras_config["compile_config"][key]


def test_graphc_file_of_registered_objects_round_trips(tmp_path, rng):
    model = custom_objects_def.build_model(keras, OBJECTS)
    x, y = rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


def test_registry_functions_follow_keras():
    assert saving.get_registered_name(OBJECTS["ScaledDense"]) == "graphc_test>ScaledDense"
    assert saving.get_registered_name(OBJECTS["scaled_mse"]) == "graphc_test>twice_mse"  # (name= given)
    assert saving.get_registered_object("graphc_test>twice_mse") is OBJECTS["scaled_mse"]
    assert saving.get_custom_objects()["graphc_test>HalfL2"] is OBJECTS["HalfL2"]
    assert saving.get_registered_object("nope") is None
    assert saving.get_registered_object("nope", custom_objects={"nope": len}) is len

    def plain(x):
        return x
    assert saving.get_registered_name(plain) == "plain"
    with pytest.raises(ValueError, match="no get_config"):
        saving.register_keras_serializable()(type("NoConfig", (), {}))
    assert keras.utils.register_keras_serializable is saving.register_keras_serializable
    assert keras.utils.custom_object_scope is saving.custom_object_scope


def test_registered_names_work_as_strings(rng):
    x, y = rng.normal(size=(4, 4)).astype("float32"), rng.normal(size=(4, 3)).astype("float32")
    by_name = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation="graphc_test>shifted_tanh")])
    by_name.compile("sgd", loss="graphc_test>twice_mse", metrics=["graphc_test>mean_abs_pred"])
    by_fn = keras.Sequential([keras.Input((4,)), layers.Dense(3, activation=OBJECTS["shifted_tanh"])])
    by_fn.compile("sgd", loss=OBJECTS["scaled_mse"], metrics=[OBJECTS["mean_abs_pred"]])
    by_fn.set_weights(by_name.get_weights())
    assert by_name.layers[0].activation is OBJECTS["shifted_tanh"]
    np.testing.assert_allclose(by_name.evaluate(x, y, verbose=0), by_fn.evaluate(x, y, verbose=0), rtol=1e-6)
    with pytest.raises(ValueError, match="Unknown loss 'graphc_test>nope'.*register_keras_serializable"):
        by_name.compile("sgd", loss="graphc_test>nope")


def cube(x):
    return x * x * x


def small_penalty(w):
    return 0.01 * keras.ops.sum(keras.ops.abs(w))


def test_unregistered_functions_load_through_custom_objects_and_scopes(tmp_path, rng):
    inp = keras.Input((4,))
    model = keras.Model(inp, layers.Dense(3, activation=cube, kernel_regularizer=small_penalty)(inp))
    model.compile("sgd", "mse")
    x, y = rng.normal(size=(5, 4)).astype("float32"), rng.normal(size=(5, 3)).astype("float32")
    model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"Layer 'dense\w*' \(Dense\): Unknown (activation 'cube'|regularizer "
                                         r"'small_penalty').*custom_objects=\{"):
        keras.models.load_model(tmp_path / "m.keras")
    found = {"cube": cube, "small_penalty": small_penalty}
    by_argument = keras.models.load_model(tmp_path / "m.keras", custom_objects=found)
    with saving.custom_object_scope(found):
        by_scope = keras.models.load_model(tmp_path / "m.keras")
        dense = layers.Dense.from_config(model.layers[1].get_config())
    assert dense.activation is cube and dense.kernel_regularizer is small_penalty
    with pytest.raises(ValueError, match="Unknown regularizer 'small_penalty'"):  # (the scope has ended)
        layers.Dense.from_config(model.layers[1].get_config())
    for restored in (by_argument, by_scope):
        restored.set_weights(model.get_weights())
        np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
        np.testing.assert_allclose(restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


def test_scopes_nest_and_restore():
    with saving.custom_object_scope({"a": cube}):
        with saving.CustomObjectScope({"b": small_penalty}):
            assert saving.get_registered_object("a") is cube and saving.get_registered_object("b") is small_penalty
        assert saving.get_registered_object("b") is None
    assert saving.get_registered_object("a") is None
    with pytest.raises(TypeError, match="dict"):
        saving.custom_object_scope([cube])


def test_serialize_and_deserialize_keras_object():
    relu = saving.serialize_keras_object(keras.activations.relu)
    assert relu == {"module": "keras.activations", "class_name": "function", "config": "relu",
                    "registered_name": "function"}
    assert saving.deserialize_keras_object(relu) is keras.activations.relu
    reg = saving.serialize_keras_object(OBJECTS["HalfL2"](0.3))
    assert reg["registered_name"] == "graphc_test>HalfL2"
    assert saving.deserialize_keras_object(reg).l2 == 0.3
    fn = saving.serialize_keras_object(cube)
    assert saving.deserialize_keras_object(fn, custom_objects={"cube": cube}) is cube
    with pytest.raises(ValueError, match="Unknown function 'cube'"):
        saving.deserialize_keras_object(fn)
    dense = saving.deserialize_keras_object(saving.serialize_keras_object(layers.Dense(3, activation=cube)),
                                            custom_objects={"cube": cube})
    assert isinstance(dense, layers.Dense) and dense.units == 3 and dense.activation is cube
    loss = saving.deserialize_keras_object(saving.serialize_keras_object(keras.losses.Huber(delta=2.0)))
    assert isinstance(loss, keras.losses.Huber) and loss.get_config()["delta"] == 2.0
    adam = saving.deserialize_keras_object(saving.serialize_keras_object(keras.optimizers.Adam(0.003)))
    assert isinstance(adam, keras.optimizers.Adam) and np.isclose(adam.get_config()["learning_rate"], 0.003)
