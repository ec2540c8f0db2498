"""Model configs, JSON and .keras files laid out as Keras 3 writes them; round trips and load errors."""
import json
import os
import zipfile

import h5py
import numpy as np
import pytest

import graphc as keras
from graphc import layers, ops, serialization
from graphc.models import load_model, model_from_json, saving

from seed_layers import CustomDense  # noqa: E402  (the seed's custom layer)

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


class Block(layers.Layer):
    """A custom layer holding sublayers in attributes (one public, one private) and its own weight."""

    def __init__(self, units=3, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.proj = layers.Dense(units)
        self._gate = layers.Dense(units, activation="sigmoid")

    def build(self, input_shape):
        self.scale = self.add_weight(shape=(self.units,), initializer="ones", name="scale")

    def call(self, x):
        return self.proj(x) * self._gate(x) * self.scale

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def summary_lines(model):
    lines = []
    model.summary(print_fn=lines.append)
    return lines


def randomize(model, rng):
    """Weights that differ from any initializer, so a load that keeps fresh weights is caught."""
    model.set_weights([rng.uniform(0.5, 1.5, size=w.shape).astype(w.dtype) for w in model.get_weights()])


def assert_same_model(original, restored, data, same_summary=True):
    assert [l.name for l in restored.layers] == [l.name for l in original.layers]
    assert [type(l) for l in restored.layers] == [type(l) for l in original.layers]
    for a, b in zip(original.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    want, got = original.predict(data), restored.predict(data)
    if isinstance(want, dict):
        assert sorted(want) == sorted(got)
        want, got = [want[k] for k in sorted(want)], [got[k] for k in sorted(want)]
    for a, b in zip(want if isinstance(want, list) else [want], got if isinstance(got, list) else [got]):
        np.testing.assert_array_equal(a, b)
    if same_summary:
        assert summary_lines(restored) == summary_lines(original)
    assert restored.get_config() == original.get_config()


def history(arg):
    return arg["config"]["keras_history"]


def big_functional():
    """Dict inputs, dict outputs, a shared layer, a nested Functional called twice, a Sequential inside,
    every merge layer, Dropout/Activation/Flatten/Reshape and a call kwarg."""
    a = keras.Input((4,), name="a")
    b = keras.Input((2, 3), name="b")
    shared = layers.Dense(5, activation="relu", name="shared")
    fa = shared(a)
    fb = shared(layers.Dense(4, name="to4")(layers.Flatten(name="flat")(b)))
    merged = [layers.Add()([fa, fb]), layers.Subtract()([fa, fb]), layers.Multiply()([fa, fb]),
              layers.Average()([fa, fb]), layers.Maximum()([fa, fb]), layers.Minimum()([fa, fb])]
    cat = layers.Concatenate(name="cat")(merged)
    cat = layers.Dropout(0.4, name="drop")(cat, training=False)
    inner_in = keras.Input((30,), name="inner_in")
    inner = keras.Model(inner_in, layers.Dense(6, activation="tanh", name="inner_dense")(inner_in), name="inner")
    h1 = inner(cat)
    h2 = inner(layers.Activation("sigmoid", name="sig")(cat))
    seq = keras.Sequential([layers.Dense(6, name="seq_dense"), layers.Reshape((2, 3), name="seq_reshape")],
                           name="seq")
    return keras.Model({"a": a, "b": b}, {"first": h1, "second": layers.Flatten(name="flat2")(seq(h2))},
                       name="big")


def big_data(rng, n=5):
    return {"a": rng.normal(size=(n, 4)).astype("float32"), "b": rng.normal(size=(n, 2, 3)).astype("float32")}


# --- get_config / from_config ------------------------------------------------------------------------------
def test_seed_custom_dense_round_trips_through_from_config(rng):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, CustomDense(10)(inputs))
    config = model.get_config()
    entry = config["layers"][1]
    assert entry["config"] == {"units": 10} and entry["name"] == "custom_dense"
    assert entry["class_name"] == "CustomDense" and entry["registered_name"] == "CustomDense"
    new_model = keras.Model.from_config(config, custom_objects={"CustomDense": CustomDense})
    assert isinstance(new_model.layers[1], CustomDense) and new_model.layers[1].units == 10
    new_model.set_weights(model.get_weights())
    assert_same_model(model, new_model, rng.normal(size=(3, 4)).astype("float32"))


def test_missing_custom_object_error_names_the_class():
    inputs = keras.Input((4,))
    config = keras.Model(inputs, CustomDense(10)(inputs)).get_config()
    with pytest.raises(ValueError, match=r"Unknown layer class 'CustomDense' \(layer 'custom_dense'\).*"
                                         r"custom_objects=\{'CustomDense': CustomDense\}"):
        keras.Model.from_config(config)


def test_functional_config_layout_matches_keras():
    a = keras.Input((4,), name="a")
    x = layers.Dense(3, name="d")(a)
    y = layers.add([x, x])
    config = keras.Model(a, [y, x], name="m").get_config()
    assert set(config) == {"name", "trainable", "layers", "input_layers", "output_layers"}
    assert config["name"] == "m" and config["trainable"] is True
    inp, dense, add = config["layers"]
    assert inp == {"module": "keras.layers", "class_name": "InputLayer", "registered_name": None, "name": "a",
                   "config": {"batch_shape": [None, 4], "dtype": "float32", "sparse": False, "name": "a"},
                   "inbound_nodes": []}
    assert [k for k in dense] == ["module", "class_name", "config", "registered_name", "build_config", "name",
                                  "inbound_nodes"]
    assert dense["build_config"] == {"input_shape": [None, 4]} and dense["config"]["units"] == 3
    assert dense["inbound_nodes"] == [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, 4], "dtype": "float32", "keras_history": ["a", 0, 0]}}], "kwargs": {}}]
    assert [history(t) for t in add["inbound_nodes"][0]["args"][0]] == [["d", 0, 0], ["d", 0, 0]]
    assert add["build_config"] == {"input_shape": [[None, 3], [None, 3]]}
    assert config["input_layers"] == ["a", 0, 0]  # a single input is one reference, as Keras writes it
    assert config["output_layers"] == [["add", 0, 0], ["d", 0, 0]]


