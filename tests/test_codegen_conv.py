"""conv, conv_transpose, max_pool, avg_pool and the fused conv_bias_act compiled to C (kernels/conv.c)
against the NumPy reference at batch 1 and 5; the conv epilogue fusion pass; the seed CNN models compiled
against GRAPHC_BACKEND=reference.

Each test puts many ops into one graph (one compile). Shapes are chosen to reach every kernel path:
1x1 stride-1 (plain GEMM), the implicit GEMM (patches packed from the input) with patch rows longer than
a K block of the GEMM, groups, dilation, padding on each side, threads (batch 5 problems above the work
threshold). tests/c/test_conv.c checks the same kernel from C with the portable micro-kernel too.
"""
import os
import sys
import warnings

import numpy as np
import pytest

from graphc.ir import GraphBuilder, TensorType, reference
from graphc.passes import fuse_conv_epilogue, simplify
from graphc.runtime import compile_graph

from c_check import Weights, check

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
import seed_models  # noqa: E402


def conv(b, x, w, strides, padding="valid", dilation=None, groups=1):
    n = w.type.rank - 2
    return b.emit("conv", [x, w], strides=strides, padding=padding, dilation=dilation or (1,) * n, groups=groups)


def conv_t(b, x, w, strides, padding="valid", output_padding=None, dilation=None):
    n = w.type.rank - 2
    return b.emit("conv_transpose", [x, w], strides=strides, padding=padding, output_padding=output_padding,
                  dilation=dilation or (1,) * n)


def test_conv2d_strides_paddings_dilations_groups(rng):
    def build(b, xs, p):
        x, = xs  # (None, 9, 11, 6)
        return [conv(b, x, p((3, 3, 6, 8)), (1, 1)),
                conv(b, x, p((3, 3, 6, 8)), (1, 1), "same"),
                conv(b, x, p((4, 2, 6, 5)), (2, 3), "same"),           # even kernel: odd pad cell goes after
                conv(b, x, p((3, 4, 6, 7)), (3, 2), "valid"),
                conv(b, x, p((3, 3, 6, 4)), (1, 1), "same", (2, 3)),    # dilation
                conv(b, x, p((2, 3, 6, 4)), (1, 1), "valid", (3, 2)),
                conv(b, x, p((3, 3, 2, 6)), (1, 1), "same", groups=3),  # groups
                conv(b, x, p((3, 3, 1, 12)), (2, 2), "same", groups=6),  # depthwise, multiplier 2
                conv(b, x, p((2, 2, 3, 4)), (1, 2), "valid", (2, 1), groups=2),
                conv(b, x, p((1, 1, 6, 9)), (1, 1)),                   # pointwise: a plain GEMM
                conv(b, x, p((1, 1, 3, 4)), (1, 1), groups=2),
                conv(b, x, p((1, 1, 6, 5)), (2, 2), "same"),           # 1x1 with stride: patches
                conv(b, x, p((9, 11, 6, 3)), (1, 1), "valid"),          # kernel as large as the input
                conv(b, x, p((12, 14, 6, 3)), (4, 5), "same")]          # kernel larger than the input
    check(build, [(9, 11, 6)], rng)


def test_conv2d_few_channels_and_threaded_sizes(rng):
    def build(b, xs, p):
        gray, rgb = xs  # batch 5 of these is above the threading threshold
        return [conv(b, gray, p((4, 4, 1, 16)), (1, 1)), conv(b, gray, p((3, 3, 1, 8)), (2, 2), "same"),
                conv(b, rgb, p((3, 3, 3, 32)), (1, 1), "same"), conv(b, rgb, p((5, 5, 3, 8)), (2, 2), "valid")]
    check(build, [(40, 40, 1), (33, 35, 3)], rng)


def test_conv1d_and_conv3d(rng):
    def build(b, xs, p):
        seq, vol = xs  # (None, 23, 5) and (None, 5, 6, 7, 3)
        return [conv(b, seq, p((5, 5, 8)), (1,)), conv(b, seq, p((4, 5, 3)), (3,), "same"),
                conv(b, seq, p((3, 5, 6)), (1,), "same", (4,)), conv(b, seq, p((3, 1, 10)), (2,), "valid", groups=5),
                conv(b, seq, p((1, 5, 7)), (1,)),
                conv(b, vol, p((3, 3, 3, 3, 4)), (1, 1, 1)), conv(b, vol, p((2, 3, 4, 3, 5)), (2, 1, 3), "same"),
                conv(b, vol, p((2, 2, 2, 3, 4)), (1, 1, 1), "same", (2, 1, 3)),
                conv(b, vol, p((3, 3, 3, 1, 6)), (1, 2, 1), "same", groups=3)]
    check(build, [(23, 5), (5, 6, 7, 3)], rng)


