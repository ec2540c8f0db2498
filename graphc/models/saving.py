"""``model.save(path)`` / ``load_model(path)`` in the Keras 3 ``.keras`` format, and JSON configs.

A ``.keras`` file is a zip holding ``metadata.json``, ``config.json`` (the model entry with its
compile config) and ``model.weights.h5``. The weights file is laid out as Keras 3 lays it out: each layer's
own variables at ``<path>/vars/<i>`` (trainable then non-trainable, creation order), where a model's
layers are at ``layers/<snake_case class name>[_<n>]`` and sublayers held by attributes at
``<path>/<attribute>``. Nothing is pickled or evaluated; saving replaces the file atomically.
"""
from __future__ import annotations

import datetime
import io
import json
import os
import secrets
import stat
import zipfile
import zlib

import numpy as np

from .. import serialization
from ..layers.base import Layer, to_snake_case
from ..layers.input_layer import InputLayer
from .config import deserialize_layer, serialize_model
from .functional import Functional, Model
from .sequential import Sequential

CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE = "config.json", "metadata.json", "model.weights.h5"
# Attributes through which the base classes hold layers that the walk reaches as "layers" already.
_SKIPPED_ATTRS = {"_sublayers", "_layers", "_stack", "_parent"}
_BASE_CLASSES = (Layer, InputLayer, Model, Functional, Sequential)
# Top-level groups a Keras-written file may hold for objects graphc keeps no state for yet.
_IGNORED_GROUPS = ("optimizer",)


# --- the walk Keras 3 uses to name each layer's variables --------------------------------------------------
def _name_key(name):
    return f"~{name}" if name.startswith("_") else name  # private attributes after public ones


def _attributes(obj):
    """(name, value) of the attributes that may hold sublayers, in Keras's order."""
    names = set(vars(obj)) - _SKIPPED_ATTRS
    for klass in type(obj).__mro__:
        if klass not in _BASE_CLASSES and klass is not object:
            names.update(k for k, v in vars(klass).items() if isinstance(v, property))
    for name in sorted((n for n in names if not n.startswith("__")), key=_name_key):
        try:
            yield name, getattr(obj, name)
        except Exception:  # a property that cannot be computed holds no sublayer
            continue


def _join(path, name):
    return f"{path}/{name}" if path else name


def _unique(name, used):
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _walk(obj, path, visited):
    """Yield (layer, path) for ``obj`` and everything it holds, each layer once."""
    if id(obj) in visited:
        return
    visited.add(id(obj))
    yield obj, path
    children = []
    if isinstance(obj, Sequential) or (isinstance(obj, Model) and hasattr(obj, "_nodes")):
        children.append(("layers", obj.layers))
    children.extend(_attributes(obj))
    for attr, child in children:
        yield from _walk_child(child, _join(path, attr), visited, set())


def _walk_child(child, path, visited, seen_containers):
    if isinstance(child, Layer):
        yield from _walk(child, path, visited)
    elif isinstance(child, (list, tuple, dict)):
        if id(child) in seen_containers:
            return
        seen_containers.add(id(child))
        used = {}
        for item in (child.values() if isinstance(child, dict) else child):
            if isinstance(item, Layer):
                yield from _walk(item, _join(path, _unique(to_snake_case(type(item).__name__), used)), visited)
            elif isinstance(item, (list, tuple, dict)):
                yield from _walk_child(item, _join(path, _unique("container", used)), visited, seen_containers)


def _own_variables(layer):
    return layer._trainable_variables + layer._non_trainable_variables


def _variables_path(layer, path):
    """Where a layer's own variables live. A layer whose Keras counterpart keeps them in a sublayer
    (an RNN layer's ``cell``) names that attribute in ``_variables_subpath``."""
    sub = getattr(layer, "_variables_subpath", None)
    return _join(_join(path, sub) if sub else path, "vars")


def _weights_h5(model, with_optimizer=True) -> bytes:
    import h5py  # imported here so that ``import graphc`` does not need it
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        for layer, path in _walk(model, "", set()):
            group = f.create_group(_join(path, "vars"))
            group.attrs["name"] = layer.name
            sub = getattr(layer, "_variables_subpath", None)
            if sub:  # Keras names an RNN's cell 'lstm_cell', 'gru_cell', ...
                group = f.create_group(_variables_path(layer, path))
                group.attrs["name"] = f"{to_snake_case(type(layer).__name__)}_{sub}"
            for i, variable in enumerate(_own_variables(layer)):
                group.create_dataset(str(i), data=variable.numpy())
        optimizer = getattr(model, "optimizer", None) if with_optimizer else None
        if optimizer is not None:  # Keras 3 keeps the optimizer's state beside the layers
            group = f.create_group("optimizer/vars")
            group.attrs["name"] = optimizer.name
            optimizer.save_own_variables(group)
    return buffer.getvalue()