def test_node_indices_count_only_the_models_own_calls(rng):
    shared = layers.Dense(3, name="shared")
    shared(keras.Input((3,), name="elsewhere"))  # node 0 belongs to another graph
    x_in = keras.Input((3,), name="x")
    model = keras.Model(x_in, shared(shared(x_in)))
    config = model.get_config()
    assert [l["name"] for l in config["layers"]] == ["x", "shared"]
    # Keras 3.15 writes exactly these references for this graph.
    assert [history(n["args"][0]) for n in config["layers"][1]["inbound_nodes"]] == [["x", 0, 0], ["shared", 0, 0]]
    assert config["output_layers"] == ["shared", 1, 0]
    rebuilt = keras.Model.from_config(config)
    assert len(rebuilt.get_layer("shared")._inbound_nodes) == 2
    rebuilt.set_weights(model.get_weights())
    # "Connected to" shows raw node indices (as Keras's summary does), so it differs once the other graph is gone.
    assert_same_model(model, rebuilt, rng.normal(size=(2, 3)).astype("float32"), same_summary=False)


def test_nested_functional_references_follow_keras():
    model = big_functional()
    config = model.get_config()
    by_name = {l["name"]: l for l in config["layers"]}
    inner = by_name["inner"]
    assert inner["module"] == "keras.src.models.functional" and inner["registered_name"] == "Functional"
    assert inner["build_config"] == {"input_shape": None} and inner["compile_config"] == {}
    assert inner["config"]["input_layers"] == ["inner_in", 0, 0]
    # As in Keras: a Functional counts a built-in node 0 in input/output references, not in call arguments.
    assert config["output_layers"]["first"] == ["inner", 1, 0]
    assert history(by_name["seq"]["inbound_nodes"][0]["args"][0]) == ["inner", 1, 0]
    assert by_name["seq"]["inbound_nodes"][0]["kwargs"] == {"mask": None}  # Keras records it on model calls
    assert config["input_layers"] == {"a": ["a", 0, 0], "b": ["b", 0, 0]}
    assert by_name["drop"]["inbound_nodes"][0]["kwargs"] == {"training": False}
    seq = by_name["seq"]
    assert seq["module"] == "keras" and seq["registered_name"] is None
    assert seq["build_config"] == {"input_shape": [None, 6]}


def test_graph_part_of_config_equals_what_keras_writes():
    """Layer order, calls (with node re-indexing, the Functional offset, mask=None on model calls and the
    training kwarg), inputs and outputs equal Keras 3's get_config() of the same code."""
    with open(os.path.join(FIXTURES, "keras3_graph_structure.json")) as f:
        want = json.load(f)
    config = json.loads(json.dumps(big_functional().get_config()))
    got = {"layers": [{"name": l["name"], "class_name": l["class_name"], "inbound_nodes": l["inbound_nodes"]}
                      for l in config["layers"]],
           "input_layers": config["input_layers"], "output_layers": config["output_layers"]}
    assert got == want


def test_big_functional_round_trips_through_config(rng):
    model = big_functional()
    randomize(model, rng)
    rebuilt = keras.Model.from_config(model.get_config())
    rebuilt.set_weights(model.get_weights())
    assert_same_model(model, rebuilt, big_data(rng))
    assert len(rebuilt.get_layer("shared")._inbound_nodes) == 2
    assert isinstance(rebuilt.get_layer("seq"), keras.Sequential)


def test_sequential_config_layout_and_round_trip(rng):
    model = keras.Sequential([layers.Dense(4, activation="relu", input_shape=(3,)), layers.Dropout(0.2),
                              layers.Dense(2)], name="seq")
    config = model.get_config()
    assert list(config) == ["name", "trainable", "dtype", "layers", "build_input_shape"]
    assert config["build_input_shape"] == [None, 3]
    assert [l["class_name"] for l in config["layers"]] == ["InputLayer", "Dense", "Dropout", "Dense"]
    assert "build_config" not in config["layers"][2]  # Dropout has no build step, as in Keras
    assert all("inbound_nodes" not in l for l in config["layers"])
    rebuilt = keras.Sequential.from_config(config)
    rebuilt.set_weights(model.get_weights())
    assert_same_model(model, rebuilt, rng.normal(size=(4, 3)).astype("float32"))


def test_unbuilt_sequential_round_trips_and_builds_later(rng):
    model = keras.Sequential([layers.Dense(2, name="d")], name="lazy")
    config = model.get_config()
    assert "build_input_shape" not in config and [l["class_name"] for l in config["layers"]] == ["Dense"]
    rebuilt = keras.Sequential.from_config(config)
    assert not rebuilt.built
    assert rebuilt.predict(np.ones((1, 5), "float32")).shape == (1, 2)


