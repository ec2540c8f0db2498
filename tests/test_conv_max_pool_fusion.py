"""Conv2D followed by MaxPooling2D(2) fused at inference into conv_max_pool (passes/fusion.py), whose kernel
(graphc_conv_max_pool_f32 in kernels/conv.c) never writes the convolution's output: when the pass fuses,
and the compiled op against the unfused NumPy reference on each of the kernel's three paths (Winograd's
tiles as the pool's windows; two rows of a convolution with few products per output; chunks of images
through the plain convolution), at batch 1 and odd batches."""
import numpy as np

from graphc.ir import GraphBuilder, TensorType
from graphc.passes import fuse_conv_epilogue, fuse_conv_max_pool, simplify

from c_check import Weights, check


def conv(b, x, w, strides=(1, 1), padding="valid", groups=1):
    n = w.type.rank - 2
    return b.emit("conv", [x, w], strides=strides, padding=padding, dilation=(1,) * n, groups=groups)


def pool(b, y, size=(2, 2), strides=(2, 2), padding="valid"):
    return b.emit("max_pool", [y], pool_size=size, strides=strides, padding=padding)


def conv_act_pool(b, x, p, kernel, act="relu", bias=True, **conv_args):
    y = conv(b, x, p(kernel), **conv_args)
    if bias:
        y = b.emit("add", [y, p((kernel[-1],))])
    if act != "linear":
        y = b.emit(act, [y])
    return pool(b, y)


def kinds(graph):
    return [op.kind for op in graph.ops]


def test_pass_fuses_only_a_2x2_stride_2_valid_max_pool_that_alone_reads_a_2d_conv():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 10, 10, 3)))
    seq = b.input("s", TensorType((None, 10, 3)))

    names = iter(range(100))

    def p(shape):
        return b.param(Weights(np.ones(shape, np.float32)), f"w{next(names)}", TensorType(shape))
    k = p((3, 3, 3, 4))
    fused = conv_act_pool(b, x, lambda shape: k if len(shape) == 4 else p(shape), (3, 3, 3, 4))
    wide = pool(b, b.emit("relu", [conv(b, x, k)]), size=(3, 3), strides=(3, 3))    # another window
    overlapping = pool(b, conv(b, x, k), strides=(1, 1))                              # another stride
    same = pool(b, conv(b, x, k, padding="same"), padding="same")                     # padded pool
    shared = conv(b, x, k)
    twice = [pool(b, shared), b.emit("tanh", [shared])]                               # read by two ops
    avg = b.emit("avg_pool", [conv(b, x, k)], pool_size=(2, 2), strides=(2, 2), padding="valid")
    one_d = pool(b, conv(b, seq, p((3, 3, 4)), strides=(1,)), size=(2,), strides=(2,))  # Conv1D
    graph = b.finish([fused, wide, overlapping, same, *twice, avg, one_d])
    out = fuse_conv_max_pool(fuse_conv_epilogue(simplify(graph)))
    assert kinds(out).count("conv_max_pool") == 1 and kinds(out).count("max_pool") == 5
    op = next(op for op in out.ops if op.kind == "conv_max_pool")
    assert op.outputs[0] is fused and op.attrs["activation"] == "relu" and len(op.inputs) == 3
    assert op.outputs[0].type.shape == (None, 4, 4, 4)
    plain = fuse_conv_max_pool(simplify(b.finish([pool(b, conv(b, x, k))])))  # no epilogue: still fused
    assert kinds(plain) == ["conv_max_pool"] and plain.ops[0].attrs["activation"] == "linear"


def test_small_k_path_pools_two_convolution_rows(rng):
    """Few products per output (taps x channels <= 32): odd convolution outputs (the pool drops the last row
    and column), padding, stride, groups with a partial strip of output channels, any activation."""
    def build(b, xs, p):
        x, = xs  # (None, 13, 12, 2)
        return [conv_act_pool(b, x, p, (3, 3, 2, 32)),                             # 11x10 -> 5x5
                conv_act_pool(b, x, p, (3, 3, 2, 40), act="tanh", padding="same"),   # 13x12 -> 6x6, 8 left over
                conv_act_pool(b, x, p, (2, 2, 1, 12), bias=False, strides=(2, 1), groups=2),
                conv_act_pool(b, x, p, (3, 3, 2, 35), act="linear", strides=(1, 2))]
    for batch in ((1, 3), (64,)):  # 64: above the work threshold, threads share the rows
        program = check(build, [(13, 12, 2)], rng, batches=batch)
        assert kinds(program.graph).count("conv_max_pool") == 4


