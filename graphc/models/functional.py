"""``Model``: a DAG of layer calls between symbolic inputs and outputs, itself callable like a layer."""
from __future__ import annotations

import os
import warnings
from collections import defaultdict

import numpy as np

from ..ir import GraphBuilder, TensorType, format_shape
from ..layers.base import Layer, run_eagerly, unique_name, weight_sets_changed
from ..layers.input_layer import InputLayer
from ..layers.input_spec import InputSpec
from ..layers.node import KerasTensor, flatten, map_structure, pack_like
from ..serialization import register
from ..tracing import Tensor, tracing
from ..training import Trainer


def map_graph(inputs, outputs):
    """Nodes and layers between ``inputs`` and ``outputs``, ordered by depth as Keras orders them.

    Returns (nodes ordered deepest first, {node: depth}, layers ordered as ``model.layers``).
    Raises ValueError when an output needs a tensor that the inputs do not provide.
    """
    input_ids = {id(t) for t in inputs}
    layer_indices, post_order, finished, in_progress = {}, [], set(), set()

    def visit(tensor):
        node = tensor.node
        if node in finished:
            return
        if node in in_progress:
            raise ValueError(f"The layer graph has a cycle at layer '{node.layer.name}'")
        layer_indices.setdefault(node.layer, len(layer_indices))
        in_progress.add(node)
        if id(tensor) not in input_ids:
            for t in node.input_tensors:
                visit(t)
        in_progress.discard(node)
        finished.add(node)
        post_order.append(node)

    for t in outputs:
        visit(t)

    node_depth, layer_depth = {}, {}
    for node in reversed(post_order):
        depth = max(node_depth.setdefault(node, 0), layer_depth.get(node.layer, 0))
        layer_depth[node.layer] = node_depth[node] = depth
        if not any(id(t) in input_ids for t in node.output_tensors):
            for parent in node.parent_nodes:
                node_depth[parent] = max(depth + 1, node_depth.get(parent, 0))
    for t in inputs:  # inputs no output depends on are still part of the model
        layer = t._history[0]
        if layer not in layer_depth:
            layer_depth[layer], layer_indices[layer] = 0, -1
            node_depth[t.node] = 0

    # Every tensor an op needs must be computable from the inputs.
    available = set(input_ids)
    ordered_nodes = sorted(node_depth, key=lambda n: -node_depth[n])
    for node in ordered_nodes:
        if all(id(t) in available for t in node.output_tensors):
            continue
        if node.is_input:
            reached = [layer.name for layer in layer_indices if not isinstance(layer, InputLayer)]
            raise ValueError(
                f"Graph disconnected: cannot obtain the value of tensor '{node.output_tensors[0].name}' at "
                f"layer '{node.layer.name}': it is not one of the model's inputs "
                f"({[getattr(t, 'name', None) for t in inputs]}). Layers reached from the outputs: {reached}")
        available.update(id(t) for t in node.output_tensors)

    by_depth = defaultdict(list)
    for layer, depth in layer_depth.items():
        by_depth[depth].append(layer)
    layers = [layer for depth in sorted(by_depth, reverse=True)
              for layer in sorted(by_depth[depth], key=lambda lyr: layer_indices[lyr])]
    return ordered_nodes, node_depth, layers


def _check_structure(what, structure):
    for t in flatten(structure):
        if not isinstance(t, KerasTensor):
            raise TypeError(f"Model {what} must be symbolic tensors (from graphc.Input or layer calls), "
                            f"received {type(t).__name__}: {t!r}")