def test_op_layers_and_call_kwargs_round_trip(rng):
    x = keras.Input((4,), name="x")
    y = ops.mean(x * 2.0, axis=1, keepdims=True)
    z = layers.Concatenate(axis=1)([y, ops.relu(x)])
    model = keras.Model(x, z)
    rebuilt = model_from_json(model.to_json())
    assert_same_model(model, rebuilt, rng.normal(size=(3, 4)).astype("float32"))


def test_legacy_tf_keras_json_loads():
    legacy = {"class_name": "Model", "keras_version": "2.4.0", "backend": "tensorflow", "config": {
        "name": "model", "layers": [
            {"class_name": "InputLayer", "name": "input_1", "inbound_nodes": [], "config": {
                "batch_input_shape": [None, 4], "dtype": "float32", "sparse": False, "ragged": False,
                "name": "input_1"}},
            {"class_name": "Dense", "name": "dense", "inbound_nodes": [[["input_1", 0, 0, {}]]], "config": {
                "name": "dense", "trainable": True, "dtype": "float32", "units": 2, "activation": "relu",
                "use_bias": True, "kernel_initializer": {"class_name": "GlorotUniform", "config": {"seed": None}},
                "bias_initializer": {"class_name": "Zeros", "config": {}}, "kernel_regularizer": None,
                "bias_regularizer": None, "activity_regularizer": None, "kernel_constraint": None,
                "bias_constraint": None}}],
        "input_layers": [["input_1", 0, 0]], "output_layers": [["dense", 0, 0]]}}
    model = model_from_json(json.dumps(legacy))
    assert [l.name for l in model.layers] == ["input_1", "dense"] and model.count_params() == 10
    x = np.arange(8, dtype="float32").reshape(2, 4)
    w, b = model.layers[1].get_weights()
    np.testing.assert_allclose(model.predict([x])[0], np.maximum(x @ w + b, 0), rtol=1e-5, atol=1e-6)


