"""The training and evaluation steps of a compiled model: each one IR graph, compiled to one C function.

A train step's graph takes the model inputs, one target and one sample-weight vector per output, the
optimizer's scalars for this step (learning rate, bias corrections) and the random counter (Dropout);
its parameters are the weights and the optimizer's slots. It returns the total loss, each output's loss,
each metric's (weighted total, count), and the new value of every variable the step changes. Those
outputs are written straight into the variables' storage when the step ends: the generated C copies
outputs after every other statement, so each op still reads the old values.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field

from ..autodiff import gradients
from ..ir import GraphBuilder, TensorType, reference
from ..layers.node import flatten, pack_like
from ..tracing import Tensor, to_value, tracing
from ..variables import weights_changed, weights_version


@dataclass
class StepGraph:
    graph: object
    feeds: list                 # per graph input: ("x", i) | ("y", k) | ("sw", k) | ("hyper", name) | ("rng",)
    n_losses: int               # outputs 0..n_losses-1: total loss, then per-output losses (if several outputs)
    metric_slots: list          # (output index k, metric) per (total, count) pair of outputs that follow
    updated: list = field(default_factory=list)   # Variables whose new values are the last outputs
    program: object = None
    _targets: tuple = None      # see targets

    def output_aliases(self) -> dict:
        """{output index: Variable} for the outputs that are the updated variables' new values, which the step
        writes in place: the caller passes each variable's storage as that output."""
        n_scalars = len(self.graph.outputs) - len(self.updated)
        return {n_scalars + u: var for u, var in enumerate(self.updated)}

    def targets(self) -> tuple:
        """Per output the array ``program`` writes into: None for the scalars, then the updated variables'
        storage. Made once, as a tuple (which the program recognizes without comparing it again): a
        Variable's arrays never move (its value is written in place)."""
        if self._targets is None:
            n_scalars = len(self.graph.outputs) - len(self.updated)
            self._targets = (None,) * n_scalars + tuple(v.storage for v in self.updated)
        return self._targets


