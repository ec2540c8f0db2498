"""Gradients of a model's outputs, for users and tests: what tf.GradientTape gives a Keras user."""
from __future__ import annotations

import os

from ..autodiff import gradients
from ..ir import GraphBuilder, TensorType, reference
from ..layers.node import flatten, pack_like
from ..tracing import Tensor, to_value, tracing


def model_gradients(model, inputs, output_grads, training=False):
    """Vector-Jacobian product: for L = sum_k sum(output_k * output_grads[k]), returns
    (dL/dw for each of ``model.trainable_weights``, dL/dx for each floating-point input, None for others).
    Runs the compiled C of the joint forward-backward graph (the NumPy reference with GRAPHC_BACKEND=reference)."""
    arrays = model._standardize_inputs(inputs)
    cotangents = [output_grads] if not isinstance(output_grads, (list, tuple)) else list(output_grads)
    b = GraphBuilder()
    with tracing(b):
        ins = [Tensor(b.input(f"x{i}", TensorType((None,) + a.shape[1:], a.dtype))) for i, a in enumerate(arrays)]
        struct = model._input_struct
        outs = flatten(model.call(dict(zip(model.input_names, ins)) if isinstance(struct, dict)
                                  else pack_like(struct, ins), training=training))
        if len(outs) != len(cotangents):
            raise ValueError(f"Model '{model.name}' has {len(outs)} outputs; received {len(cotangents)} output gradients")
        loss = None
        for k, o in enumerate(outs):
            r = Tensor(b.input(f"r{k}", TensorType(o.shape, o.dtype)))
            term = Tensor(b.emit("reduce_sum", [(o * r).value], axes=tuple(range(len(o.shape))), keepdims=False))
            loss = term if loss is None else loss + term
        weights = model.trainable_weights
        float_in = [t for t in ins if t.dtype.startswith("float")]
        grads = gradients(loss, [to_value(w) for w in weights] + float_in)
        zero = lambda v: Tensor(v) * 0.0  # noqa: E731  (a weight the outputs do not depend on)
        values = [(g if g is not None else zero(to_value(w))).value for g, w in zip(grads, weights + float_in)]
        graph = b.finish(values)
    feeds = list(arrays) + [c.astype("float32") for c in cotangents]
    if os.environ.get("GRAPHC_BACKEND", "c") == "reference":
        results = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, feeds)},
                                {v.id: graph.param_keys[v.id].value for v in graph.params})
    else:
        from .. import runtime
        program = runtime.compile_graph(graph, title=f"gradients of model {model.name}")
        results = program.run(feeds, [w.value for w in program.param_keys])
    w_grads = results[:len(weights)]
    x_iter = iter(results[len(weights):])
    x_grads = [next(x_iter) if t.dtype.startswith("float") else None for t in ins]
    return w_grads, x_grads