def test_invalid_configs_are_clear_errors():
    a = keras.Input((2,), name="a")
    config = keras.Model(a, layers.Dense(1, name="d")(a)).get_config()
    broken = json.loads(json.dumps(config))
    broken["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["ghost", 0, 0]
    with pytest.raises(ValueError, match="layer 'ghost', which is not in the config"):
        keras.Model.from_config(broken)
    cyclic = json.loads(json.dumps(config))
    cyclic["layers"][1]["inbound_nodes"][0]["args"][0]["config"]["keras_history"] = ["d", 0, 0]
    with pytest.raises(ValueError, match=r"calls of layers \['d'\].*cycle"):
        keras.Model.from_config(cyclic)
    bad_args = json.loads(json.dumps(config))
    bad_args["layers"][1]["config"]["unitz"] = 3
    with pytest.raises(TypeError, match="Layer class 'Dense' could not be rebuilt.*unitz"):
        keras.Model.from_config(bad_args)


def test_unserializable_config_value_names_the_layer():
    class Holder(layers.Layer):
        def call(self, x):
            return x

        def get_config(self):
            return {**super().get_config(), "thing": {1, 2}}

    x = keras.Input((4,))
    model = keras.Model(x, Holder(name="holder")(x))
    with pytest.raises(TypeError, match=r"layer 'holder' has a set .* at config\.config\.layers\[1\]"):
        model.to_json()


def test_operations_on_functional_tensors_are_written_as_keras_writes_them(rng):
    # x + y, x[:, 1:3], ops.mean(x, axis=1): Keras's operation classes (Add, GetItem, Mean), the tensors as call
    # arguments and the settings in the config, so Keras loads graphc's files (and graphc Keras's)
    x = keras.Input((4, 3))
    h = layers.Dense(3, name="d")(x)
    out = ops.reshape(ops.mean((x + h)[:, 1:3] * 2.0, axis=1, keepdims=True), (-1, 3))
    model = keras.Model(x, out)
    entry = json.loads(model.to_json())
    ops_written = {l["class_name"]: (l["module"], l["config"], l["inbound_nodes"][0]["args"][1:])
                   for l in entry["config"]["layers"] if l["module"].startswith("keras.src.ops")}
    assert ops_written["Add"][0] == "keras.src.ops.numpy" and ops_written["Add"][2][0]["class_name"] == "__keras_tensor__"
    assert ops_written["GetItem"][2] == [[{"class_name": "__slice__", "config": {"start": None, "stop": None, "step": None}},
                                          {"class_name": "__slice__", "config": {"start": 1, "stop": 3, "step": None}}]]
    assert ops_written["Multiply"][2] == [2.0]
    assert {k: v for k, v in ops_written["Mean"][1].items() if k != "name"} == {"axis": 1, "keepdims": True}
    assert {k: v for k, v in ops_written["Reshape"][1].items() if k != "name"} == {"newshape": [-1, 3]}
    restored = model_from_json(model.to_json())
    restored.set_weights(model.get_weights())
    data = rng.normal(size=(2, 4, 3)).astype("float32")
    np.testing.assert_array_equal(restored.predict(data, verbose=0), model.predict(data, verbose=0))


# --- to_json / model_from_json --------------------------------------------------------------------------------
def test_to_json_is_the_keras_entry_and_round_trips(rng):
    model = big_functional()
    randomize(model, rng)
    entry = json.loads(model.to_json())
    assert [k for k in entry] == ["module", "class_name", "config", "registered_name", "build_config",
                                  "compile_config"]
    assert entry["class_name"] == "Functional" and entry["config"]["name"] == "big"
    assert json.loads(model.to_json(indent=2)) == entry
    rebuilt = model_from_json(model.to_json())
    rebuilt.set_weights(model.get_weights())
    assert_same_model(model, rebuilt, big_data(rng))


def test_model_from_json_errors():
    with pytest.raises(ValueError, match="not a valid JSON string"):
        model_from_json("{not json")
    with pytest.raises(ValueError, match="not a model"):
        model_from_json(json.dumps({"class_name": "Dense", "config": {"units": 2}}))


# --- .keras files ----------------------------------------------------------------------------------------------
def test_save_writes_keras_archive_layout(tmp_path, rng):
    model = big_functional()
    model.compile(optimizer="adam", loss={"first": "mse", "second": "mae"}, metrics=["mae"])
    path = tmp_path / "big.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["metadata.json", "config.json", "model.weights.h5"]
        metadata = json.loads(zf.read("metadata.json"))
        config = json.loads(zf.read("config.json"))
        with h5py.File(zf.open("model.weights.h5"), "r") as f:
            names = {}
            f.visititems(lambda n, o: names.update({n: o.attrs.get("name")}))
            kernel = f["layers/dense/vars/0"][()]
    assert metadata["graphc_version"] == keras.__version__ and "date_saved" in metadata
    assert config["compile_config"] == {"optimizer": "adam", "loss": {"first": "mse", "second": "mae"},
                                        "loss_weights": None, "metrics": ["mae"]}
    # Paths name layers by class (dense, dense_1, ...) in model.layers order; the group keeps the layer name.
    assert names["vars"] == "big"
    assert [l.name for l in model.layers][:5] == ["b", "flat", "a", "to4", "shared"]  # Keras's order (checked)
    assert names["layers/dense/vars"] == "to4" and names["layers/dense_1/vars"] == "shared"
    assert names["layers/input_layer/vars"] == "b" and names["layers/input_layer_1/vars"] == "a"
    assert names["layers/functional/layers/dense/vars"] == "inner_dense"
    assert names["layers/sequential/layers/reshape/vars"] == "seq_reshape"
    np.testing.assert_array_equal(kernel, model.get_layer("to4").get_weights()[0])


def test_save_load_round_trip(tmp_path, rng):
    model = big_functional()
    randomize(model, rng)
    model.save(str(tmp_path / "m.keras"))
    restored = load_model(tmp_path / "m.keras")
    assert_same_model(model, restored, big_data(rng))
    assert not restored.compiled


def test_custom_layers_save_and_load(tmp_path, rng):
    x = keras.Input((4,), name="x")
    h = CustomDense(6)(x)
    out = Block(2, name="block")(h)
    model = keras.Model(x, out)
    randomize(model, rng)
    path = tmp_path / "custom.keras"
    model.save(path)
    with zipfile.ZipFile(path) as zf, h5py.File(zf.open("model.weights.h5"), "r") as f:
        # Sublayers live under their attribute names, private ones after public ones (as Keras).
        assert list(f["layers/block"]) == ["_gate", "proj", "vars"]
        assert f["layers/block/vars/0"].shape == (2,) and f["layers/block/proj/vars/0"].shape == (6, 2)
        assert f["layers/custom_dense/vars/0"].shape == (4, 6)
    restored = load_model(path, custom_objects={"CustomDense": CustomDense, "Block": Block})
    assert restored.layers[1].name == "custom_dense"  # kept although CustomDense's config has no name
    assert_same_model(model, restored, rng.normal(size=(3, 4)).astype("float32"))
    with pytest.raises(ValueError, match="Unknown layer class 'CustomDense'"):
        load_model(path, custom_objects={"Block": Block})


def test_custom_layer_config_as_keras_writes_it_builds_the_layer():
    # Keras 3's Layer.get_config (printed from Keras 3.15): every custom layer's config in Keras's files
    config = {"name": "blk", "activity_regularizer": None, "trainable": True, "autocast": True,
              "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float64"},
                        "registered_name": None}}
    class Scale(layers.Layer):
        def call(self, x):
            return x * 2.0

    layer = Scale.from_config(config)
    assert layer.name == "blk" and layer.dtype == "float64" and layer.autocast
    assert layer(np.ones((1, 2), "float32")).dtype == np.float64  # (the dtype policy was read as float32)
    assert not layers.Layer(autocast=False).autocast
    reg = layers.Layer(activity_regularizer="l2")  # (a penalty on the outputs: tests/train_cases.py's added_losses)
    assert reg.get_config()["activity_regularizer"]["class_name"] == "L2"
    assert type(Scale.from_config(reg.get_config()).activity_regularizer).__name__ == "L2"


class CellHeld(layers.Layer):
    """Keeps its variables where Keras's RNN layers keep theirs: in a 'cell' sublayer's group."""

    _variables_subpath = "cell"

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], 2), name="kernel")

    def call(self, x):
        return ops.matmul(x, self.kernel)


def test_variables_subpath_places_weights_like_keras_rnn_cells(tmp_path, rng):
    x = keras.Input((3,))
    model = keras.Model(x, CellHeld(name="held")(x))
    randomize(model, rng)
    model.save(tmp_path / "held.keras")
    with zipfile.ZipFile(tmp_path / "held.keras") as zf, h5py.File(zf.open("model.weights.h5"), "r") as f:
        assert len(f["layers/cell_held/vars"]) == 0 and f["layers/cell_held/vars"].attrs["name"] == "held"
        assert f["layers/cell_held/cell/vars"].attrs["name"] == "cell_held_cell"
        np.testing.assert_array_equal(f["layers/cell_held/cell/vars/0"][()], model.get_weights()[0])
    restored = load_model(tmp_path / "held.keras", custom_objects={"CellHeld": CellHeld})
    assert_same_model(model, restored, rng.normal(size=(2, 3)).astype("float32"))