def test_conv_with_very_wide_patches_splits_columns(rng):
    """Patch rows far longer than a K block of the GEMM (and than the packer's block of zeros for padding)."""
    def build(b, xs, p):
        x, = xs  # (None, 4, 5, 4200)
        return [conv(b, x, p((2, 2, 4200, 3)), (1, 1), "same"),
                conv(b, x, p((3, 2, 700, 6)), (1, 2), "valid", groups=6),
                conv(b, x, p((3, 3, 4200, 2)), (2, 2), "same")]
    check(build, [(4, 5, 4200)], rng, rtol=2e-4, atol=5e-5)  # sums of thousands of products


def test_conv_transpose(rng):
    def build(b, xs, p):
        x, seq, vol = xs  # (None, 5, 6, 4), (None, 7, 3), (None, 3, 4, 2, 2)
        return [conv_t(b, x, p((3, 3, 8, 4)), (1, 1)),
                conv_t(b, x, p((3, 3, 8, 4)), (1, 1), "same"),
                conv_t(b, x, p((3, 3, 5, 4)), (2, 2), "same"),
                conv_t(b, x, p((4, 2, 5, 4)), (2, 3), "same"),
                conv_t(b, x, p((3, 3, 6, 4)), (2, 2), "valid"),
                conv_t(b, x, p((3, 2, 6, 4)), (3, 2), "valid", output_padding=(2, 1)),
                conv_t(b, x, p((3, 3, 6, 4)), (2, 2), "same", output_padding=(1, 0)),
                conv_t(b, x, p((1, 1, 6, 4)), (2, 2), "valid"),          # stride > kernel: gaps
                conv_t(b, x, p((3, 2, 3, 4)), (1, 1), "same", dilation=(2, 3)),
                conv_t(b, seq, p((3, 4, 3)), (2,), "valid"), conv_t(b, seq, p((5, 2, 3)), (1,), "same"),
                conv_t(b, vol, p((2, 3, 2, 3, 2)), (2, 1, 2), "same"),
                conv_t(b, vol, p((3, 2, 2, 2, 2)), (1, 2, 1), "valid", output_padding=(0, 1, 0))]
    check(build, [(5, 6, 4), (7, 3), (3, 4, 2, 2)], rng)


def test_conv_transpose_wide_kernels_and_threads(rng):
    """More input channels than one GEMM takes, more columns than one chunk, and a threaded batch."""
    def build(b, xs, p):
        x, img = xs  # (None, 3, 4, 1100), (None, 16, 16, 16)
        return [conv_t(b, x, p((3, 3, 8, 1100)), (2, 2), "same"), conv_t(b, x, p((2, 2, 70, 1100)), (1, 1)),
                conv_t(b, img, p((3, 3, 16, 16)), (2, 2), "same")]
    check(build, [(3, 4, 1100), (16, 16, 16)], rng, rtol=2e-4, atol=5e-5)


def test_pooling(rng):
    def build(b, xs, p):
        x, seq, vol = xs  # (None, 7, 9, 5), (None, 10, 3), (None, 4, 5, 6, 2)
        outs = []
        for kind in ("max_pool", "avg_pool"):
            outs += [b.emit(kind, [x], pool_size=(2, 2), strides=(2, 2), padding="valid"),
                     b.emit(kind, [x], pool_size=(3, 3), strides=(2, 2), padding="same"),
                     b.emit(kind, [x], pool_size=(3, 2), strides=(1, 1), padding="same"),
                     b.emit(kind, [x], pool_size=(2, 4), strides=(3, 1), padding="valid"),
                     b.emit(kind, [x], pool_size=(4, 4), strides=(1, 3), padding="same"),
                     b.emit(kind, [seq], pool_size=(3,), strides=(2,), padding="same"),
                     b.emit(kind, [seq], pool_size=(4,), strides=(4,), padding="valid"),
                     b.emit(kind, [vol], pool_size=(2, 2, 3), strides=(2, 1, 2), padding="same"),
                     b.emit(kind, [vol], pool_size=(3, 2, 2), strides=(1, 2, 2), padding="valid")]
        return outs
    check(build, [(7, 9, 5), (10, 3), (4, 5, 6, 2)], rng)


def _compile(build, shape):
    b = GraphBuilder()
    x = b.input("x", TensorType((None, *shape)))
    outs = build(b, x)
    graph = b.finish(outs)
    return graph, compile_graph(graph)


