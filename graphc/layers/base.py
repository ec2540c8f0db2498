"""``Layer``: owns weights; called on symbolic tensors it records a node and checks shapes.

A layer never computes by itself. Its ``call`` is written with ``graphc.ops``
and runs in three settings:
- on functional-API tensors (``KerasTensor``): ``call`` is traced once on
  placeholders to infer (and check) output shapes, and a ``Node`` is recorded;
- inside another trace (a model being lowered to IR, or a layer calling a
  sublayer): ``call`` emits IR ops into the graph being built;
- on NumPy arrays: traced and run at once with the reference executor.
"""
from __future__ import annotations

import inspect
import itertools
import re
import warnings
from collections import defaultdict

import numpy as np

from .. import initializers as initializers_mod
from ..ir import GraphBuilder, ShapeError, TensorType, format_shape, normalize_dtype, reference
from ..serialization import register, serialize_object
from ..tracing import Tensor, current_builder, scope, tracing
from ..variables import Variable
from .input_spec import InputSpec
from .node import KerasTensor, Node, flatten, map_structure, pack_like

_name_counts: dict = defaultdict(int)

_weight_set_versions = itertools.count(1)
_weight_set_version = 0


def weight_sets_version() -> int:
    """A number that changes whenever the set of (trainable) weights of some layer or model may have changed:
    a weight added, a ``trainable`` flag set, a sublayer attached, a model's layers rebuilt. Lets a caller
    keep what it derived from ``trainable_weights`` instead of walking every layer again."""
    return _weight_set_version


def weight_sets_changed() -> None:
    global _weight_set_version
    _weight_set_version = next(_weight_set_versions)


def to_snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def run_eagerly(graph, feeds: dict) -> list:
    """The arrays of ``graph``'s outputs on the NumPy reference, for a layer or model called on arrays. A
    training-mode random op (Dropout) gets a fresh draw; the state a training-mode call updates
    (BatchNormalization's moving statistics: ``graph.updates``) is written back, as Keras does outside fit."""
    feeds = dict(feeds)
    if graph.rng_counter is not None:
        from ..utils.random import global_rng
        feeds[graph.rng_counter.id] = np.int32(global_rng().integers(2 ** 31))
    params = {v.id: graph.param_keys[v.id].value for v in graph.params}
    results = reference.run(graph, feeds, params, extra=[value for _, value in graph.updates])
    n = len(graph.outputs)
    for (variable, _), value in zip(graph.updates, results[n:]):
        variable.assign(value)
    return results[:n]


def unique_name(prefix: str) -> str:
    """'dense', 'dense_1', 'dense_2', ... as Keras names layers."""
    n = _name_counts[prefix]
    _name_counts[prefix] += 1
    return prefix if n == 0 else f"{prefix}_{n}"


def clear_session() -> None:
    """Reset automatic layer names (like keras.backend.clear_session)."""
    _name_counts.clear()


def _batch_size(t):
    """The size of tensor t's first axis, as a float32 tensor (known only when the graph runs)."""
    from .. import ops
    from ..tracing import emit
    ones = emit("broadcast_like", 1.0, t)
    return ops.sum(ops.mean(ones, axis=tuple(range(1, len(t.shape)))) if len(t.shape) > 1 else ones)


def input_mask(t):
    """The Keras mask attached to a tensor (traced or functional), or None."""
    return getattr(t, "_keras_mask", None)


def symbolic_like(t):
    """A functional-API tensor with traced tensor ``t``'s shape, dtype and mask (shape and dtype only)."""
    kt = KerasTensor(t.shape, t.dtype)
    m = input_mask(t)
    if m is not None:
        kt._keras_mask = KerasTensor(m.shape, m.dtype)
    return kt


class LayerShapeError(ValueError):
    """A shape error already attributed to a layer (not re-wrapped by enclosing layers)."""


def _shape_list(x):
    return map_structure(lambda t: tuple(t.shape), x)