def test_sequential_save_load_with_compile(tmp_path, rng):
    class Scaled(keras.losses.Loss):
        """A user's loss class: saved Keras-style through its get_config."""

        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**{k: v for k, v in kwargs.items() if k in ("name", "reduction")})
            self.factor = factor

        def call(self, y_true, y_pred):
            return self.factor * keras.ops.mean(keras.ops.square(y_pred - y_true), axis=-1)

        def get_config(self):
            return {"factor": self.factor}

    def my_metric(y_true, y_pred):
        return y_pred

    model = keras.Sequential([keras.Input((3,)), layers.Dense(4, activation="relu"), layers.Dense(2)])
    model.compile(optimizer="sgd", loss=Scaled(3.0), metrics=["accuracy", my_metric], loss_weights=[0.5])
    randomize(model, rng)
    path = tmp_path / "seq.keras"
    model.save(path)
    config = json.loads(zipfile.ZipFile(path).read("config.json"))
    assert config["module"] == "keras" and config["class_name"] == "Sequential"
    assert config["compile_config"]["loss"] == {"module": "test_saving", "class_name": "Scaled",
                                                "config": {"factor": 3.0}, "registered_name": "Scaled"}
    assert config["compile_config"]["metrics"][1] == {"module": "builtins", "class_name": "function",  # (Keras's)
                                                      "config": "my_metric", "registered_name": "function"}
    with pytest.warns(UserWarning, match="loaded but not compiled.*my_metric"):
        assert not load_model(path, custom_objects={"Scaled": Scaled}).compiled
    restored = load_model(path, custom_objects={"Scaled": Scaled, "my_metric": my_metric})
    assert restored.compiled
    cc = restored._compile_config
    assert cc["optimizer"] == "sgd" and cc["loss_weights"] == [0.5] and cc["metrics"] == ["accuracy", my_metric]
    assert isinstance(cc["loss"], Scaled) and cc["loss"].factor == 3.0
    assert_same_model(model, restored, rng.normal(size=(5, 3)).astype("float32"))
    assert not load_model(path, custom_objects={"Scaled": Scaled}, compile=False).compiled


def test_save_refuses_other_extensions_and_overwrite_false(tmp_path):
    model = keras.Sequential([keras.Input((2,)), layers.Dense(1)])
    for bad in ("m.h5", "m", "m.keras.zip"):
        with pytest.raises(ValueError, match=r"Invalid filepath extension.*must end with '.keras'"):
            model.save(tmp_path / bad)
    path = tmp_path / "m.keras"
    model.save(path)
    with pytest.raises(ValueError, match="already exists and overwrite=False"):
        model.save(path, overwrite=False)
    os.chmod(path, 0o600)
    model.save(path)  # overwrite=True replaces the file and keeps its permissions
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.save(tmp_path / "no_such_dir" / "m.keras")
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_failed_save_keeps_the_previous_file(tmp_path, monkeypatch, rng):
    first = keras.Sequential([keras.Input((2,)), layers.Dense(3)], name="first")
    path = tmp_path / "m.keras"
    first.save(path)
    before = path.read_bytes()

    class DiskFull:
        """Writes half of what it is given, then fails (as a full disk or a crash would)."""

        def __init__(self, f):
            self.f = f

        def write(self, data):
            self.f.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    real_fdopen = os.fdopen
    monkeypatch.setattr(saving.os, "fdopen", lambda fd, mode: DiskFull(real_fdopen(fd, mode)))
    second = keras.Sequential([keras.Input((2,)), layers.Dense(5)], name="second")
    with pytest.raises(OSError, match="No space left"):
        second.save(path)
    with pytest.raises(OSError, match="No space left"):
        second.save(tmp_path / "new.keras")
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]  # no temporary file left, no half-written new file
    assert load_model(path).name == "first"


def _keras_file(tmp_path, rng):
    model = keras.Sequential([keras.Input((3,)), layers.Dense(2, name="d")], name="small")
    randomize(model, rng)
    path = tmp_path / "good.keras"
    model.save(path)
    return path, model


def _rezip(src, dst, replace=None, drop=()):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            if name not in drop:
                zout.writestr(name, (replace or {}).get(name, zin.read(name)))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped_byte", "empty"])
def test_corrupted_files_raise_clear_errors_and_stay_untouched(tmp_path, rng, damage):
    good, _ = _keras_file(tmp_path, rng)
    data = good.read_bytes()
    bad = tmp_path / "bad.keras"
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        bad.write_bytes(b"this is not a zip file" * 10)
    elif damage == "flipped_byte":
        with zipfile.ZipFile(good) as zf:
            info = zf.getinfo("model.weights.h5")
        at = info.header_offset + 30 + len(info.filename) + info.file_size // 2  # inside the weights data
        bad.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:])
    else:
        bad.write_bytes(b"")
    before = bad.read_bytes()
    with pytest.raises(ValueError, match=r"Cannot load '.*bad\.keras': not a valid \.keras file"):
        load_model(bad)
    assert bad.read_bytes() == before