def _datasets(f):
    import h5py
    found = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _load_weights(model, data: bytes, filepath):
    import h5py
    try:
        f = h5py.File(io.BytesIO(data), "r")
    except OSError as e:
        raise ValueError(f"Cannot load '{filepath}': {WEIGHTS_FILE} is not a readable HDF5 file ({e})") from None
    try:
        with f:
            assignments = _read_weights(model, f, filepath)
            group = f.get("optimizer/vars")
            optimizer_state = None if group is None else {k: np.asarray(group[k][()]) for k in group.keys()}
    except (OSError, KeyError) as e:  # damage inside the HDF5 file itself
        raise ValueError(f"Cannot load '{filepath}': {WEIGHTS_FILE} is corrupted ({e})") from None
    for variable, value in assignments:  # only once everything fits
        variable.assign(value)
    optimizer = getattr(model, "optimizer", None)
    if optimizer_state is not None and optimizer is not None:  # training resumes where it stopped
        optimizer.build(model.trainable_weights)
        optimizer.load_own_variables(optimizer_state)


def _read_weights(model, f, filepath):
    """(variable, value) pairs for every weight of ``model``, checked against the file."""
    import h5py
    assignments, read = [], set()
    for layer, path in _walk(model, "", set()):
        variables = _own_variables(layer)
        group_path = _variables_path(layer, path)
        group = f[group_path] if group_path in f and isinstance(f[group_path], h5py.Group) else {}
        keys = [k for k in group.keys() if isinstance(group[k], h5py.Dataset)]
        if len(keys) != len(variables):
            raise ValueError(f"Cannot load '{filepath}': layer '{layer.name}' ({type(layer).__name__}) has "
                             f"{len(variables)} weight(s) {[v.name for v in variables]}, the file holds "
                             f"{len(keys)} at '{group_path}'")
        for i, variable in enumerate(variables):
            if str(i) not in group:
                raise ValueError(f"Cannot load '{filepath}': weight '{group_path}/{i}' of layer "
                                 f"'{layer.name}' is missing")
            value = np.asarray(group[str(i)][()])
            if value.shape != tuple(variable.shape):
                raise ValueError(f"Cannot load '{filepath}': layer '{layer.name}' ({type(layer).__name__}) "
                                 f"weight '{variable.name}' expects shape {tuple(variable.shape)}, the file "
                                 f"holds shape {value.shape} at '{group_path}/{i}'")
            assignments.append((variable, value))
            read.add(f"{group_path}/{i}")
    unread = [d for d in _datasets(f) if d not in read and d.split("/")[0] not in _IGNORED_GROUPS]
    if unread:
        raise ValueError(f"Cannot load '{filepath}': the file holds weights the model has no place for: "
                         f"{unread[:5]}{' ...' if len(unread) > 5 else ''}")
    return assignments


# --- save / load ----------------------------------------------------------------------------------------------
def _check_keras_path(filepath, action):
    path = os.fspath(filepath)
    if not isinstance(path, str) or not path.endswith(".keras"):
        raise ValueError(f"Invalid filepath extension for {action}: graphc uses the Keras 3 `.keras` format, "
                         f"so the path must end with '.keras'. Received: filepath={path!r}")
    return path


def _json_value(obj, path, layer):
    """``obj`` with tuples as lists and NumPy values as Python ones; anything JSON cannot hold is an error
    naming the layer and the place in its config."""
    if isinstance(obj, dict):
        config = obj.get("config")
        if "class_name" in obj and isinstance(config, dict) and isinstance(config.get("name"), str):
            layer = config["name"]
        return {str(k): _json_value(v, f"{path}.{k}", layer) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_value(v, f"{path}[{i}]", layer) for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"Cannot serialize the model: layer '{layer}' has a {type(obj).__name__} ({obj!r}) at "
                    f"{path}, which JSON cannot represent")


def _model_json(model, **kwargs):
    return json.dumps(_json_value(serialize_model(model), "config", model.name), **kwargs)


def _metadata():
    from .. import __version__
    return {"graphc_version": __version__,
            "date_saved": datetime.datetime.now().strftime("%Y-%m-%d@%H:%M:%S")}