@register("models")
class Model(Trainer, Layer):
    """A functional model: ``Model(inputs, outputs, name=...)``, usable as a layer in other models.

    As in Keras 3, ``Model(inputs, outputs)`` returns a ``Functional`` (a subclass of Model).
    """

    def __new__(cls, *args, **kwargs):
        if cls is Model:
            cls = Functional
        return super().__new__(cls)

    _builds_its_own_graph = False  # (Sequential: it makes its graph from the layers it is given)

    def __init__(self, inputs=None, outputs=None, name=None, trainable=True, **kwargs):
        if (inputs is None or outputs is None) and not self._builds_its_own_graph:
            if type(self) in (Model, Functional):
                raise ValueError("Model(inputs, outputs) needs both inputs and outputs: build them with "
                                 "graphc.Input(shape) and layer calls")
            raise TypeError(f"{type(self).__name__} subclasses Model without passing inputs and outputs to "
                            "Model.__init__: graphc compiles Functional and Sequential models, not subclassed "
                            "models defined by a call() method. Build the layers' graph with graphc.Input and layer "
                            "calls and pass it: super().__init__(inputs=inputs, outputs=outputs)")
        super().__init__(name=name or unique_name(self._default_name()), trainable=trainable, **kwargs)
        self.compiled = False
        if inputs is not None and outputs is not None:
            self._init_graph(inputs, outputs)

    @classmethod
    def _default_name(cls):
        return "functional"

    def _init_graph(self, inputs, outputs):
        if isinstance(inputs, dict):
            inputs = dict(inputs)
        _check_structure("inputs", inputs)
        _check_structure("outputs", outputs)
        self._input_struct = inputs if not isinstance(inputs, tuple) else list(inputs)
        self._output_struct = outputs if not isinstance(outputs, tuple) else list(outputs)
        self._nodes, self._node_depth, self._layers = map_graph(flatten(inputs), flatten(outputs))
        weight_sets_changed()  # the model's weights are now those of these layers
        self._network_nodes = set(self._nodes)
        names = [layer.name for layer in self._layers]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise ValueError(f'The name "{dup}" is used {names.count(dup)} times in the model. '
                             "All layer names should be unique.")
        self.input_spec = [InputSpec(ndim=len(t.shape), axes={i: d for i, d in enumerate(t.shape) if i and d})
                           for t in self.inputs]
        self._graph_cache = {}
        self._programs = {}
        self.__dict__.pop("_fast_input", None)  # _standardize_inputs' check of the inputs made before
        self.built = True

    # --- graph structure ------------------------------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def _layers_for_weights(self):
        return self._layers

    @property
    def inputs(self):
        return flatten(self._input_struct)

    @property
    def outputs(self):
        return flatten(self._output_struct)

    @property
    def input(self):
        return self._input_struct

    @property
    def output(self):
        return self._output_struct

    @property
    def input_names(self):
        return [t._history[0].name for t in self.inputs]

    @property
    def output_names(self):
        return [t._history[0].name for t in self.outputs]

    def get_layer(self, name=None, index=None):
        layers = self.layers  # (a Sequential's leave out its InputLayer, so index 0 is its first layer, as in Keras)
        if index is not None:
            if not -len(layers) <= index < len(layers):
                raise ValueError(f"Model '{self.name}' has {len(layers)} layers; index {index} is out of range")
            return layers[index]
        for layer in self._layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name!r}. Existing layers are: {[l.name for l in layers]}")

    # --- tracing ---------------------------------------------------------------------------------------
    def call(self, inputs, training=None, mask=None):
        """Replay the recorded layer calls on ``inputs`` (Tensors inside a trace); ``mask``: the inputs' masks
        (as a structure like them), which the layers that take masks then see."""
        flat_in = self._flatten_call_inputs(inputs)
        if mask is not None:
            for t, m in zip(flat_in, flatten(mask)):
                if m is not None:
                    t._keras_mask = m
        env = {id(kt): t for kt, t in zip(self.inputs, flat_in)}
        for node in self._nodes:
            if all(id(t) in env for t in node.output_tensors):
                continue
            args = map_structure(lambda kt: env[id(kt)], node.call_args)
            extra = node.call_kwargs.get("extra_args", [])
            kwargs = {k: v for k, v in node.call_kwargs.items() if k not in ("extra_args", "training")}
            out = node.layer._traced_call(args, *extra, training=training, **kwargs)
            for kt, t in zip(node.output_tensors, flatten(out)):
                env[id(kt)] = t
        return map_structure(lambda kt: env[id(kt)], self._output_struct)

    def _check_input_spec(self, inputs):
        if not self.built:
            return
        for i, (spec, t) in enumerate(zip(self.input_spec or [], self._flatten_call_inputs(inputs))):
            spec.check(self, i, tuple(t.shape))

    def _flatten_call_inputs(self, inputs):
        if isinstance(self._input_struct, dict) or isinstance(inputs, dict):
            if not isinstance(inputs, dict):
                flat = flatten(inputs)
            else:
                names = [t._history[0].name for t in self.inputs]
                missing = [n for n in names if n not in inputs]
                if missing:
                    raise ValueError(f"Model '{self.name}': missing input(s) {missing}; received keys "
                                     f"{sorted(inputs)}, expected {names}")
                flat = [inputs[n] for n in names]
        else:
            flat = flatten(inputs)
        if len(flat) != len(self.inputs):
            raise ValueError(f"Model '{self.name}' expects {len(self.inputs)} input(s), received {len(flat)}")
        return flat

    def build_graph(self, training=False):
        """The model as one IR graph (batch axis symbolic); weights are its parameters."""
        key = bool(training)
        if key not in self._graph_cache:
            builder = GraphBuilder()
            with tracing(builder):
                ins = [Tensor(builder.input(t._history[0].name, TensorType(t.shape, t.dtype))) for t in self.inputs]
                out = self.call(pack_like(self._input_struct, ins) if not isinstance(self._input_struct, dict)
                                else dict(zip(self.input_names, ins)), training=training)
                self._graph_cache[key] = builder.finish([t.value for t in flatten(out)])
        return self._graph_cache[key]

    # --- running (NumPy reference for now) ---------------------------------------------------------------
    def _standardize_inputs(self, x):
        """Arrays in the order of ``self.inputs``, checked against the input shapes."""
        if type(x) is np.ndarray:  # the common call (one array, of the input's dtype, laid out for C): fast
            fast = self.__dict__.get("_fast_input")
            if fast is None:
                t = self.inputs[0]
                fast = self._fast_input = ((np.dtype(t.dtype), len(t.shape), tuple(t.shape[1:]))
                                           if len(self.inputs) == 1 and t.shape and t.shape[0] is None
                                           and None not in t.shape[1:] else ())
            if fast and x.dtype == fast[0] and x.ndim == fast[1] and x.shape[1:] == fast[2] and x.flags.c_contiguous:
                return [x]
        names = self.input_names
        if isinstance(x, dict):
            missing = [n for n in names if n not in x]
            if missing:
                raise ValueError(f"Model '{self.name}': missing data for input(s) {missing}. "
                                 f"Received keys {sorted(x)}; expected keys {names}")
            unknown = sorted(set(x) - set(names), key=str)
            if unknown:  # (Keras takes the inputs it knows and warns)
                warnings.warn(f"Model '{self.name}': ignoring data for unknown input key(s) {unknown}; its inputs "
                              f"are {names}", stacklevel=3)
            arrays = [x[n] for n in names]
        elif isinstance(x, (list, tuple)):
            arrays = list(x)
        else:
            arrays = [x]
        if len(arrays) != len(names):
            raise ValueError(f"Model '{self.name}' expects {len(names)} input(s) {names}, "
                             f"but received {len(arrays)} array(s)")
        out = []
        for i, (a, t) in enumerate(zip(arrays, self.inputs)):
            a = np.asarray(a)
            if a.dtype == object:
                raise TypeError(f"Model '{self.name}': input '{names[i]}' could not be converted to a numeric array")
            if a.ndim != len(t.shape) or any(d is not None and d != s for d, s in zip(t.shape, a.shape)):
                raise ValueError(f"Input {i} ('{names[i]}') of model '{self.name}' is incompatible: "
                                 f"expected shape={format_shape(t.shape)}, found shape={format_shape(a.shape)}")
            out.append(np.ascontiguousarray(a, dtype=t.dtype))
        sizes = {a.shape[0] for a in out}
        if len(sizes) > 1:
            raise ValueError(f"Model '{self.name}': all inputs must have the same number of samples, "
                             f"received {[a.shape[0] for a in out]}")
        return out

    def _inference_graph(self, arrays):
        """The inference graph for these inputs' shapes, and its key among the compiled programs (None: the
        graph has no variable-length input, one program serves every call)."""
        from ..passes import needs_specialization, specialize
        graph = self.build_graph(False)
        key = tuple(a.shape[1:] for a in arrays) if needs_specialization(graph) else None
        return key, specialize(graph, key) if key else graph

    def _compiled(self, arrays):
        """The compiled C program for these inputs' shapes, or None where some op has no C lowering yet
        (the model then runs on the NumPy reference, with a warning naming the ops)."""
        cache = self.__dict__.setdefault("_programs", {})
        if None in cache:  # no variable-length input: one program for every call
            return cache[None]
        from .. import runtime
        from ..codegen import CodegenError
        key, graph = self._inference_graph(arrays)
        if key not in cache:
            try:
                cache[key] = runtime.compile_graph(graph, title=f"model {self.name}")
            except CodegenError as e:
                warnings.warn(f"Model '{self.name}' runs on the NumPy reference executor: {e}", stacklevel=4)
                cache[key] = None
        return cache[key]

    def memory_report(self, batch_size=1, input_shapes=None, training=False):
        """Arena bytes of the compiled model for ``batch_size`` against the peak bytes of intermediates
        alive at once (the arena can't be smaller) and the sum of all intermediates (no reuse).
        ``input_shapes`` (per sample, without the batch axis) fix variable-length inputs. With
        ``training=True`` (after compile()), the figures are those of one training step: forward, loss,
        backward and optimizer update, activations kept for the backward pass included."""
        shapes = input_shapes or [t.shape[1:] for t in self.inputs]
        samples = [np.zeros((1,) + tuple(s), t.dtype) for s, t in zip(shapes, self.inputs)]
        program = self._training_program(samples) if training else self._compiled(samples)
        if program is None:
            raise ValueError(f"Model '{self.name}' does not compile to C yet (see the warning above)")
        return program.memory_report(batch_size)

    def profile(self, x, y=None, training=False, runs=20, warmup=3):
        """Time each op of the compiled model on the batch ``x``: ``warmup`` calls, then ``runs`` timed ones,
        through a twin of the model's C program with a timer around each op's statements. With
        ``training=True`` (after compile(); targets ``y`` required), the training step instead: forward, loss,
        backward and optimizer update, run on copies of the weights and the optimizer's state, so the model
        is left as it was. Returns a graphc.runtime.Profile; print it for a table (ms per call and share per
        op, layer names and shapes included)."""
        from .. import runtime
        from ..codegen import CodegenError
        from ..runtime.profile import run_profile
        try:
            if training:
                program, call, batch = self._profiled_step(x, y)
            else:
                arrays = self._standardize_inputs(x)
                program = runtime.compile_graph(self._inference_graph(arrays)[1],
                                                title=f"model {self.name} (profiled)", profile=True)
                call, batch = (lambda: program.run(arrays)), len(arrays[0])
        except CodegenError as e:
            raise ValueError(f"Model '{self.name}' does not compile to C, so it cannot be profiled: {e}") from None
        title = f"{'train step of ' if training else ''}model '{self.name}'"
        return run_profile(program, call, title, batch, runs, warmup)

    def _run(self, arrays, training=False):
        if not training and os.environ.get("GRAPHC_BACKEND", "c") != "reference":
            program = self._compiled(arrays)
            if program is not None:
                out = program.run_one(arrays[0]) if len(arrays) == 1 else None  # (None: not the short call)
                return [out] if out is not None else program.run(arrays)  # (the weights' own arrays, in place)
        graph = self.build_graph(training)
        return run_eagerly(graph, {v.id: a for v, a in zip([v for v in graph.inputs if v is not graph.rng_counter],
                                                             arrays)})

    def _eager_call(self, inputs, extra, kwargs):
        arrays = self._standardize_inputs(inputs)
        return pack_like(self._output_struct, self._run(arrays, training=bool(kwargs.get("training"))))

    def predict_on_batch(self, x):
        program = self.__dict__.get("_programs", {}).get(None)
        if program is not None and os.environ.get("GRAPHC_BACKEND", "c") != "reference":  # the call, in short
            out = program.run_one(x)
            if out is not None:
                return out if self._single_output else pack_like(self._output_struct, [out])
        outs = self._run(self._standardize_inputs(x))
        return outs[0] if self._single_output else pack_like(self._output_struct, outs)

    @property
    def _single_output(self):
        """Whether the model's output structure is one tensor (not a list or dict of them)."""
        single = self.__dict__.get("_single_output_flag")
        if single is None:
            single = self._single_output_flag = not isinstance(self._output_struct, (list, tuple, dict))
        return single

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """The outputs for ``x``, in batches of ``batch_size`` (32), the first ``steps`` batches only if given;
        ``callbacks`` get the predict hooks (``on_predict_batch_end`` logs ``{"outputs": ...}``), and
        ``verbose`` 1 ("auto") shows a progress bar, as in Keras."""
        from ..callbacks import CallbackList
        arrays = self._standardize_inputs(x)
        batch_size = 32 if batch_size is None else int(batch_size)
        if batch_size <= 0:
            raise ValueError(f"predict: batch_size must be positive, received {batch_size}")
        n = arrays[0].shape[0] if arrays and arrays[0].ndim else 0
        if steps is not None:
            if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
                raise ValueError(f"predict: steps must be a positive int (batches to predict), received {steps!r}")
            n = min(n, int(steps) * batch_size)
        verbose = 1 if verbose == "auto" else int(verbose)
        cbs = CallbackList(callbacks, add_progbar=verbose != 0, model=self, verbose=verbose, epochs=1,
                           steps=max(1, -(-n // batch_size)))
        cbs.on_predict_begin()
        chunks = []
        for step, i in enumerate(range(0, n, batch_size)):
            cbs.on_predict_batch_begin(step)
            chunks.append(self._run([a[i:i + batch_size] for a in arrays]))
            cbs.on_predict_batch_end(step, {"outputs": pack_like(self._output_struct, chunks[-1])})
        if not chunks:
            chunks = [self._run(arrays)]
        cbs.on_predict_end()
        outs = [np.concatenate([c[k] for c in chunks]) for k in range(len(self.outputs))]
        return pack_like(self._output_struct, outs)

    # --- inspection ----------------------------------------------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False, show_trainable=False):
        from .summary import print_summary
        print_summary(self, line_length=line_length, positions=positions, print_fn=print_fn)

    def save(self, filepath, overwrite=True):
        from .saving import save_model
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        from .saving import save_weights
        save_weights(self, filepath, overwrite=overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        from .saving import load_weights
        if skip_mismatch:
            raise ValueError("load_weights(skip_mismatch=True) is not supported: graphc loads all weights or none")
        load_weights(self, filepath)

    def to_json(self, **kwargs):
        from .saving import model_to_json
        return model_to_json(self, **kwargs)

    def get_config(self):
        from .config import functional_config
        return functional_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        from .config import functional_from_config
        return functional_from_config(config, custom_objects, cls)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name}, built={self.built}>"


@register("models")
class Functional(Model):
    """What ``Model(inputs, outputs)`` builds (the name Keras 3 shows in summaries and configs)."""