def test_incomplete_or_inconsistent_archives(tmp_path, rng):
    good, model = _keras_file(tmp_path, rng)
    cases = {
        "no_weights.keras": (dict(drop=("model.weights.h5",)), r"has no \['model.weights.h5'\]"),
        "no_config.keras": (dict(drop=("config.json",)), r"has no \['config.json'\]"),
        "bad_json.keras": (dict(replace={"config.json": b"{oops"}), "config.json is not valid JSON"),
        "bad_h5.keras": (dict(replace={"model.weights.h5": b"not hdf5"}), "not a readable HDF5 file"),
    }
    for name, (change, message) in cases.items():
        _rezip(good, tmp_path / name, **change)
        before = (tmp_path / name).read_bytes()
        with pytest.raises(ValueError, match=message):
            load_model(tmp_path / name)
        assert (tmp_path / name).read_bytes() == before
    with pytest.raises(ValueError, match="File not found: filepath=.*missing.keras"):
        load_model(tmp_path / "missing.keras")
    with pytest.raises(ValueError, match="is a directory"):
        os.mkdir(tmp_path / "dir.keras")
        load_model(tmp_path / "dir.keras")
    (tmp_path / "model.h5").write_bytes(good.read_bytes())
    with pytest.raises(ValueError, match="must end with '.keras'"):
        load_model(tmp_path / "model.h5")


def test_weights_that_do_not_fit_name_the_layer_and_shapes(tmp_path, rng):
    good, model = _keras_file(tmp_path, rng)
    other = keras.Sequential([keras.Input((4,)), layers.Dense(2)], name="other")
    other.save(tmp_path / "other.keras")
    with zipfile.ZipFile(tmp_path / "other.keras") as zf:
        wrong_weights = zf.read("model.weights.h5")
    _rezip(good, tmp_path / "mixed.keras", replace={"model.weights.h5": wrong_weights})
    with pytest.raises(ValueError, match=r"layer 'd' \(Dense\) weight 'kernel' expects shape \(3, 2\), the file "
                                         r"holds shape \(4, 2\) at 'layers/dense/vars/0'"):
        load_model(tmp_path / "mixed.keras")

    deeper = keras.Sequential([keras.Input((3,)), layers.Dense(2), layers.Dense(2)])
    deeper.save(tmp_path / "deeper.keras")
    with zipfile.ZipFile(tmp_path / "deeper.keras") as zf:
        extra_weights = zf.read("model.weights.h5")
    _rezip(good, tmp_path / "extra.keras", replace={"model.weights.h5": extra_weights})
    with pytest.raises(ValueError, match=r"weights the model has no place for: \['layers/dense_1/vars/0'"):
        load_model(tmp_path / "extra.keras")

    nobias = keras.Sequential([keras.Input((3,)), layers.Dense(2, use_bias=False)])
    nobias.save(tmp_path / "nobias.keras")
    with zipfile.ZipFile(tmp_path / "nobias.keras") as zf:
        short_weights = zf.read("model.weights.h5")
    _rezip(good, tmp_path / "short.keras", replace={"model.weights.h5": short_weights})
    with pytest.raises(ValueError, match=r"layer 'd' \(Dense\) has 2 weight\(s\) \['kernel', 'bias'\], the file "
                                         r"holds 1 at 'layers/dense/vars'"):
        load_model(tmp_path / "short.keras")


# --- files written by Keras 3 itself (tests/fixtures/make_keras_fixtures.py) -----------------------------------
def test_loads_a_keras3_saved_mlp_exactly():
    with open(os.path.join(FIXTURES, "keras3_mlp_io.json")) as f:
        io = json.load(f)
    model = load_model(os.path.join(FIXTURES, "keras3_mlp.keras"))
    assert model.name == "mlp" and [l.name for l in model.layers] == ["dense", "dense_1"]
    assert model.count_params() == 4 * 3 + 3 + 3 * 2 + 2
    np.testing.assert_allclose(model.predict(np.array(io["x"], "float32")), np.array(io["y"]), rtol=1e-5, atol=1e-6)
    cc = model._compile_config
    assert cc["loss"] == "categorical_crossentropy" and cc["metrics"] == ["accuracy"]
    assert type(model.optimizer).__name__ == "SGD" and cc["optimizer"] is model.optimizer


def test_keras3_cnn_config_loads_with_from_config(rng):
    with open(os.path.join(FIXTURES, "keras3_cnn_config.json")) as f:
        entry = json.load(f)
    model = keras.Sequential.from_config(entry["config"])
    assert model.name == "cnn"
    assert [type(l).__name__ for l in model.layers] == ["Conv2D", "MaxPooling2D", "Flatten", "Dense"]
    assert model.output_shape == (None, 3) and model.count_params() == (9 * 2 + 2) + (18 * 3 + 3)
    conv = model.layers[0]
    assert conv.get_weights()[0].shape == (3, 3, 1, 2)
    assert model.predict(rng.normal(size=(2, 8, 8, 1)).astype("float32")).shape == (2, 3)


def test_loads_a_keras3_saved_model_with_recurrent_norm_embedding_and_wrapper_layers():
    """Weights of LSTM/GRU/SimpleRNN live under 'cell' in Keras's file; BatchNormalization carries renorm keys."""
    with open(os.path.join(FIXTURES, "keras3_zoo_io.json")) as f:
        io = json.load(f)
    model = load_model(os.path.join(FIXTURES, "keras3_zoo.keras"))
    assert {type(l).__name__ for l in model.layers} >= {"LSTM", "GRU", "SimpleRNN", "TimeDistributed", "Embedding",
                                                        "BatchNormalization", "LayerNormalization", "Conv2D"}
    got = model.predict({"ids": np.array(io["ids"], "int32"), "img": np.array(io["img"], "float32")})
    np.testing.assert_allclose(got, np.array(io["y"]), rtol=1e-5, atol=1e-5)


