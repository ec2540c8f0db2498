"""Backprop through time of simple_rnn, lstm and gru (graphc/ir/ops/rnn_grad.py, kernels/rnn_grad.c).

Every variant is checked against central finite differences of the float64 reference; a few individually
and all of them in one graph go through the compiled C kernels (float32) against the reference.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import runtime
from graphc.runtime import threads as threads_module
from graphc.autodiff import gradients
from graphc.codegen import CodegenError
from graphc.ir import OPS, GraphBuilder, TensorType, reference
from graphc.ir.ops.rnn import C_ACTIVATIONS
from graphc.ir.ops.rnn_grad import C_SCRATCH_FLOATS, scratch_floats
from graphc.layers import GRU, LSTM, SimpleRNN
from graphc.tracing import Tensor, emit, to_value, tracing
from grad_check import _grad_graph, _output_shapes, check_gradients

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
SMOOTH = ["tanh", "sigmoid", "softsign", "softplus", "silu", "gelu", "elu", "exp", "identity"]
KINKED = ["relu", "relu6", "hard_sigmoid", "leaky_relu", "selu"]  # bends at 0 (or -3, 3, 6)


def arrays_for(kind, rng, n=3, t=5, f=2, units=3, use_bias=True, reset_after=True, states=False, scale=0.6):
    """x, kernel, recurrent_kernel, [bias], [initial states], with weights small enough that no gate
    saturates and pre-activations rarely sit near a kink."""
    k = GATES[kind]
    arrays = [rng.uniform(-1, 1, (n, t, f)), rng.uniform(-scale, scale, (f, k * units)),
              rng.uniform(-scale, scale, (units, k * units))]
    if use_bias:
        arrays.append(rng.uniform(-0.5, 0.5, (2, 3 * units) if kind == "gru" and reset_after else (k * units,)))
    if states:
        arrays += [rng.uniform(-1, 1, (n, units)) for _ in range(STATES[kind])]
    return arrays


def op_fn(kind, units=3, train=True, outputs=None, **attrs):
    """The op on traced inputs; by default all of <kind>'s outputs (so every output gradient is used)."""
    n = 1 + STATES[kind]

    def fn(*xs):
        outs = emit(f"{kind}_train" if train else kind, *xs, units=units, **attrs)[:n]
        return [outs[i] for i in (outputs or range(n))]
    return fn


def batched_flags(arrays, use_bias=True):
    fixed = 3 + use_bias
    return [i == 0 or i >= fixed for i in range(len(arrays))]


CASES = [  # (kind, attrs, n, t, states)
    ("simple_rnn", {}, 3, 5, False),
    ("simple_rnn", dict(return_sequences=True, go_backwards=True), 1, 5, True),
    ("simple_rnn", dict(return_sequences=True, use_bias=False), 3, 1, False),
    ("lstm", {}, 3, 5, False),
    ("lstm", dict(return_sequences=True), 3, 5, True),
    ("lstm", dict(go_backwards=True), 1, 5, True),
    ("lstm", dict(return_sequences=True, go_backwards=True, use_bias=False), 3, 1, False),
    ("gru", dict(reset_after=True), 3, 5, False),
    ("gru", dict(reset_after=False), 3, 5, True),
    ("gru", dict(reset_after=True, return_sequences=True, go_backwards=True), 1, 5, True),
    ("gru", dict(reset_after=False, return_sequences=True, go_backwards=True), 3, 5, False),
    ("gru", dict(reset_after=True, use_bias=False), 3, 1, True),
    ("gru", dict(reset_after=False, use_bias=False, return_sequences=True), 1, 1, False),
]


def _id(case):
    kind, attrs, n, t, states = case
    return "-".join([kind, *(k for k, v in attrs.items() if v is True), f"n{n}", f"t{t}"] + (["h0"] if states else []))


@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_training_op_gradients(case, rng):
    kind, attrs, n, t, states = case
    use_bias = attrs.get("use_bias", True)
    arrays = arrays_for(kind, rng, n=n, t=t, use_bias=use_bias, reset_after=attrs.get("reset_after", True),
                        states=states)
    check_gradients(op_fn(kind, **attrs), arrays, batched=batched_flags(arrays, use_bias), check_c=False)


