"""Kernel scratch memory comes from the caller's arena (kernels/graphc_kernels.h, graphc_scratch): the kernels
hold no thread-local or static buffers, generated code sizes ``arena_bytes(batch, nthreads)`` for the problem
and the thread count, and a call's kernels stay inside the arena they are given whatever OpenMP's count is."""
import re
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc.ir import GraphBuilder, TensorType, reference
from graphc.runtime import compile_graph, threads

from c_check import Weights

KERNELS = Path(__file__).resolve().parent.parent / "kernels"


def test_kernels_keep_no_state_and_allocate_nothing():
    for path in sorted(KERNELS.glob("*.[ch]")):
        text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)  # comments may name them
        for word in ["_Thread_local", "__thread", "declspec(thread)", "malloc(", "calloc(", "realloc(", "free("]:
            assert word not in text, f"{path.name} uses {word}"
        # file-scope data is const (the micro-kernel tables): a static data definition has no parenthesis
        # before its ';', '=' or '['
        mutable = [line for line in text.splitlines() if re.match(r"static\s+(?!const\b)(?!inline\b)[^(]*[;=\[]", line)]
        assert not mutable, f"{path.name} has static mutable data: {mutable}"


def _graph(rng):
    """A dense layer, a convolution, a transposed convolution and an LSTM, each large enough at batch 64 for
    its kernel (and the GEMMs inside) to split the work between threads."""
    b = GraphBuilder()
    ws = []

    def p(shape, scale=0.5):
        ws.append(Weights((rng.uniform(-1, 1, shape) * scale).astype("float32")))
        return b.param(ws[-1], f"w{len(ws)}", TensorType(shape))

    v, img, seq = (b.input("v", TensorType((None, 256))), b.input("img", TensorType((None, 12, 12, 8))),
                   b.input("seq", TensorType((None, 8, 6))))
    dense = b.emit("dense", [v, p((256, 384)), p((384,))], activation="relu")
    conv = b.emit("conv", [img, p((3, 3, 8, 16))], strides=(1, 1), padding="same", dilation=(1, 1), groups=1)
    up = b.emit("conv_transpose", [conv, p((2, 2, 4, 16))], strides=(2, 2), padding="valid", output_padding=None,
                dilation=(1, 1))
    lstm = b.emit("lstm", [seq, p((6, 256)), p((64, 256), 0.2), p((256,))], units=64, return_sequences=True)[0]
    return b.finish([dense, conv, up, lstm])


@pytest.fixture
def two_threads():
    before = graphc.get_num_threads()
    graphc.set_num_threads(2)
    yield
    graphc.set_num_threads(before)


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_a_call_stays_inside_an_arena_of_arena_bytes(rng, two_threads, nthreads):
    """The run function called directly with an arena of exactly arena_bytes(batch, nthreads) bytes followed by a
    guard, while OpenMP has 2 threads: the results match the reference and the guard is untouched (with
    nthreads 1 the kernels must not use a second thread's scratch; with 3 they use at most 2)."""
    graph = _graph(rng)
    program = compile_graph(graph)
    lib, ffi, prefix = program.module.lib, program.ffi, program.generated.prefix
    batch = 64
    arrays = [rng.uniform(-1, 1, (batch,) + tuple(v.type.shape[1:])).astype("float32") for v in graph.inputs]
    params = [graph.param_keys[v.id].value for v in graph.params]
    want = reference.run(graph, {v.id: a for v, a in zip(graph.inputs, arrays)},
                         {v.id: w for v, w in zip(graph.params, params)})
    need = getattr(lib, f"{prefix}_arena_bytes")(batch, nthreads)
    guard = 1 << 16
    raw = np.empty(need + guard + 64, np.uint8)
    arena = raw[(-raw.ctypes.data) % 64:][:need + guard]
    arena[need:] = 0xA5
    outs = [np.empty(w.shape, np.float32) for w in want]
    ptrs = lambda xs: ffi.new("void *[]", [ffi.from_buffer(x) for x in xs])  # noqa: E731
    with threads.share_of_threads():
        rc = getattr(lib, f"{prefix}_run")(batch, ptrs(arrays), ptrs(outs), ptrs(params), ffi.from_buffer(arena),
                                           nthreads)
    assert rc == 0
    assert (arena[need:] == 0xA5).all(), "a kernel wrote past the arena"
    for g, w in zip(outs, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def test_arena_bytes_is_the_plan_plus_a_scratch_region_per_thread(rng):
    graph = _graph(rng)
    program = compile_graph(graph)
    plan = program.generated.plan
    assert "graphc_scratch scratch;" in program.generated.source
    for batch in (1, 7, 64):
        per_thread = program.arena_bytes(batch, 2) - program.arena_bytes(batch, 1)
        assert per_thread > 0 and per_thread % 64 == 0
        planned = -(-plan.arena_bytes(batch) // 64) * 64
        for n in (1, 2, 5):
            assert program.arena_bytes(batch, n) == planned + n * per_thread
        assert program.arena_bytes(batch, 0) == program.arena_bytes(batch, -3) == program.arena_bytes(batch, 1)
    # sized for the problem: less at batch 1 than at batch 64, and bounded by the kernels' block sizes (a GEMM
    # packs at most ~1.8 MB, a convolution adds 512 KB of patches, an LSTM 1 MB of projections + 1 MB packed)
    small = program.arena_bytes(1, 2) - program.arena_bytes(1, 1)
    assert small < program.arena_bytes(64, 2) - program.arena_bytes(64, 1) < 4 << 20


def test_small_models_need_little_scratch_and_the_report_shows_it(two_threads):
    from graphc import layers
    x = graphc.Input((784,))
    model = graphc.Model(x, layers.Dense(10)(layers.Dense(128, activation="relu")(x)))
    report = model.memory_report(batch_size=1)
    assert report["arena_bytes"] == (128 + 16) * 4  # the planned intermediates only (10 -> 16 aligned)
    assert report["threads"] == (2 if threads.openmp_enabled() else 1)
    assert 0 < report["scratch_bytes"] <= report["threads"] * 16 * 1024  # a few KB per thread, not megabytes
    big = model.memory_report(batch_size=256)
    assert report["scratch_bytes"] < big["scratch_bytes"] <= big["threads"] * (2 << 20)


def test_graphs_without_scratch_kernels_ignore_the_thread_count():
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 5)))
    program = compile_graph(b.finish([b.emit("tanh", [x])]))
    assert "graphc_scratch" not in program.generated.source
    assert program.arena_bytes(9, 1) == program.arena_bytes(9, 4)
    assert program.memory_report(9)["scratch_bytes"] == 0
    np.testing.assert_allclose(program.run([np.ones((2, 5), np.float32)], [])[0], np.tanh(np.ones((2, 5))),
                               rtol=1e-6)
