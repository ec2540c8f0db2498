"""Training-time Dropout and its random op: reference == C bit for bit, reproducibility by seed and counter,
statistics of the masks, Keras's semantics (scale, noise_shape, rate 0 and 1, inference identity)."""
from __future__ import annotations

import numpy as np
import pytest

import graphc
from graphc import runtime
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.layers import Dropout
from graphc.tracing import Tensor, eager, emit, tracing
from grad_check import check_gradients

M64 = (1 << 64) - 1


def py_uniform(seed, stream, counter, i):
    """The documented hash, in plain Python integers: SplitMix64's mixer on a (seed, stream, counter) key."""
    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)
    key = mix(((seed & 0xFFFFFFFF) << 32) | stream)
    key = mix(key ^ (counter & 0xFFFFFFFF))
    return (mix((key + (i + 1) * 0x9E3779B97F4A7C15) & M64) >> 40) / 2.0 ** 24


def uniform(shape, counter, seed, stream=0):
    return eager(lambda x, c: emit("random_uniform", x, c, seed=seed, stream=stream),
                 np.zeros(shape, np.float32), np.int32(counter))


def test_reference_is_the_documented_hash():
    for seed, stream, counter in ((0, 0, 0), (7, 2, -3), (2**31 - 1, 0, 2**31 - 1), (-5, 1, 9)):
        u = uniform((4, 9), counter, seed, stream).reshape(-1)
        assert u.dtype == np.float32
        np.testing.assert_array_equal(u, [py_uniform(seed, stream, counter, i) for i in range(36)])


def dropout_graph():
    """Three uses of random_uniform: a graph output (a loop root), inlined into a where() (mask of the
    x shape), and a noise shape (None, 1, 5) broadcast over axis 1."""
    b = GraphBuilder()
    with tracing(b):
        x = Tensor(b.input("x", TensorType((None, 6, 5), "float32")))
        c = Tensor(b.input("counter", TensorType((), "int32")))
        root = emit("random_uniform", x, c, seed=11)
        inlined = graphc.ops.where(graphc.ops.greater_equal(emit("random_uniform", x, c, seed=12), 0.3),
                                   x * (1 / 0.7), 0.0)
        noise = emit("random_uniform", x, c, seed=13, shape=(None, 1, 5))
        broadcast = graphc.ops.where(graphc.ops.greater_equal(noise, 0.5), x * 2.0, 0.0)
        return b.finish([root.value, inlined.value, broadcast.value])


def test_compiled_c_is_bit_exact_with_the_reference():
    graph = dropout_graph()
    program = runtime.compile_graph(graph)
    assert program.generated.source.count("graphc_random_uniform(") == 3
    rng = np.random.default_rng(0)
    for batch in (1, 4):
        x = rng.standard_normal((batch, 6, 5)).astype(np.float32)
        for counter in (0, 1, -7, 2**31 - 1):
            feeds = [x, np.int32(counter)]
            expected = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, feeds)}, {})
            for got, e in zip(program.run(feeds, []), expected):
                np.testing.assert_array_equal(got, e)


def test_masks_depend_on_seed_stream_and_counter_only():
    base = uniform((50, 40), 3, 42)
    np.testing.assert_array_equal(base, uniform((50, 40), 3, 42))
    np.testing.assert_array_equal(base[:10], uniform((10, 40), 3, 42))  # a sample's draw ignores the batch size
    for other in (uniform((50, 40), 4, 42), uniform((50, 40), 3, 43), uniform((50, 40), 3, 42, stream=1)):
        assert np.mean(base == other) < 0.001
        assert abs(np.corrcoef(base.ravel(), other.ravel())[0, 1]) < 0.03


def test_uniform_statistics():
    u = uniform((400, 500), 1, 2024).ravel().astype(np.float64)
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 0.003 and abs(u.var() - 1 / 12) < 0.002
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    expected = u.size / 20
    assert ((counts - expected) ** 2 / expected).sum() < 45.3  # chi-square, 19 dof, p = 0.001
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01  # neighbouring indices are independent


# --- the Dropout layer ----------------------------------------------------------------------------------
def trace(layers_calls, shape, training=True):
    b = GraphBuilder()
    with tracing(b):
        x = Tensor(b.input("x", TensorType((None,) + shape[1:], "float32")))
        outs = [layer(x, training=training) for layer in layers_calls]
        graph = b.finish([o.value for o in outs])
    return graph


def run(graph, x, counter=0, compiled=False):
    feeds = [x] + ([np.int32(counter)] if len(graph.inputs) > 1 else [])
    if compiled:
        return runtime.compile_graph(graph).run(feeds, [])
    return reference.run(graph, {v.id: a for v, a in zip(graph.inputs, feeds)}, {})