@register("layers")
class Layer:
    """Base class of all layers. Subclasses define ``build(input_shape)`` and ``call(inputs)``."""

    def __init__(self, *, name=None, trainable=True, dtype=None, input_shape=None, input_dim=None,
                 batch_input_shape=None, batch_size=None, autocast=True, activity_regularizer=None, **kwargs):
        if kwargs:
            raise TypeError(f"{type(self).__name__}.__init__() got unexpected keyword argument(s) "
                            f"{sorted(kwargs)}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"{type(self).__name__}: name must be a string, got {type(name).__name__}")
        self.name = name or unique_name(to_snake_case(type(self).__name__))
        self.trainable = trainable
        if isinstance(dtype, dict):  # a Keras 3 DTypePolicy's config, as in Keras's saved files
            dtype = (dtype.get("config") or {}).get("name")
        self.dtype = normalize_dtype(dtype) if dtype is not None else "float32"
        self.autocast = bool(autocast)
        from .. import regularizers  # (regularizers imports layers' helpers)
        self.activity_regularizer = regularizers.get(activity_regularizer)
        self.built = False
        self.input_spec = None
        self._inbound_nodes: list = []
        self._trainable_variables: list = []
        self._non_trainable_variables: list = []
        self._sublayers: list = []
        # Sequential reads these to create the model's Input.
        if input_dim is not None and input_shape is None:
            input_shape = (input_dim,)
        if batch_input_shape is not None:
            batch_size, input_shape = batch_input_shape[0], tuple(batch_input_shape[1:])
        self._batch_input_shape = None if input_shape is None else (batch_size,) + tuple(input_shape)

    # --- sublayer tracking (a layer assigned to an attribute is part of this layer) ----------------
    def __setattr__(self, key, value):
        if key == "trainable":
            weight_sets_changed()  # this layer's trainable weights, and those of every model holding it
            if "_sublayers" in self.__dict__:  # set after construction: it reaches every sublayer, as in Keras
                for layer in self._layers_for_weights():  # (so a frozen base's BatchNormalization runs in
                    layer.trainable = value               # inference mode in fit, as in transfer learning)
        if isinstance(value, (Layer, list, tuple)) and hasattr(self, "_sublayers"):
            for item in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(item, Layer) and item is not self and item not in self._sublayers:
                    self._sublayers.append(item)
                    weight_sets_changed()
        super().__setattr__(key, value)

    # --- weights --------------------------------------------------------------------------------
    def build(self, input_shape):
        self.built = True

    def add_weight(self, shape=None, initializer=None, dtype=None, trainable=True, name=None,
                   regularizer=None, constraint=None, autocast=True):
        """Create a weight; floats default to glorot_uniform, others to zeros (as in Keras). ``regularizer``: a
        penalty training adds to the loss while the weight is trainable (graphc.regularizers)."""
        if constraint is not None:
            raise ValueError(f"Layer '{self.name}': add_weight(constraint={constraint!r}) is not supported by graphc "
                             "yet")
        shape = tuple(int(d) for d in (shape or ()))
        dtype = normalize_dtype(dtype or self.dtype)
        if initializer is None:
            initializer = "glorot_uniform" if dtype.startswith("float") else "zeros"
        init = initializers_mod.get(initializer)
        name = name or f"variable_{len(self._trainable_variables) + len(self._non_trainable_variables)}"
        var = Variable(init(shape, dtype), name, trainable=trainable, dtype=dtype, path=f"{self.name}/{name}")
        if regularizer is not None:
            from .. import regularizers
            var.regularizer = regularizers.get(regularizer)
        (self._trainable_variables if trainable else self._non_trainable_variables).append(var)
        weight_sets_changed()
        return var

    def _layers_for_weights(self):
        return self._sublayers

    def _collect(self, own, attr):
        """``own`` weights, then those of sublayers, each once (a shared layer counts once)."""
        out, seen = [], set()
        for w in own + [w for layer in self._layers_for_weights() for w in getattr(layer, attr)]:
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    @property
    def weights(self):
        return self._collect(self._trainable_variables + self._non_trainable_variables, "weights")

    @property
    def trainable_weights(self):
        return self._collect(self._trainable_variables, "trainable_weights") if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return self._collect(self._non_trainable_variables, "non_trainable_weights")

    @property
    def losses(self):
        """The penalties of the trainable weights' regularizers (Keras's ``layer.losses``), as float32 scalars."""
        return [np.float32(v.regularizer(v.numpy())) for v in self.trainable_weights if v.regularizer is not None]

    variables = weights
    trainable_variables = trainable_weights
    non_trainable_variables = non_trainable_weights

    def get_weights(self):
        return [w.numpy() for w in self.weights]

    def set_weights(self, weights):
        params = self.weights
        if len(weights) != len(params):
            raise ValueError(f"Layer '{self.name}' expects {len(params)} weight arrays "
                             f"({[tuple(p.shape) for p in params]}), received {len(weights)}")
        for p, w in zip(params, weights):
            w = np.asarray(w)
            if w.shape != p.shape:
                raise ValueError(f"Layer '{self.name}': weight '{p.name}' has shape {p.shape}, "
                                 f"received an array of shape {w.shape}")
        for p, w in zip(params, weights):
            p.assign(w)

    def count_params(self):
        if not self.built:
            raise ValueError(f"Layer '{self.name}' is not built yet, so its weights do not exist: "
                             "call it on an input first (or give the model an input shape).")
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    # --- calling ----------------------------------------------------------------------------------
    def call(self, inputs):
        return inputs

    def __call__(self, *args, **kwargs):
        if not args:
            if "inputs" not in kwargs:
                raise TypeError(f"Layer '{self.name}' was called without inputs")
            args = (kwargs.pop("inputs"),)
        inputs, extra = args[0], args[1:]
        flat = flatten(inputs)
        if any(isinstance(t, KerasTensor) for t in flat):
            if not all(isinstance(t, KerasTensor) for t in flat):
                bad = next(t for t in flat if not isinstance(t, KerasTensor))
                raise TypeError(f"Layer '{self.name}' was called on a mix of symbolic tensors and "
                                f"{type(bad).__name__}; all inputs must come from graphc.Input or other layers")
            return self._symbolic_call(inputs, extra, kwargs)
        if current_builder() is not None:
            return self._traced_call(inputs, *extra, **kwargs)
        return self._eager_call(inputs, extra, kwargs)

    # --- masks (Keras's masking: a (batch, steps) boolean tensor attached to a tensor as _keras_mask) -----------
    @property
    def supports_masking(self):
        """Whether the layer passes masks on (``compute_mask``); True where a subclass defines compute_mask,
        as in Keras. A layer that does not support masking drops the mask of its input."""
        flag = getattr(self, "_supports_masking", None)  # (a class may set it too)
        return flag if flag is not None else type(self).compute_mask is not Layer.compute_mask

    @supports_masking.setter
    def supports_masking(self, value):
        self.__dict__["_supports_masking"] = bool(value)

    def compute_mask(self, inputs, previous_mask):
        """The output's mask (called only where ``supports_masking``): by default the input's, unchanged."""
        return previous_mask

    def add_loss(self, loss):
        """Add a scalar ``loss`` (a tensor computed in ``call``) to the loss that fit, evaluate, train_on_batch and
        test_on_batch minimize and report, as Keras's ``add_loss``."""
        builder = current_builder()
        if builder is None or not isinstance(loss, Tensor):
            raise ValueError(f"Layer '{self.name}': add_loss() can only be called from inside call(), on a tensor "
                             f"computed there. Received {type(loss).__name__}")
        from .. import ops
        builder.added_losses.append(ops.sum(ops.cast(loss, "float32")))

    def _call_with_masks(self, inputs, args, kwargs):
        """``call`` with Keras's mask protocol: a ``mask`` argument is filled from the inputs' masks when not
        given, and the outputs get the masks ``compute_mask`` returns (where they have none yet)."""
        masks = map_structure(input_mask, inputs)
        if any(m is not None for m in flatten(masks)) and kwargs.get("mask") is None and \
                self._call_accepts("mask", by_name=True):  # (the signature is read only when there are masks)
            kwargs["mask"] = masks
        previous = kwargs["mask"] if kwargs.get("mask") is not None else masks
        out = self.call(inputs, *args, **kwargs)
        if self.activity_regularizer is not None:  # (Keras: the penalty of each output over the batch size)
            for t in flatten(out):
                if isinstance(t, Tensor):
                    penalty = self.activity_regularizer(t)
                    self.add_loss(penalty / _batch_size(t) if len(t.shape) else penalty)
        if self.supports_masking:
            flat_out = [t for t in flatten(out) if isinstance(t, Tensor)]
            if not all(input_mask(t) is not None for t in flat_out):
                new = self.compute_mask(inputs, previous)
                if new is not None:
                    for t, m in zip(flat_out, flatten(new) if isinstance(new, (list, tuple)) else [new]):
                        if m is not None and input_mask(t) is None:
                            t._keras_mask = m
        return out

    def _check_input_spec(self, inputs):
        specs = self.input_spec
        if specs is None:
            return
        flat = flatten(inputs)
        specs = specs if isinstance(specs, (list, tuple)) else [specs] * len(flat)
        for i, (spec, t) in enumerate(zip(specs, flat)):
            if spec is not None:
                spec.check(self, i, tuple(t.shape))

    def _maybe_build(self, inputs):
        self._check_input_spec(inputs)
        if not self.built:
            shapes = _shape_list(inputs)
            try:
                self.build(shapes)
            except ShapeError as e:
                raise LayerShapeError(self._describe_error(e, inputs)) from None
            self.built = True
            self._check_input_spec(inputs)

    def _describe_error(self, err, inputs):
        shapes = [format_shape(t.shape) for t in flatten(inputs)]
        received = shapes[0] if len(shapes) == 1 else "[" + ", ".join(shapes) + "]"
        return (f"Layer '{self.name}' ({type(self).__name__}) cannot accept its input: {err}. "
                f"Received input shape: {received}")

    def _call_accepts(self, kw, by_name=False):
        """Whether ``call`` takes keyword ``kw``: as a named parameter, or (unless ``by_name``, as Keras asks of
        ``mask``) through ``**kwargs``."""
        try:
            params = inspect.signature(self.call).parameters
        except (TypeError, ValueError):
            return False
        return kw in params or (not by_name and any(p.kind is p.VAR_KEYWORD for p in params.values()))

    def _traced_call(self, inputs, *args, training=None, **kwargs):
        """Run ``call`` inside the current trace, attributing shape errors to this layer."""
        self._maybe_build(inputs)
        if self._call_accepts("training"):
            kwargs["training"] = training
        try:
            with scope(self.name):
                return self._call_with_masks(self._autocast_inputs(inputs), args, kwargs)
        except ShapeError as e:
            raise LayerShapeError(self._describe_error(e, inputs)) from None

    def _autocast_inputs(self, inputs):
        """Floating-point inputs cast to the layer's floating dtype, as Keras's layers do (a Dense(dtype='float64')
        on a float32 input computes in float64); other inputs (integer ids) as given."""
        if not self.dtype.startswith("float") or not self.autocast:
            return inputs
        from .. import ops
        return map_structure(lambda t: ops.cast(t, self.dtype) if isinstance(t, Tensor) and t.dtype != self.dtype
                             and t.dtype.startswith("float") else t, inputs)

    def _symbolic_call(self, inputs, extra, kwargs):
        self._maybe_build(inputs)
        builder = GraphBuilder()
        masked = [t for t in flatten(inputs) if input_mask(t) is not None]
        if masked and not self.supports_masking and not self._call_accepts("mask", by_name=True):
            warnings.warn(f"Layer '{self.name}' ({type(self).__name__}) was passed an input with a mask, but it "
                          "does not support masking: the layers after it will not see the mask", stacklevel=3)

        def placeholder(t):
            ph = Tensor(builder.input(t.name or "x", TensorType(t.shape, t.dtype)))
            if input_mask(t) is not None:  # the mask as a placeholder too: compute_mask and call may use it
                ph._keras_mask = Tensor(builder.input("mask", TensorType(t._keras_mask.shape, t._keras_mask.dtype)))
            return ph

        with tracing(builder):
            placeholders = map_structure(placeholder, inputs)
            out = self._traced_call(placeholders, *extra, **kwargs)
        outputs = map_structure(symbolic_like, out)
        for i, t in enumerate(flatten(outputs)):
            t.name = f"{self.name}_{len(self._inbound_nodes)}_{i}" if i else self.name
        Node(self, inputs, outputs, {"extra_args": list(extra), **kwargs})
        return outputs

    def _eager_call(self, inputs, extra, kwargs):
        arrays = map_structure(lambda a: np.asarray(a, dtype="float32") if np.asarray(a).dtype == np.float64
                               else np.asarray(a), inputs)
        builder = GraphBuilder()
        feeds = {}
        with tracing(builder):
            def placeholder(a):
                v = builder.input(f"x{len(feeds)}", TensorType(a.shape, a.dtype))
                feeds[v.id] = a
                return Tensor(v)
            out = self._traced_call(map_structure(placeholder, arrays), *extra, **kwargs)
            graph = builder.finish([t.value for t in flatten(out)])
        return pack_like(out, run_eagerly(graph, feeds))

    # --- introspection ------------------------------------------------------------------------------
    @property
    def input(self):
        node = self._inbound_nodes[0] if self._inbound_nodes else None
        if node is None:
            raise AttributeError(f"Layer '{self.name}' is not connected: it has no input")
        return node.call_args if not node.is_input else node.outputs

    @property
    def output(self):
        if not self._inbound_nodes:
            raise AttributeError(f"Layer '{self.name}' is not connected: it has no output")
        return self._inbound_nodes[0].outputs

    @property
    def input_shape(self):
        return _shape_list(self.input)

    @property
    def output_shape(self):
        return _shape_list(self.output)

    def compute_output_shape(self, input_shape):
        """Output shape(s) for an input shape, found by tracing ``call``."""
        is_multi = isinstance(input_shape, list) and input_shape and isinstance(input_shape[0], (tuple, list))
        shapes = input_shape if is_multi else [input_shape]
        ins = [KerasTensor(s, self.dtype) for s in shapes]
        self._maybe_build(ins if is_multi else ins[0])
        builder = GraphBuilder()
        with tracing(builder):
            ph = [Tensor(builder.input("x", TensorType(t.shape, t.dtype))) for t in ins]
            out = self._traced_call(ph if is_multi else ph[0])
        return map_structure(lambda t: tuple(t.shape), out)

    # --- config ---------------------------------------------------------------------------------------
    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable, "dtype": self.dtype}
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = list(self._batch_input_shape)
        if self.activity_regularizer is not None:
            from .. import regularizers
            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


def serialize(layer):
    return serialize_object(layer)


__all__ = ["Layer", "InputSpec", "KerasTensor", "Node", "clear_session", "serialize", "LayerShapeError",
           "unique_name", "to_snake_case"]