def test_winograd_path_transforms_tiles_into_their_maximum(rng):
    """3x3 stride-1 with >= 16 channels and >= 128 whole tiles: same and valid padding, odd convolution
    outputs (their edge tiles are not computed), ReLU and no activation, with and without a bias."""
    def build(b, xs, p):
        x, = xs  # (None, 14, 11, 16)
        return [conv_act_pool(b, x, p, (3, 3, 16, 24)),                                  # 12x9 -> 6x4
                conv_act_pool(b, x, p, (3, 3, 16, 17), act="linear", padding="same"),   # 14x11 -> 7x5
                conv_act_pool(b, x, p, (3, 3, 16, 16), bias=False)]
    check(build, [(14, 11, 16)], rng, batches=(7, 9))  # 7 x 24 tiles = 168: Winograd; and odd
    check(build, [(14, 11, 16)], rng, batches=(1,))    # 24 tiles: the chunked path


def test_chunked_path_for_other_convolutions(rng):
    """More products per output and no Winograd (5x5; a sigmoid; strides): the convolution of a chunk of
    images in the scratch, then the pool; images larger than a chunk go one at a time."""
    def build(b, xs, p):
        x, = xs  # (None, 13, 13, 8)
        return [conv_act_pool(b, x, p, (5, 5, 8, 20)),
                conv_act_pool(b, x, p, (3, 3, 8, 16), act="sigmoid", padding="same"),
                conv_act_pool(b, x, p, (3, 3, 4, 6), strides=(2, 2), groups=2)]
    check(build, [(13, 13, 8)], rng, batches=(1, 5))

    def large(b, xs, p):
        x, = xs  # (None, 70, 66, 4): a 66x62x72 output is 294,624 floats, more than a chunk of 2^18
        return [conv_act_pool(b, x, p, (5, 5, 4, 72))]
    check(large, [(70, 66, 4)], rng, batches=(3,))


def test_nan_propagates_through_the_fused_maximum(rng):
    """Without an activation a NaN input cell makes the pooled cells over it NaN, as MaxPooling2D does, on the
    Winograd and few-products paths (the maximum is written as selects so that it vectorizes)."""
    from graphc.ir import reference
    from graphc.runtime import compile_graph
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 12, 10, 16)))
    params = [Weights(rng.uniform(-1, 1, s).astype("float32")) for s in [(3, 3, 16, 16), (1, 1, 16, 8)]]
    ks = [b.param(w, f"k{i}", TensorType(w.value.shape)) for i, w in enumerate(params)]
    graph = b.finish([pool(b, conv(b, x, ks[0])), pool(b, conv(b, x, ks[1], strides=(1, 2)))])
    program = compile_graph(graph)
    assert [op.kind for op in program.graph.ops] == ["conv_max_pool"] * 2
    xs = rng.uniform(-1, 1, (8, 12, 10, 16)).astype("float32")  # 8 x 20 tiles: Winograd
    xs[3, 5, 4, 2] = np.nan
    got = program.run([xs], [w.value for w in program.param_keys])
    want = reference.run(graph, {graph.inputs[0].id: xs}, {v.id: graph.param_keys[v.id].value for v in graph.params})
    for g, w in zip(got, want):
        assert np.isnan(w).any() and np.array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_nan_and_infinities_through_the_few_products_maximum(rng):
    """The few-products path keeps a pool window's four cells in registers and takes their maximum before the
    bias and ReLU (kernels/conv.c, small_k_quad): a NaN input cell still makes the pooled cells over it NaN,
    through ReLU too (as np.maximum(NaN, 0)), and an infinite one gives the infinities the reference gives;
    a full strip of 32 channels and a partial one (20)."""
    from graphc.ir import reference
    from graphc.runtime import compile_graph
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 9, 10, 2)))
    params = [Weights(rng.uniform(-1, 1, s).astype("float32")) for s in [(3, 3, 2, 32), (32,), (3, 3, 2, 20)]]
    k0, b0, k1 = [b.param(w, f"p{i}", TensorType(w.value.shape)) for i, w in enumerate(params)]
    relu = pool(b, b.emit("relu", [b.emit("add", [conv(b, x, k0), b0])]))
    linear = pool(b, conv(b, x, k1))
    graph = b.finish([relu, linear])
    program = compile_graph(graph)
    assert [op.kind for op in program.graph.ops] == ["conv_max_pool"] * 2
    xs = rng.uniform(-1, 1, (3, 9, 10, 2)).astype("float32")
    xs[1, 4, 5, 1] = np.nan
    xs[2, 2, 7, 0] = np.inf
    got = program.run([xs], [w.value for w in program.param_keys])
    with np.errstate(invalid="ignore"):  # (NumPy's matmul notes the NaN)
        want = reference.run(graph, {graph.inputs[0].id: xs},
                             {v.id: graph.param_keys[v.id].value for v in graph.params})
    for g, w in zip(got, want):
        assert np.isnan(w).any() and np.isinf(w).any()
        assert np.array_equal(np.isnan(g), np.isnan(w))
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