@pytest.mark.parametrize("kind", list(GATES))
def test_inference_op_reruns_the_recurrence(kind, rng):
    """The plain op's rule (a graph traced with training=False) recomputes the saved tensors; only the
    sequence is used, so the state gradients start from zero."""
    attrs = dict(return_sequences=True, go_backwards=True) | (dict(reset_after=False) if kind == "gru" else {})
    arrays = arrays_for(kind, rng, states=True, reset_after=False)
    check_gradients(op_fn(kind, train=False, outputs=[0], **attrs), arrays, batched=batched_flags(arrays))


@pytest.mark.parametrize("act", SMOOTH + KINKED)
def test_every_activation(act, rng):
    """Each activation as a SimpleRNN's activation, an LSTM's recurrent_activation and a GRU's
    activation (pre-activations of kinked ones are kept away from their kinks by the small weights)."""
    arrays = arrays_for("simple_rnn", rng, n=2, t=3, units=2)
    check_gradients(op_fn("simple_rnn", units=2, return_sequences=True, activation=act), arrays, check_c=False)
    arrays = arrays_for("lstm", rng, n=2, t=3, units=2)
    check_gradients(op_fn("lstm", units=2, recurrent_activation=act), arrays, check_c=False)
    arrays = arrays_for("gru", rng, n=2, t=3, units=2)
    check_gradients(op_fn("gru", units=2, activation=act, recurrent_activation="hard_sigmoid"), arrays,
                    check_c=False)


@pytest.mark.parametrize("kind,attrs", [("lstm", dict(return_sequences=True, go_backwards=True)),
                                        ("gru", dict(reset_after=True)),
                                        ("gru", dict(reset_after=False, return_sequences=True))])
def test_compiled_gradients_with_states(kind, attrs, rng):
    arrays = arrays_for(kind, rng, states=True, reset_after=attrs.get("reset_after", True))
    check_gradients(op_fn(kind, **attrs), arrays, batched=batched_flags(arrays))


def _compiled_vs_reference(fn, arrays, batched, batches, rtol=1e-4, atol=2e-5):
    """The float32 gradient graph compiled to C against the float32 reference, at several batch sizes."""
    x32 = [a.astype(np.float32) for a in arrays]
    graph = _grad_graph(fn, x32, "float32", batched, list(range(len(arrays))))
    program = runtime.compile_graph(graph, title="rnn gradients")
    assert "graphc_rnn_grad(" in program.generated.source and "malloc" not in program.generated.source
    rng = np.random.default_rng(1)
    for n in batches:
        xs = [np.ascontiguousarray(np.resize(a, (n,) + a.shape[1:]) if b else a) for a, b in zip(x32, batched)]
        rs = [rng.standard_normal((n,) + s[1:]).astype(np.float32) for s in _output_shapes(fn, xs)]
        want = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, xs + rs)}, {})
        assert all(np.isfinite(w).all() for w in want)
        got = program.run(xs + rs, [])
        for k, (g, w) in enumerate(zip(got, want)):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {k} at batch {n}")


