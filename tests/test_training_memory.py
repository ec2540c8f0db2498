"""Memory of a training step: recomputed activations, new weights written in place, the report."""
from __future__ import annotations

import numpy as np

import graphc
from graphc import layers, runtime
from graphc.codegen.generate import generate_c
from graphc.ir import GraphBuilder, TensorType
from graphc.passes import plan_memory, rematerialize
from graphc.tracing import Tensor, tracing
from graphc.training.step import build_step
from graphc.variables import Variable


def mlp_step(activation="relu"):
    model = graphc.Sequential([graphc.Input((32,)), layers.Dense(64, activation=activation),
                               layers.Dense(48, activation=activation), layers.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model._resolve_metrics([np.zeros(1, "int32")])
    return model, build_step(model, model._spec, True, [(1, 32)], [(1,)], [None])


def test_rematerialize_recomputes_activations_for_the_backward_pass_and_lowers_peak():
    _, step = mlp_step("leaky_relu")  # its gradient reads its input, which so stays alive for the backward pass
    graph = step.graph
    after = rematerialize(graph)
    recomputed = [op for op in after.ops if op.scope.endswith("(recomputed)")]
    assert [op.kind for op in recomputed].count("leaky_relu") == 2  # each hidden activation, once
    assert plan_memory(after).peak_live_per_sample < plan_memory(graph).peak_live_per_sample


def test_rematerialize_keeps_the_graph_where_recomputing_would_raise_the_peak():
    """elu's gradient reads both its input and its output: recomputing the output late puts the copy next to
    what the backward pass already keeps, and the peak would rise (1216 -> 1344 bytes per sample here)."""
    for activation in ("elu", "selu"):
        _, step = mlp_step(activation)
        after = rematerialize(step.graph)
        assert after is step.graph
        assert not any(op.scope.endswith("(recomputed)") for op in after.ops)


def test_relu_backward_reads_the_output_so_the_forward_fuses_into_the_gemm():
    """relu's gradient masks by its output (y > 0 exactly where x > 0): the pre-activation has no reader in the
    backward pass, so bias and relu run in the forward GEMM's epilogue and nothing is recomputed."""
    _, step = mlp_step()
    gen = generate_c(step.graph, output_aliases={})
    assert gen.source.count("GRAPHC_ACT_RELU") == 2  # both hidden Dense layers, bias and relu fused
    assert "(recomputed)" not in gen.source


def test_new_weights_are_computed_in_place_only_when_every_read_of_the_old_ones_came_first(rng):
    w = Variable(rng.normal(size=(4, 3)).astype("float32"), "w")
    b = GraphBuilder()
    with tracing(b):
        x = Tensor(b.input("x", TensorType((None, 4), "float32")))
        early = graphc.ops.matmul(x, w)          # reads w before the update
        new_w = w * 0.5 + 1.0                    # the update: an elementwise loop over w
        late = graphc.ops.sum(w * 3.0)           # reads w again after it: w must not be overwritten early
        graph = b.finish([early.value, new_w.value, late.value])
    alias = {1: w}
    gen = generate_c(graph, output_aliases=alias)
    assert "memcpy(outputs[1]" in gen.source  # unsafe (a later read): computed aside and copied at the end
    old = w.value.copy()
    xv = rng.normal(size=(2, 4)).astype("float32")
    program = runtime.compile_graph(graph, output_aliases=alias)
    e, n, s = program.run([xv], [w.value], outputs=[None, w.storage, None])
    np.testing.assert_allclose(e, xv @ old, rtol=1e-5)
    np.testing.assert_allclose(w.value, old * 0.5 + 1, rtol=1e-6)
    np.testing.assert_allclose(s, np.sum(old * 3), rtol=1e-5)

    _, step = mlp_step()  # Adam's updates come after all of backward: every new value goes in place
    n = len(step.graph.outputs) - len(step.updated)
    gen = generate_c(step.graph, output_aliases={n + u: v for u, v in enumerate(step.updated)})
    assert not any(f"memcpy(outputs[{n + u}]" in gen.source for u in range(len(step.updated)))


def test_training_memory_report_counts_the_backward_pass():
    model, _ = mlp_step()
    inference = model.memory_report(64)
    training = model.memory_report(64, training=True)
    assert training["arena_bytes"] > inference["arena_bytes"]
    assert training["peak_live_bytes"] <= training["arena_bytes"] <= training["all_intermediates_bytes"]
    # at least the weight gradients (fixed) and the kept activations (per sample) are there
    params = sum(w.value.nbytes for w in model.trainable_weights)
    assert training["arena_bytes"] >= params + 64 * 4 * (64 + 48)