def test_dropout_training_follows_keras_on_tensorflow():
    """keep where uniform >= rate, kept values times float32(1 / (1 - rate)) (TF's stateless_dropout)."""
    layer = Dropout(0.3, seed=9)
    graph = trace([layer], (2, 3, 4))
    x = np.random.default_rng(1).uniform(1, 2, (2, 3, 4)).astype(np.float32)
    (y,) = run(graph, x, counter=5)
    u = np.array([py_uniform(9, 0, 5, i) for i in range(24)]).reshape(x.shape)
    np.testing.assert_array_equal(y, np.where(u >= 0.3, x * np.float32(1 / 0.7), 0))
    np.testing.assert_array_equal(run(graph, x, counter=5, compiled=True)[0], y)


def test_kept_fraction_and_scale_in_c():
    x = np.ones((2000, 64), np.float32)
    for rate in (0.2, 0.5, 0.9):
        graph = trace([Dropout(rate, seed=3)], x.shape)
        program = runtime.compile_graph(graph)
        fractions = []
        for counter in range(3):
            (y,) = program.run([x, np.int32(counter)], [])
            kept = y != 0
            np.testing.assert_array_equal(y[kept], np.float32(1 / (1 - rate)))
            fractions.append(kept.mean())
        np.testing.assert_allclose(fractions, 1 - rate, atol=0.006)  # ~4 standard errors
        assert len({float(f) for f in fractions}) == 3  # a new mask at every step


def test_noise_shape_shares_the_mask_along_axes_of_size_one():
    x = np.ones((60, 7, 40), np.float32)
    for noise_shape, shared in (((None, 1, 40), (1,)), ((1, 7, None), (0,)), ((None, 1, 1), (1, 2))):
        graph = trace([Dropout(0.5, noise_shape=noise_shape, seed=1)], x.shape)
        y = run(graph, x, 2)[0]
        np.testing.assert_array_equal(run(graph, x, 2, compiled=True)[0], y)
        mask = y != 0
        for axis in shared:
            assert (mask == mask.take([0], axis=axis)).all()
        assert 0.3 < mask.mean() < 0.7


def test_bad_noise_shape_is_rejected():
    with pytest.raises(ValueError, match=r"Dropout 'dropout': noise_shape \(None, 3\)"):
        trace([Dropout(0.5, noise_shape=(None, 3))], (2, 4))


def test_rate_zero_one_and_inference():
    x = np.random.default_rng(2).standard_normal((4, 5)).astype(np.float32)
    for layer, training, expected in ((Dropout(0.0), True, x), (Dropout(0.5), False, x), (Dropout(0.5), None, x),
                                      (Dropout(1.0), True, np.zeros_like(x))):
        graph = trace([layer], x.shape, training=training)
        np.testing.assert_array_equal(run(graph, x)[0], expected)
        if expected is x:  # the inference identity op, no random input
            assert [op.kind for op in graph.ops] == ["dropout"] and len(graph.inputs) == 1


def test_seeds_come_from_graphc_generator_and_differ_between_layers():
    x = np.ones((50, 40), np.float32)

    def masks():
        graphc.utils.set_random_seed(77)
        graph = trace([Dropout(0.5), Dropout(0.5)], x.shape)
        return [y != 0 for y in run(graph, x, 1)]

    first, second = masks(), masks()
    np.testing.assert_array_equal(first[0], second[0])  # reproducible under set_random_seed
    np.testing.assert_array_equal(first[1], second[1])
    assert 0.4 < np.mean(first[0] == first[1]) < 0.6  # two layers, independent masks


def test_shared_layer_draws_a_new_mask_per_call():
    layer = Dropout(0.5, seed=4)
    a, b = run(trace([layer, layer], (50, 40)), np.ones((50, 40), np.float32), 0)
    assert 0.4 < np.mean((a != 0) == (b != 0)) < 0.6


def test_gradient_through_the_mask():
    def fn(x, counter):
        keep = graphc.ops.greater_equal(emit("random_uniform", x, counter, seed=5), 0.4)
        return graphc.ops.where(keep, x * (1 / 0.6), 0.0)
    x = np.random.default_rng(3).standard_normal((3, 4))
    grads = check_gradients(fn, [x, np.array(6, np.int32)], batched=[True, False])
    keep = uniform((3, 4), 6, 5) >= 0.4
    r = np.random.default_rng(0).standard_normal((3, 4))  # check_gradients' output weights
    np.testing.assert_allclose(grads[0], np.where(keep, r / 0.6, 0), rtol=1e-12)