# --- every registered layer class -----------------------------------------------------------------------------
def _cases():
    """class name -> (constructor kwargs (or a function making them), per-sample input shapes, dtype)."""
    one = lambda **kw: (lambda: kw)  # noqa: E731
    seq, img, vol = (6, 3), (6, 6, 2), (4, 4, 4, 1)
    return {
        "Layer": (one(), [(3,)], "float32"),
        "Dense": (one(units=3, activation="tanh"), [(4,)], "float32"),
        "Activation": (one(activation="sigmoid"), [(4,)], "float32"),
        "Dropout": (one(rate=0.3), [(4,)], "float32"),
        "Flatten": (one(), [(2, 3)], "float32"),
        "Reshape": (one(target_shape=(3, 2)), [(6,)], "float32"),
        "Permute": (one(dims=(2, 1)), [(2, 3)], "float32"),
        "RepeatVector": (one(n=2), [(3,)], "float32"),
        **{m: (one(), [(3,), (3,)], "float32") for m in ("Add", "Subtract", "Multiply", "Average", "Maximum",
                                                         "Minimum")},
        "Concatenate": (one(axis=-1), [(3,), (2,)], "float32"),
        "Dot": (one(axes=1), [(3,), (3,)], "float32"),
        "Conv1D": (one(filters=2, kernel_size=3), [seq], "float32"),
        "Conv2D": (one(filters=2, kernel_size=3), [img], "float32"),
        "Conv3D": (one(filters=2, kernel_size=2), [vol], "float32"),
        "Conv1DTranspose": (one(filters=2, kernel_size=3), [seq], "float32"),
        "Conv2DTranspose": (one(filters=2, kernel_size=3), [img], "float32"),
        "Conv3DTranspose": (one(filters=2, kernel_size=2), [vol], "float32"),
        "SeparableConv2D": (one(filters=2, kernel_size=3), [img], "float32"),
        "DepthwiseConv2D": (one(kernel_size=3), [img], "float32"),
        "DepthwiseConv1D": (one(kernel_size=2, depth_multiplier=2), [seq], "float32"),
        "SeparableConv1D": (one(filters=2, kernel_size=2), [seq], "float32"),
        **{p + d: (one(pool_size=2), [shape], "float32") for d, shape in (("1D", seq), ("2D", img), ("3D", vol))
           for p in ("MaxPooling", "AveragePooling")},
        **{p + d: (one(), [shape], "float32") for d, shape in (("1D", seq), ("2D", img), ("3D", vol))
           for p in ("GlobalMaxPooling", "GlobalAveragePooling", "UpSampling", "ZeroPadding", "Cropping")},
        "BatchNormalization": (one(), [(4,)], "float32"),
        "LayerNormalization": (one(), [(4,)], "float32"),
        "Normalization": (one(), [(4,)], "float32"),
        "MultiHeadAttention": (one(num_heads=2, key_dim=2), [seq, seq], "float32"),
        "Embedding": (one(input_dim=10, output_dim=3, mask_zero=True), [(5,)], "int32"),
        "Masking": (one(mask_value=0.5), [seq], "float32"),
        "SimpleRNN": (one(units=3), [seq], "float32"),
        "LSTM": (one(units=3), [seq], "float32"),
        "GRU": (one(units=3), [seq], "float32"),
        "RNN": (lambda: {"cell": layers.LSTMCell(3)}, [seq], "float32"),
        "Bidirectional": (lambda: {"layer": layers.LSTM(2)}, [seq], "float32"),
        "TimeDistributed": (lambda: {"layer": layers.Dense(2)}, [seq], "float32"),
        "ReLU": (one(), [(4,)], "float32"),
        "LeakyReLU": (one(), [(4,)], "float32"),
        "ELU": (one(), [(4,)], "float32"),
        "PReLU": (one(), [(4,)], "float32"),
        "Softmax": (one(), [(4,)], "float32"),
        "Identity": (one(), [(4,)], "float32"),
        "GaussianNoise": (one(stddev=0.1), [(4,)], "float32"),
        "GaussianDropout": (one(rate=0.1), [(4,)], "float32"),
        "SpatialDropout1D": (one(rate=0.1), [seq], "float32"),
        "SpatialDropout2D": (one(rate=0.1), [img], "float32"),
        "SpatialDropout3D": (one(rate=0.1), [vol], "float32"),
        "Rescaling": (one(scale=0.5, offset=1.0), [(4,)], "float32"),
        "Lambda": (lambda: {"function": double}, [(4,)], "float32"),  # (found again through custom_objects)
    }


# RNN cells run inside an RNN layer; the model above holds them through RNN/LSTM/GRU/SimpleRNN.
_HELD_BY_OTHERS = {"SimpleRNNCell": "SimpleRNN", "LSTMCell": "LSTM", "GRUCell": "GRU"}


