"""Gradient checks for any traced function of arrays, used by every op's gradient tests.

``check_gradients(fn, arrays)`` takes the scalar L = sum(fn(*x) * R) for a fixed random R and checks
dL/dx three ways:
1. the autodiff graph run by the NumPy reference in float64 against central finite differences of the
   same reference (float64, so the tolerance can be tight);
2. the same autodiff graph in float32, compiled to C, against the float32 reference (rtol 1e-4);
3. (implicitly) every gradient rule's ops have C lowerings, or step 2 fails.
Batched inputs get a symbolic batch axis in the compiled graph, so batch-dependent code is exercised.
"""
from __future__ import annotations

import numpy as np

from graphc import runtime
from graphc.autodiff import gradients
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.tracing import Tensor, tracing


def _grad_graph(fn, arrays, dtype, batched, wrt):
    b = GraphBuilder()
    with tracing(b):
        ins = []
        for i, a in enumerate(arrays):
            shape = tuple(a.shape)
            if batched[i]:
                shape = (None,) + shape[1:]
            dt = dtype if a.dtype.kind == "f" else str(a.dtype)
            ins.append(Tensor(b.input(f"x{i}", TensorType(shape, dt))))
        out = fn(*ins)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
        r_in = [Tensor(b.input(f"r{k}", TensorType(o.shape, dtype))) for k, o in enumerate(outs)]
        loss = None
        for o, r in zip(outs, r_in):
            term = (o * r).value
            term = Tensor(b.emit("reduce_sum", [term], axes=tuple(range(len(o.shape))), keepdims=False))
            loss = term if loss is None else loss + term
        grads = gradients(loss, [ins[i] for i in wrt])
        missing = [i for i, g in zip(wrt, grads) if g is None]
        assert not missing, f"no gradient reaches inputs {missing}"
        graph = b.finish([loss.value] + [g.value for g in grads])
    return graph


def _run_ref(graph, arrays, rs):
    feeds = {v.id: a for v, a in zip(graph.inputs, list(arrays) + list(rs))}
    return reference.run(graph, feeds, {})


def _output_shapes(fn, arrays):
    b = GraphBuilder()
    with tracing(b):
        ins = [Tensor(b.input(f"x{i}", TensorType(a.shape, "float64" if a.dtype.kind == "f" else str(a.dtype))))
               for i, a in enumerate(arrays)]
        out = fn(*ins)
        outs = list(out) if isinstance(out, (list, tuple)) else [out]
    return [tuple(o.shape) for o in outs]


def check_gradients(fn, arrays, *, batched=None, wrt=None, eps=1e-6, rtol=1e-5, atol=1e-6,
                    c_rtol=1e-4, c_atol=1e-5, check_c=True, seed=0):
    """Assert fn's gradients; returns the float64 analytic gradients for further checks."""
    arrays = [np.asarray(a) for a in arrays]
    batched = batched if batched is not None else [i == 0 for i in range(len(arrays))]
    wrt = wrt if wrt is not None else [i for i, a in enumerate(arrays) if a.dtype.kind == "f"]
    rng = np.random.default_rng(seed)
    rs = [rng.standard_normal(s) for s in _output_shapes(fn, arrays)]

    # 1. float64 reference: autodiff against central differences
    x64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
    graph64 = _grad_graph(fn, x64, "float64", [False] * len(arrays), wrt)
    analytic = _run_ref(graph64, x64, rs)[1:]
    for k, i in enumerate(wrt):
        numeric = np.zeros_like(x64[i])
        flat = numeric.reshape(-1)
        for j in range(flat.size):
            plus = [a.copy() for a in x64]
            minus = [a.copy() for a in x64]
            plus[i].reshape(-1)[j] += eps
            minus[i].reshape(-1)[j] -= eps
            flat[j] = (_run_ref(graph64, plus, rs)[0] - _run_ref(graph64, minus, rs)[0]) / (2 * eps)
        np.testing.assert_allclose(analytic[k], numeric, rtol=rtol, atol=atol,
                                   err_msg=f"autodiff vs finite differences, input {i}")

    # 2. float32: compiled C against the reference
    if check_c:
        x32 = [a.astype(np.float32) if a.dtype.kind == "f" else a for a in arrays]
        r32 = [r.astype(np.float32) for r in rs]
        graph32 = _grad_graph(fn, x32, "float32", batched, wrt)
        expected = _run_ref(graph32, x32, r32)
        program = runtime.compile_graph(graph32, title="gradient check")
        got = program.run(x32 + r32, [])
        for k, (g, e) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(g, e, rtol=c_rtol, atol=c_atol,
                                       err_msg=f"compiled C vs reference, {'loss' if k == 0 else f'grad {k - 1}'}")
    return analytic