def test_max_pool_propagates_nan_and_handles_infinities():
    graph, program = _compile(lambda b, x: [b.emit("max_pool", [x], pool_size=(2, 2), strides=(2, 2),
                                                   padding="same")], (3, 3, 2))
    x = np.zeros((1, 3, 3, 2), np.float32)
    x[0, 0, 0, 0], x[0, 2, 2, 1], x[0, 1, 1, 1] = np.nan, -np.inf, np.inf
    x[0, 2, 2, 0] = -5.0
    got = program.run([x], [])[0]
    want = reference.run(graph, {graph.inputs[0].id: x}, {})[0]
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0, 0, 0, 0]) and got[0, 0, 0, 1] == np.inf and got[0, 1, 1, 0] == -5.0


def test_avg_pool_same_excludes_padding_from_the_count():
    """An independent check of the divisor: a corner window of a 3x3 pool covers 4 real cells."""
    graph, program = _compile(lambda b, x: [b.emit("avg_pool", [x], pool_size=(3, 3), strides=(1, 1),
                                                   padding="same")], (4, 4, 1))
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    got = program.run([x], [])[0][0, :, :, 0]
    assert got[0, 0] == pytest.approx((0 + 1 + 4 + 5) / 4)
    assert got[1, 1] == pytest.approx(np.mean(x[0, :3, :3, 0]))
    assert got[3, 1] == pytest.approx((8 + 9 + 10 + 12 + 13 + 14) / 6)


# --- the fused op and the fusion pass -------------------------------------------------------------------
def _naive_conv2d(x, w, bias, stride, pad):
    """Direct loops, independent of graphc's reference: x (n, h, w, c), w (kh, kw, c, o)."""
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    xp = np.zeros((n, h + pad[0][0] + pad[0][1], wd + pad[1][0] + pad[1][1], c))
    xp[:, pad[0][0]:pad[0][0] + h, pad[1][0]:pad[1][0] + wd] = x
    oh, ow = (xp.shape[1] - kh) // stride + 1, (xp.shape[2] - kw) // stride + 1
    y = np.zeros((n, oh, ow, o))
    for i in range(oh):
        for j in range(ow):
            cell = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            y[:, i, j] = np.tensordot(cell, w, axes=([1, 2, 3], [0, 1, 2]))
    return y + bias


def test_conv_relu_and_bias_become_one_op(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 8, 8, 3)))
    w = Weights(rng.uniform(-1, 1, (3, 3, 3, 4)).astype("float32"))
    bias = Weights(rng.uniform(-1, 1, 4).astype("float32"))
    y = conv(b, x, b.param(w, "kernel", TensorType((3, 3, 3, 4))), (2, 2), "same")
    y = b.emit("relu", [b.emit("add", [y, b.param(bias, "bias", TensorType((4,)))])])
    graph = b.finish([y])
    fused = fuse_conv_epilogue(simplify(graph))
    assert [op.kind for op in fused.ops] == ["conv_bias_act"]
    assert fused.ops[0].attrs["activation"] == "relu" and fused.ops[0].outputs[0] is y
    program = compile_graph(graph)
    assert [op.kind for op in program.graph.ops] == ["conv_bias_act"]
    xs = rng.uniform(-1, 1, (3, 8, 8, 3)).astype("float32")
    got = program.run([xs], [w.value, bias.value])[0]
    want = np.maximum(_naive_conv2d(xs, w.value, bias.value, 2, [(0, 1), (0, 1)]), 0)  # SAME: 8 -> 4, pad 1 after
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_fusion_stops_at_shared_values_and_non_bias_adds(rng):
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 6, 6, 2)))
    k = b.param(Weights(np.ones((3, 3, 2, 4), np.float32)), "k", TensorType((3, 3, 2, 4)))
    shared = conv(b, x, k, (1, 1))                                   # read by two ops: stays alone
    a = b.emit("relu", [shared])
    c = b.emit("tanh", [shared])
    full = b.emit("add", [conv(b, x, k, (1, 1)), b.emit("relu", [shared])])  # a batch-sized add: no bias
    bias = b.param(Weights(np.ones(4, np.float32)), "b", TensorType((4,)))
    only_bias = b.emit("add", [bias, conv(b, x, k, (1, 1))])              # bias first, no activation
    returned = conv(b, x, k, (1, 1))                                   # a graph output is not fused away
    tail = b.emit("sigmoid", [returned])
    t = b.emit("conv_transpose", [x, b.param(Weights(np.ones((2, 2, 3, 2), np.float32)), "kt",
                                             TensorType((2, 2, 3, 2)))],
               strides=(2, 2), padding="same", output_padding=None, dilation=(1, 1))
    t = b.emit("tanh", [t])
    graph = b.finish([a, c, full, only_bias, returned, tail, t])
    kinds = [op.kind for op in fuse_conv_epilogue(simplify(graph)).ops]
    assert kinds.count("conv") == 3 and kinds.count("conv_bias_act") == 1
    assert kinds.count("conv_transpose_bias_act") == 1 and "sigmoid" in kinds and "add" in kinds
    fused = next(op for op in fuse_conv_epilogue(simplify(graph)).ops if op.kind == "conv_bias_act")
    assert fused.attrs["activation"] == "linear" and fused.inputs[2] is bias