def test_every_registered_layer_class_round_trips(tmp_path, rng):
    cases = _cases()
    registered = {cls.__name__: cls for cls in serialization.registered("layers").values()}  # aliases once
    uncovered = sorted(n for n in registered if n not in cases and n not in ("InputLayer", "OpLayer")
                       and _HELD_BY_OTHERS.get(n) not in registered)
    assert not uncovered, (f"Registered layer classes with no round-trip case in tests/test_saving.py: "
                           f"{uncovered}. Add constructor arguments and an input shape to _cases().")
    inputs, outputs, feeds = [], [], []
    for name in sorted(n for n in registered if n in cases):
        make_kwargs, shapes, dtype = cases[name]
        ins = [keras.Input(s, dtype=dtype, name=f"in_{name.lower()}_{i}") for i, s in enumerate(shapes)]
        out = registered[name](**make_kwargs())(ins if len(ins) > 1 else ins[0])
        inputs += ins
        outputs += out if isinstance(out, list) else [out]
        for s in shapes:
            feeds.append(rng.integers(0, 10, size=(3, *s)).astype(dtype) if dtype.startswith("int")
                         else rng.normal(size=(3, *s)).astype(dtype))
    x = keras.Input((4,), name="in_op")
    inputs.append(x)
    outputs.append(ops.mean(x * 2.0, axis=1, keepdims=True))  # OpLayer (InputLayer is in every model)
    feeds.append(rng.normal(size=(3, 4)).astype("float32"))
    model = keras.Model(inputs, outputs, name="everything")
    randomize(model, rng)
    functions = {"double": double}
    for rebuilt in (keras.Model.from_config(model.get_config(), custom_objects=functions),
                    model_from_json(model.to_json(), custom_objects=functions)):
        rebuilt.set_weights(model.get_weights())
        assert_same_model(model, rebuilt, feeds)
    model.save(tmp_path / "everything.keras")
    assert_same_model(model, load_model(tmp_path / "everything.keras", custom_objects=functions), feeds)


def test_keras_saved_lambdas_load_only_with_safe_mode_off():
    # Keras stores a Python lambda as bytecode; running it runs code from the file, so both refuse by default
    path = os.path.join(FIXTURES, "keras3_lambda.keras")
    with pytest.raises(ValueError, match=r"Lambda 'square_minus_one' holds a Python lambda.*safe_mode=False"):
        load_model(path)
    with open(os.path.join(FIXTURES, "keras3_lambda_io.json")) as f:
        io = json.load(f)
    model = load_model(path, safe_mode=False)
    np.testing.assert_allclose(model.predict(np.array(io["x"], "float32"), verbose=0), io["y"], rtol=1e-5,
                               atol=1e-6)


def double(x):
    return x * 2.0


def test_lambda_layers_compute_train_and_round_trip(tmp_path, rng):
    inp = keras.Input((3,))
    h = layers.Lambda(lambda t, k=1.0: ops.relu(t) * k, arguments={"k": 3.0}, name="scaled_relu")(inp)
    model = keras.Model(inp, layers.Lambda(double, name="twice")(layers.Dense(2, name="d")(h)))
    x = rng.normal(size=(5, 3)).astype("float32")
    kernel, bias = model.get_layer("d").get_weights()
    want = (np.maximum(x, 0) * 3.0 @ kernel + bias) * 2.0
    np.testing.assert_allclose(model.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, np.zeros((5, 2), "float32"), verbose=0)  # (gradients flow through both lambdas)
    assert not np.allclose(model.get_layer("d").get_weights()[0], kernel)
    path = tmp_path / "lambdas.keras"
    model.save(path)
    with pytest.raises(ValueError, match=r"calls the function 'double', which is not known here.*custom_objects"):
        load_model(path, safe_mode=False)
    restored = load_model(path, custom_objects={"double": double}, safe_mode=False)
    # (the bytecode's marshalled bytes may differ once loaded, as its strings' interning does: compare results)
    assert [layer.name for layer in restored.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="mask is not supported"):
        layers.Lambda(double, mask=lambda t, m: m)


def test_clone_model_has_the_architecture_and_new_weights(rng):
    class Scale(layers.Layer):
        def build(self, shape):
            self.g = self.add_weight(shape=(shape[-1],), initializer="ones", name="g")

        def call(self, x):
            return x * self.g

    inp = keras.Input((3,))
    model = keras.Model(inp, layers.Dense(2, name="out")(Scale(name="scale")(layers.Dense(3, name="d")(inp))))
    clone = keras.models.clone_model(model)  # (a custom layer class is found without custom_objects)
    assert [l.name for l in clone.layers] == [l.name for l in model.layers] and clone.layers[1] is not model.layers[1]
    assert any(not np.array_equal(a, b) for a, b in zip(clone.get_weights(), model.get_weights()))
    clone.set_weights(model.get_weights())
    x = rng.normal(size=(4, 3)).astype("float32")
    np.testing.assert_array_equal(clone.predict(x, verbose=0), model.predict(x, verbose=0))
    seq = keras.Sequential([keras.Input((4,)), layers.Dense(2)])
    assert type(keras.models.clone_model(seq)) is keras.Sequential
    with pytest.raises(ValueError, match=r"\['clone_function'\] not supported"):
        keras.models.clone_model(seq, clone_function=lambda layer: layer)


def test_loads_keras_operations_on_functional_tensors():
    with open(os.path.join(FIXTURES, "keras3_ops_io.json")) as f:
        io = json.load(f)
    model = load_model(os.path.join(FIXTURES, "keras3_ops.keras"))  # (it raised: Add must be called on a list)
    for got, want in zip(model.predict(np.array(io["x"], "float32"), verbose=0), io["y"]):
        np.testing.assert_allclose(got, np.array(want), rtol=1e-5, atol=1e-6)