def test_all_variants_compiled_in_one_graph(rng):
    """Every case above and every activation in one compiled graph (one C build), at batch 1 and 3."""
    acts = list(C_ACTIVATIONS)
    pairs = [(a, acts[(i + len(acts) // 2) % len(acts)]) for i, a in enumerate(acts)]  # exp never twice
    variants = [(kind, attrs, states) for kind, attrs, _, _, states in CASES]
    variants += [("lstm", dict(activation=a, recurrent_activation=b), False) for a, b in pairs]
    variants += [("gru", dict(activation=a, recurrent_activation=b, reset_after=i % 2 == 0), False)
                 for i, (a, b) in enumerate(pairs[:len(acts) // 2])]
    x = rng.uniform(-1, 1, (3, 5, 2))
    arrays, batched, spans = [x], [True], []
    for kind, attrs, states in variants:
        mine = arrays_for(kind, rng, use_bias=attrs.get("use_bias", True),
                          reset_after=attrs.get("reset_after", True), states=states, scale=0.3)[1:]
        spans.append((kind, attrs, len(arrays), len(arrays) + len(mine)))
        batched += batched_flags([x] + mine, attrs.get("use_bias", True))[1:]
        arrays += mine

    def fn(*xs):
        outs = []
        for kind, attrs, lo, hi in spans:
            outs += op_fn(kind, **attrs)(xs[0], *xs[lo:hi])
        return outs
    _compiled_vs_reference(fn, arrays, batched, batches=(1, 3))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_many_samples_in_blocks_and_threads(kind, rng):
    """700 units leave room in the kernels' scratch for 23 (LSTM) or 26 (GRU) samples at a time, so 60
    samples run as several blocks on each thread; weights scaled as Keras initializes them."""
    units, n = 700, 60
    assert C_SCRATCH_FLOATS // scratch_floats(kind, units) < n // 2
    arrays = arrays_for(kind, rng, n=n, t=3, f=4, units=units, states=True, scale=1 / np.sqrt(units))
    fn = op_fn(kind, units=units, return_sequences=True, go_backwards=True)
    _compiled_vs_reference(fn, arrays, batched_flags(arrays), batches=(n,), rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_weight_gradients_of_a_team(kind, use_bias, rng):
    """Large enough for the kernel's team of threads (each its own samples, then its share of the weight
    gradients' columns, the bias's summed over the team): 30 features + 96 units make dkernel and drecurrent
    one product over [x | h_prev] (not for a GRU), whose panels of rows straddle x's and h_prev's columns."""
    n, t, f, units = 33, 12, 30, 96
    arrays = arrays_for(kind, rng, n=n, t=t, f=f, units=units, use_bias=use_bias, scale=1 / np.sqrt(units))
    fn = op_fn(kind, units=units, return_sequences=True, go_backwards=True, use_bias=use_bias)
    _compiled_vs_reference(fn, arrays, batched_flags(arrays, use_bias), batches=(n,), rtol=2e-4, atol=1e-4)


@pytest.mark.parametrize("threads", [2, 3])
def test_joint_weight_gradients_of_a_team_in_column_blocks(threads, rng):
    """A team splits the joint product's rows: each thread its own samples' rows into its buffer, then its share
    of the columns summed over the team's buffers, for each block of 512 gate columns (an LSTM(160) has 640).
    11 samples: 5 and 6 on two threads, 3, 4 and 4 on three."""
    arrays = arrays_for("lstm", rng, n=11, t=4, f=8, units=160, scale=1 / np.sqrt(160))
    graphc.set_num_threads(threads)
    try:
        _compiled_vs_reference(op_fn("lstm", units=160, return_sequences=True), arrays, batched_flags(arrays),
                               batches=(11,), rtol=2e-4, atol=1e-4)
    finally:
        graphc.set_num_threads(threads_module.default_num_threads())


def test_joint_weight_gradients_in_column_blocks(rng):
    """An LSTM(160) takes 640 gate columns, more than one block of the joint product's columns (512), here
    on one thread (a small call)."""
    arrays = arrays_for("lstm", rng, n=2, t=3, f=4, units=160, scale=1 / np.sqrt(160))
    _compiled_vs_reference(op_fn("lstm", units=160), arrays, batched_flags(arrays), batches=(2,), rtol=2e-4,
                           atol=1e-4)


def test_training_forward_matches_the_inference_op(rng):
    """<kind>_train returns <kind>'s outputs (reference and C), and its saved tensors agree in C."""
    for kind, attrs, n, t, states in CASES:
        arrays = [a.astype(np.float32) for a in arrays_for(
            kind, rng, n=n, t=t, use_bias=attrs.get("use_bias", True), reset_after=attrs.get("reset_after", True),
            states=states)]
        attrs = dict(units=3, **attrs)
        want = OPS[kind].reference(*arrays, **attrs)
        got = OPS[f"{kind}_train"].reference(*arrays, **attrs)
        assert len(got) == len(want) + {"simple_rnn": 2, "lstm": 3, "gru": 3}[kind]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)


def test_saved_tensors_compiled(rng):
    """The C training forward writes the same saved tensors as the reference."""
    b = GraphBuilder()
    outs = []
    x = b.input("x", TensorType((None, 6, 2)))
    h0 = b.input("h0", TensorType((None, 4)))
    for kind, attrs in [("lstm", dict(go_backwards=True)), ("gru", dict(reset_after=True)),
                        ("gru", dict(reset_after=False, return_sequences=True)), ("simple_rnn", {})]:
        ws = [b.constant(a.astype(np.float32))
              for a in arrays_for(kind, rng, units=4, reset_after=attrs.get("reset_after", True))[1:]]
        states = [h0] * STATES[kind]
        outs += list(b.emit(f"{kind}_train", [x, *ws, *states], units=4, **attrs))
    graph = b.finish(outs)
    program = runtime.compile_graph(graph)
    xs = [rng.uniform(-1, 1, (3, 6, 2)).astype(np.float32), rng.uniform(-1, 1, (3, 4)).astype(np.float32)]
    want = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, xs)}, {})
    for k, (g, w) in enumerate(zip(program.run(xs, []), want)):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5, err_msg=f"output {k}")


@pytest.mark.parametrize("layer_cls", [SimpleRNN, LSTM, GRU])
def test_layer_training_call(layer_cls, rng):
    """training=True emits the training op, returns the same results and gives the same weight gradients
    as the inference op's rule; the training graph also runs compiled."""
    layer = layer_cls(3, return_sequences=True, return_state=True, go_backwards=True)
    layer.build((None, 4, 2))
    x = rng.uniform(-1, 1, (2, 4, 2)).astype(np.float32)
    rs = [rng.standard_normal(s).astype(np.float32) for s in [(2, 4, 3)] + [(2, 3)] * STATES[layer.op_kind]]

    def graph_for(training):
        b = GraphBuilder()
        with tracing(b):
            xt = Tensor(b.input("x", TensorType((None, 4, 2))))
            outs = layer(xt, training=training)
            loss = None
            for o, r in zip(outs, rs):
                term = emit("reduce_sum", o * Tensor(b.constant(r)), axes=tuple(range(len(o.shape))), keepdims=False)
                loss = term if loss is None else loss + term
            params = [Tensor(to_value(w)) for w in layer.weights]
            grads = gradients(loss, params + [xt])
            graph = b.finish([loss.value] + [g.value for g in grads] + [o.value for o in outs])
        return graph

    results = {}
    for training in (True, False):
        graph = graph_for(training)
        kinds = {op.kind for op in graph.ops}
        assert (f"{layer.op_kind}_train" in kinds) and ((layer.op_kind in kinds) != training), kinds
        params = {v.id: graph.param_keys[v.id].value for v in graph.params}
        results[training] = reference.run(graph, {graph.inputs[0].id: x}, params)
        if training:
            program = runtime.compile_graph(graph)
            got = program.run([x], [w.value for w in program.param_keys])
            for g, w in zip(got, results[True]):
                np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    for a, b in zip(results[True], results[False]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    eager = layer(x, training=True)
    for a, b in zip(eager, layer(x)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_saved_outputs_are_not_differentiable(rng):
    arrays = arrays_for("lstm", rng)
    with pytest.raises(ValueError, match="saves for the backward pass are not differentiable"):
        check_gradients(lambda *xs: emit("lstm_train", *xs, units=3)[4], arrays, check_c=False)


def test_scratch_limit_matches_the_header_and_is_reported():
    header = (Path(__file__).resolve().parent.parent / "kernels" / "graphc_rnn_grad.h").read_text()
    assert int(re.search(r"#define GRAPHC_RNN_GRAD_SCRATCH_FLOATS (\d+)", header).group(1)) == C_SCRATCH_FLOATS
    units = C_SCRATCH_FLOATS // 8 + 1
    assert scratch_floats("lstm", units) > C_SCRATCH_FLOATS
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 2, 1)))
    ws = [b.input("k", TensorType((1, 4 * units))), b.input("r", TensorType((units, 4 * units)))]
    graph = b.finish([b.emit("lstm_train", [x, *ws], units=units, use_bias=False)[0]])
    with pytest.raises(CodegenError, match="floats of scratch per sample"):
        runtime.compile_graph(graph)