def test_fused_ops_against_the_reference(rng):
    def build(b, xs, p):
        x, = xs
        outs = []
        for act in ("relu", "sigmoid", "tanh"):
            outs.append(b.emit(act, [b.emit("add", [conv(b, x, p((3, 3, 4, 6)), (1, 1), "same"), p((6,))])]))
            outs.append(b.emit(act, [conv(b, x, p((1, 1, 4, 5)), (1, 1))]))  # no bias; the GEMM path
            outs.append(b.emit(act, [b.emit("add", [conv_t(b, x, p((3, 3, 3, 4)), (2, 2), "same"), p((3,))])]))
        grouped = conv(b, x, p((3, 3, 2, 6)), (2, 1), "valid", (1, 2), groups=2)
        outs.append(b.emit("relu", [b.emit("add", [grouped, p((6,))])]))
        return outs
    program = check(build, [(7, 8, 4)], rng)
    kinds = [op.kind for op in program.graph.ops]
    assert kinds.count("conv_bias_act") == 7 and kinds.count("conv_transpose_bias_act") == 3
    assert not {"add", "relu", "sigmoid", "tanh", "conv", "conv_transpose"} & set(kinds)


def test_3x3_convolutions_with_many_tiles_take_winograd(rng):
    """3x3 stride-1 convolutions with >= 16 channels each way and >= 128 tiles of 2x2 output cells run by
    Winograd's F(2x2, 3x3) (kernels/winograd.c): same and valid padding, odd output sizes (edge tiles),
    with bias and ReLU fused or not, and a sigmoid (not taken: the implicit GEMM). Against a direct loop in
    float64 as well as the reference, at the default tolerance."""
    def build(b, xs, p):
        x, = xs  # (None, 15, 12, 16)
        return [b.emit("relu", [b.emit("add", [conv(b, x, p((3, 3, 16, 24)), (1, 1), "same"), p((24,))])]),
                conv(b, x, p((3, 3, 16, 17)), (1, 1), "valid"),
                b.emit("sigmoid", [conv(b, x, p((3, 3, 16, 16)), (1, 1), "same")])]
    program = check(build, [(15, 12, 16)], rng, batches=(4, 5))
    xs = rng.uniform(-1, 1, (4, 15, 12, 16)).astype("float32")
    params = [w.value for w in program.param_keys]
    got = program.run([xs], params)
    kernel, bias = (v for v in params if v.ndim == 4 and v.shape[3] == 24), (v for v in params if v.ndim == 1)
    want = np.maximum(_naive_conv2d(xs.astype("float64"), next(kernel), next(bias), 1, [(1, 1), (1, 1)]), 0)
    np.testing.assert_allclose(got[0], want, rtol=1e-4, atol=1e-5)


# --- seed models ----------------------------------------------------------------------------------------------
SEED_CNNS = ["cnn_003", "shared_input_003", "multi_input_003", "encoder_002", "autoencoder_002",
             "nested_autoencoder_002", "toy_resnet_002", "dcgan_generator"]


@pytest.mark.parametrize("name", SEED_CNNS)
def test_seed_cnn_compiled_matches_reference(name, monkeypatch):
    model = seed_models.SEED_MODELS[name]()
    for batch in (1, 5):
        x = seed_models.random_inputs(model, batch=batch, rng=np.random.default_rng(batch))
        x = x if len(x) > 1 else x[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no fallback to the NumPy reference
            got = model.predict(x)
        monkeypatch.setenv("GRAPHC_BACKEND", "reference")
        want = model.predict(x)
        monkeypatch.delenv("GRAPHC_BACKEND")
        for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
    graph = model._compiled([np.asarray(a) for a in (x if isinstance(x, list) else [x])]).graph
    assert not {"conv", "conv_transpose"} & {op.kind for op in graph.ops}  # every conv got its epilogue