def _archive_bytes(model) -> bytes:
    """The whole .keras file in memory, so nothing touches the disk before it is complete."""
    config = _model_json(model)
    weights = _weights_h5(model)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(METADATA_FILE, json.dumps(_metadata()))
        zf.writestr(CONFIG_FILE, config)
        zf.writestr(WEIGHTS_FILE, weights)
    return buffer.getvalue()


def _atomic_write(path, data: bytes):
    """Write to a temporary file beside ``path``, then rename it over ``path``: a crash leaves the
    previous file whole."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"Cannot save to '{path}': directory '{directory}' does not exist")
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if os.path.isfile(path):  # an overwritten file keeps its permissions
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    """Make the rename itself durable where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_model(model, filepath, overwrite=True):
    """Save architecture, weights and compile config to a ``.keras`` file (as ``model.save``)."""
    path = _check_keras_path(filepath, "saving")
    if not isinstance(model, Model):
        raise TypeError(f"save_model expects a graphc Model, received {type(model).__name__}")
    if not overwrite and os.path.exists(path):
        raise ValueError(f"File '{path}' already exists and overwrite=False")
    _atomic_write(path, _archive_bytes(model))


def _read_archive(path):
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            missing = [m for m in (CONFIG_FILE, WEIGHTS_FILE) if m not in names]
            if missing:
                raise ValueError(f"Cannot load '{path}': the archive has no {missing} (members: {sorted(names)}); "
                                 "it is not a complete .keras file")
            config_text, weights = zf.read(CONFIG_FILE), zf.read(WEIGHTS_FILE)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        raise ValueError(f"Cannot load '{path}': not a valid .keras file (not a zip archive, truncated or "
                         f"corrupted: {e})") from None
    try:
        config = json.loads(config_text)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"Cannot load '{path}': {CONFIG_FILE} is not valid JSON ({e})") from None
    return config, weights


def _model_from_entry(entry, custom_objects, compile, where):
    if not isinstance(entry, dict) or "class_name" not in entry or "config" not in entry:
        raise ValueError(f"{where}: expected a Keras model entry with 'class_name' and 'config'")
    if not compile:
        entry = {k: v for k, v in entry.items() if k != "compile_config"}
    model = deserialize_layer(entry, custom_objects)
    if not isinstance(model, Model):
        raise ValueError(f"{where}: holds a {type(model).__name__} layer, not a model")
    return model


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by ``model.save`` (graphc or Keras 3). ``custom_objects`` maps class names to
    custom layer classes (and names to the functions of Lambda layers). ``safe_mode=False`` lets a Lambda
    layer's saved Python lambda (bytecode) run; by default it is refused, as in Keras."""
    path = os.fspath(filepath)
    if not os.path.exists(path):
        raise ValueError(f"File not found: filepath={path}. Please ensure the file is an accessible `.keras` "
                         "zip file.")
    if os.path.isdir(path):
        raise ValueError(f"Cannot load '{path}': it is a directory; graphc loads `.keras` zip files")
    _check_keras_path(path, "loading")
    config, weights = _read_archive(path)
    with serialization.safe_mode_scope(safe_mode):
        model = _model_from_entry(config, custom_objects, compile, f"Cannot load '{path}': {CONFIG_FILE}")
    _load_weights(model, weights, path)
    return model


def model_to_json(model, **kwargs):
    """The model entry (Keras 3 layout) as a JSON string; ``kwargs`` go to ``json.dumps``."""
    return _model_json(model, **kwargs)


def model_from_json(json_string, custom_objects=None):
    """A new model (fresh weights) from ``model.to_json()``."""
    try:
        entry = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"model_from_json: not a valid JSON string ({e})") from None
    return _model_from_entry(entry, custom_objects, True, "model_from_json")


# --- weights only (.weights.h5) ---------------------------------------------------------------------------------
def _check_weights_path(filepath):
    path = os.fspath(filepath)
    if not str(path).endswith(".weights.h5"):
        raise ValueError(f"The filename must end in `.weights.h5`. Received: filepath={path}")
    return path


def save_weights(model, filepath, overwrite=True):
    """``model.save_weights``: the layers' weights in Keras 3's HDF5 layout, written atomically."""
    path = _check_weights_path(filepath)
    if not overwrite and os.path.exists(path):
        raise ValueError(f"File '{path}' already exists and overwrite=False")
    _atomic_write(path, _weights_h5(model, with_optimizer=False))


def load_weights(model, filepath):
    """``model.load_weights``: every weight is checked against the file before any is assigned."""
    path = _check_weights_path(filepath)
    if not os.path.isfile(path):
        raise ValueError(f"File not found: filepath={path}")
    with open(path, "rb") as f:
        _load_weights(model, f.read(), path)
