"""The IR on its own: types, registry entries, the builder's shape checks, the reference executor."""
import numpy as np
import pytest

from graphc.ir import OPS, GraphBuilder, ShapeError, TensorType, reference
from graphc.ir.ops.elementwise import broadcast_shapes


def test_every_op_has_a_shape_rule_and_a_reference():
    assert {"matmul", "add", "relu", "reshape", "concat", "softmax", "reduce_mean"} <= set(OPS)
    for name, op in OPS.items():
        assert callable(op.infer) and callable(op.reference), name
        assert op.grad is None or callable(op.grad)


def test_tensor_type_normalizes_and_prints():
    t = TensorType((None, 784), np.float32)
    assert t.shape == (None, 784) and t.dtype == "float32" and t.rank == 2
    assert str(t) == "float32[None, 784]"
    with pytest.raises(ValueError):
        TensorType((-1, 3))
    with pytest.raises(TypeError):
        TensorType((1,), "complex64")


@pytest.mark.parametrize("a,b,out", [((None, 3), (3,), (None, 3)), ((4, 1), (1, 5), (4, 5)),
                                     ((None, 1), (None, 7), (None, 7)), ((2, 3), (), (2, 3))])
def test_broadcast_rule(a, b, out):
    assert broadcast_shapes(a, b) == out


def test_broadcast_mismatch_is_a_shape_error():
    with pytest.raises(ShapeError, match=r"\(None, 3\) and \(None, 4\)"):
        broadcast_shapes((None, 3), (None, 4))


def test_builder_checks_shapes_when_ops_are_added():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 8)))
    w = b.param("w", "w", TensorType((8, 4)))
    y = b.emit("matmul", [x, w])
    assert y.type == TensorType((None, 4))
    with pytest.raises(ShapeError, match="inner dimensions differ"):
        b.emit("matmul", [y, w])
    with pytest.raises(ShapeError, match="48 elements per sample"):
        b.emit("reshape", [b.input("z", TensorType((None, 6, 8)))], shape=(None, 5, 10))


def test_same_param_key_is_one_value():
    b = GraphBuilder()
    key = object()
    assert b.param(key, "w", TensorType((2,))) is b.param(key, "w", TensorType((2,)))
    assert len(b.params) == 1


def test_reference_runs_a_graph_with_symbolic_batch():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    w = b.param("w", "w", TensorType((3, 2)))
    h = b.emit("relu", [b.emit("matmul", [x, w])])
    out = b.emit("softmax", [h], axis=-1)
    g = b.finish([out])
    rng = np.random.default_rng(1)
    wv = rng.normal(size=(3, 2)).astype("float32")
    for n in (1, 5):
        xv = rng.normal(size=(n, 3)).astype("float32")
        (got,) = reference.run(g, {x.id: xv}, {w.id: wv})
        e = np.exp(np.maximum(xv @ wv, 0))
        np.testing.assert_allclose(got, e / e.sum(-1, keepdims=True), rtol=1e-6)


def test_reference_rejects_a_wrong_concrete_shape():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    g = b.finish([b.emit("relu", [x])])
    with pytest.raises(ValueError, match=r"expected shape \(None, 3\), got \(2, 4\)"):
        reference.run(g, {x.id: np.zeros((2, 4), "float32")}, {})


def test_multi_output_and_constants():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 4)))
    c = b.constant(np.float32(2.0))
    y = b.emit("multiply", [x, c])
    m = b.emit("reduce_max", [y], axes=(1,), keepdims=True)
    g = b.finish([y, m])
    xv = np.arange(8, dtype="float32").reshape(2, 4)
    got_y, got_m = reference.run(g, {x.id: xv}, {})
    np.testing.assert_array_equal(got_y, 2 * xv)
    np.testing.assert_array_equal(got_m, [[6.0], [14.0]])
    assert "reduce_max" in str(g)


def test_concat_rule_reports_all_shapes():
    b = GraphBuilder()
    a = b.input("a", TensorType((None, 3, 4)))
    c = b.input("c", TensorType((None, 5, 4)))
    assert b.emit("concat", [a, c], axis=1).type.shape == (None, 8, 4)
    with pytest.raises(ShapeError, match=r"\[\(None, 3, 4\), \(None, 5, 4\)\]"):
        b.emit("concat", [a, c], axis=2)
