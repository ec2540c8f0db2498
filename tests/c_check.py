"""Compile a small IR graph to C and compare it with the NumPy reference (used by the codegen tests)."""
import numpy as np
import pytest

from graphc.ir import GraphBuilder, TensorType, reference
from graphc.runtime import compile_graph


class Weights:
    """Stands for a layer's weight: the runtime reads ``.value``."""

    def __init__(self, value):
        self.value = value


def check(build, input_shapes, rng, batches=(1, 5), dtypes=None, low=-2.0, high=2.0, rtol=1e-4, atol=1e-5):
    """build(builder, inputs, param) -> outputs; compares compiled C with the reference executor."""
    b = GraphBuilder()
    dtypes = dtypes or ["float32"] * len(input_shapes)
    ins = [b.input(f"x{i}", TensorType((None,) + tuple(s), d)) for i, (s, d) in enumerate(zip(input_shapes, dtypes))]
    weights = []

    def param(shape):
        w = Weights(rng.uniform(-1, 1, shape).astype("float32"))
        weights.append(w)
        return b.param(w, f"w{len(weights)}", TensorType(shape))

    outs = build(b, ins, param)
    graph = b.finish(outs if isinstance(outs, list) else [outs])
    program = compile_graph(graph)
    for n in batches:
        arrays = [rng.uniform(low, high, (n,) + tuple(s)).astype(d) for s, d in zip(input_shapes, dtypes)]
        want = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)},
                             {v.id: graph.param_keys[v.id].value for v in graph.params})
        got = program.run(arrays, [w.value for w in program.param_keys])
        assert len(got) == len(want)
        for g, w, v in zip(got, want, graph.outputs):
            assert g.shape == w.shape, v
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=str(v))
    return program