def build_step(model, spec, train: bool, input_shapes, target_shapes, weighted) -> StepGraph:
    """Trace ``model`` with its losses and metrics (``spec``: the compiled configuration) into one graph;
    with ``train``, add the backward pass and the optimizer's update. ``weighted[k]``: None, or the shape
    past the batch axis of the sample weights output k's loss takes (() per sample; (steps,) per timestep)."""
    b = GraphBuilder()
    feeds = []
    with tracing(b):
        ins = []
        for i, t in enumerate(model.inputs):
            shape = (None,) + tuple(input_shapes[i][1:])  # variable-length axes take this batch's sizes
            ins.append(Tensor(b.input(t._history[0].name, TensorType(shape, t.dtype))))
            feeds.append(("x", i))
        struct = model._input_struct
        call_in = dict(zip(model.input_names, ins)) if isinstance(struct, dict) else pack_like(struct, ins)
        outs = flatten(model.call(call_in, training=train))
        bn_updates = list(b.updates)

        total, per_output, metric_slots, sums = None, [], [], []
        for k, out in enumerate(outs):
            loss = spec.losses[k]
            if loss is None:
                continue
            name = spec.output_names[k]
            y = Tensor(b.input(f"target_{name}", TensorType((None,) + tuple(target_shapes[k][1:]), loss.target_dtype)))
            feeds.append(("y", k))
            sw = None
            if weighted[k] is not None:  # without sample or class weights Keras's loss sees none (sequence outputs
                # differ); per-timestep weights ((samples, steps) for a sequence output) weigh each loss value
                sw = Tensor(b.input(f"sample_weight_{name}", TensorType((None,) + tuple(weighted[k]), "float32")))
                feeds.append(("sw", k))
            value = loss(y, out, sample_weight=sw)
            per_output.append(value)
            term = value * spec.loss_weights[k] if spec.loss_weights[k] != 1 else value
            total = term if total is None else total + term
            for metric in spec.metrics[k]:  # Keras weighs plain metrics equally (only weighted_metrics use sw)
                metric_slots.append((k, metric))
                sums.extend(metric.graph_sums(y, out, None))
        if total is None:
            raise ValueError(f"Model '{model.name}': no output has a loss; give compile() a loss")
        for added in b.added_losses:  # the layers' add_loss (and activity regularizers), as Keras adds model.losses
            total = total + added
        for v in model.trainable_weights:  # the regularizers' penalties, in the loss as Keras adds model.losses
            if v.regularizer is not None:
                total = total + v.regularizer(Tensor(to_value(v)))

        updated, new_values = [], []
        if train:
            variables = model.trainable_weights
            wide = [f"{v.path} ({v.dtype})" for v in variables if v.dtype != "float32"]
            if wide:  # (the optimizers' updates are float32 graphs; Keras would cast its rates instead)
                raise TypeError(f"Model '{model.name}': graphc trains float32 weights only; received {wide}. "
                                "Build the layers with dtype='float32' (the default) to train them")
            grads = gradients(total, [to_value(v) for v in variables])
            missing = [v.path for v, g in zip(variables, grads) if g is None]
            if missing:
                warnings.warn(f"Model '{model.name}': gradients do not exist for {missing} (the loss does not "
                              "depend on them); they are left unchanged", stacklevel=4)
            pairs = [(v, g) for v, g in zip(variables, grads) if g is not None]
            opt = spec.optimizer
            opt.build(variables)  # slots for every trainable variable, once (as Keras builds)
            slot_of = {id(v): s for v, s in zip(opt._trainable_variables, opt.slots)}
            unknown = [v.path for v, _ in pairs if id(v) not in slot_of]
            if unknown:
                raise ValueError(f"Model '{model.name}': weights {unknown} became trainable after the optimizer "
                                 "was built; compile() again with a new optimizer to train them")
            hyper = {}
            for name in sorted(opt.hyperparameters()):
                hyper[name] = Tensor(b.input(f"hyper_{name}", TensorType((), "float32")))
                feeds.append(("hyper", name))
            slots = [slot_of[id(v)] for v, _ in pairs]
            new_params, new_slots = opt.update([Tensor(to_value(v)) for v, _ in pairs], [g for _, g in pairs],
                                               slots, hyper)
            for (v, _), p in zip(pairs, new_params):
                updated.append(v), new_values.append(p)
            for old, new in zip(slots, new_slots):
                for s, n in zip(old, new):
                    updated.append(s), new_values.append(n)
            for var, value in bn_updates:
                updated.append(var), new_values.append(Tensor(value))
        if b.rng_counter is not None:
            feeds.insert([v.id for v in b.inputs].index(b.rng_counter.id), ("rng",))
        losses = [total] + (per_output if len(per_output) > 1 else [])
        graph = b.finish([to_value(t) for t in losses + sums + new_values])
    return StepGraph(graph, feeds, len(losses), metric_slots, updated)


def run_step(step: StepGraph, model, arrays: list, title: str):
    """Run one step on ``arrays`` (its inputs, in the order of ``step.feeds``): compiled C when every op lowers
    (else the NumPy reference, with a warning once), then write the updated variables. Returns the scalar
    outputs (losses, metric sums) as floats."""
    n_scalars = len(step.graph.outputs) - len(step.updated)
    if step.program is None and os.environ.get("GRAPHC_BACKEND", "c") != "reference":
        from .. import runtime
        from ..codegen import CodegenError
        try:
            step.program = runtime.compile_graph(step.graph, title=title, output_aliases=step.output_aliases())
        except CodegenError as e:
            warnings.warn(f"Model '{model.name}': the {title} runs on the NumPy reference executor: {e}",
                          stacklevel=3)
            step.program = False
    if step.program:
        targets = step.targets()
        before = weights_version()
        try:  # (params None: the weights' own arrays, with the prepared copies the step keeps current)
            results = step.program.run(arrays, None, outputs=targets)
        finally:  # (written in place, even by a step that then failed)
            weights_changed(step.updated)
        step.program.keep_prepared(before)
    else:
        g = step.graph
        results = reference.run(g, {v.id: a for v, a in zip(g.inputs, arrays)},
                                {v.id: g.param_keys[v.id].value for v in g.params})
        for var, new in zip(step.updated, results[n_scalars:]):
            var.storage[...] = new
        weights_changed(step.updated)
    return [float(r) for r in results[:n_scalars]]
