"""Compiled recurrent ops (simple_rnn, lstm, gru; kernels/rnn.c) against the NumPy reference, and the seed
models that use them compiled against GRAPHC_BACKEND=reference.

Recurrent weights are scaled like Keras's initializers (rows of unit norm, so the recurrence is not chaotic):
with uniform(-1, 1) recurrent kernels of 100+ units the state's sensitivity to rounding grows every step, and
two float32 programs that merely sum in different orders disagree completely after a few hundred steps.
"""
import os
import re
import sys
import warnings

import numpy as np
import pytest

from graphc.codegen import CodegenError, generate_c
from graphc.ir import GraphBuilder, TensorType
from graphc.ir.ops.rnn import C_ACTIVATIONS, C_SCRATCH_FLOATS

from c_check import Weights, check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
CODES = {name: i for i, name in enumerate(C_ACTIVATIONS)}  # graphc_rnn.h's enum (checked below)


def cell(b, rng, kind, x, units, *, use_bias=True, reset_after=True, states=(), scale=1.0, **attrs):
    """Emit one recurrent op with Keras-like weights: kernel uniform(-0.5, 0.5), recurrent kernel rows of
    norm about ``scale``, bias uniform(-0.5, 0.5) (GRU with reset_after: (2, 3u))."""
    k, features = GATES[kind], x.shape[2]

    def param(shape, s):
        w = Weights((rng.uniform(-1, 1, shape) * s).astype("float32"))
        return b.param(w, f"w{len(b.params)}", TensorType(shape))

    ins = [x, param((features, k * units), 0.5), param((units, k * units), scale * np.sqrt(3.0 / units))]
    if use_bias:
        ins.append(param((2, 3 * units) if kind == "gru" and reset_after else (k * units,), 0.5))
    if kind == "gru":
        attrs["reset_after"] = reset_after
    return list(b.emit(kind, ins + list(states), units=units, use_bias=use_bias, **attrs))


def test_every_variant_at_batch_1_and_5(rng):
    """Each cell with and without sequences, backwards, bias; GRU with both reset conventions. 5 and 20
    units exercise the column edges of the small-batch tiles, batch 5 their four-row tile plus one row."""
    def build(b, x, p):
        outs = []
        for kind in GATES:
            for units in (5, 20):
                for seq, back, bias in [(False, False, True), (True, False, True), (True, True, False),
                                        (False, True, True)]:
                    for reset_after in ((True, False) if kind == "gru" else (True,)):
                        outs += cell(b, rng, kind, x[0], units, use_bias=bias, reset_after=reset_after,
                                     return_sequences=seq, go_backwards=back)
        return outs
    program = check(build, [(9, 3)], rng)
    source = program.generated.source
    assert all(f"graphc_{kind}(" in source for kind in GATES)
    assert "malloc" not in source


def test_initial_states_are_inputs(rng):
    def build(b, x, p):
        seq, h0, c0 = x
        return (cell(b, rng, "lstm", seq, 6, states=[h0, c0], return_sequences=True)
                + cell(b, rng, "lstm", seq, 6, states=[h0, c0], go_backwards=True)
                + cell(b, rng, "gru", seq, 6, states=[h0], return_sequences=True)
                + cell(b, rng, "gru", seq, 6, states=[h0], reset_after=False, go_backwards=True)
                + cell(b, rng, "simple_rnn", seq, 6, states=[h0], use_bias=False))
    check(build, [(7, 4), (6,), (6,)], rng)


def test_every_activation(rng):
    """Every activation the kernel knows, as activation and as recurrent_activation (small weights keep
    exp and relu finite)."""
    def build(b, x, p):
        outs = []
        for act in C_ACTIVATIONS:
            outs += cell(b, rng, "simple_rnn", x[0], 5, activation=act, scale=0.3, return_sequences=True)
            outs += cell(b, rng, "lstm", x[0], 4, activation="tanh", recurrent_activation=act, scale=0.3)
            outs += cell(b, rng, "gru", x[0], 4, activation=act, recurrent_activation="hard_sigmoid", scale=0.3)
        return outs
    check(build, [(4, 3)], rng, low=-1.0, high=1.0)


def test_saturated_gates_and_nan_propagate(rng):
    """Large inputs drive sigmoid/tanh into saturation (the kernel's own exp clamps its argument); a NaN
    in one sample stays in that sample and in the steps from where it enters."""
    def build(b, x, p):
        return (cell(b, rng, "lstm", x[0], 8, return_sequences=True)
                + cell(b, rng, "gru", x[0], 8, return_sequences=True, go_backwards=True))
    program = check(build, [(5, 2)], rng, low=-200.0, high=200.0)
    seq = rng.uniform(-1, 1, (3, 5, 2)).astype("float32")
    seq[1, 2, 0] = np.nan
    outs = program.run([seq], [w.value for w in program.param_keys])
    for out in outs:  # the NaN enters at processing step 2 both ways (5 steps)
        assert np.isfinite(out[[0, 2]]).all()
        assert np.isnan(out[1, 2:] if out.ndim == 3 else out[1]).all()
        assert out.ndim == 2 or np.isfinite(out[1, :2]).all()


def test_many_samples_blocks_chunks_and_threads(rng):
    """512 units leave room in the kernel's scratch for blocks of 16 samples and chunks of 8 steps: 37
    samples are split over threads and blocks, 20 steps over chunks (also going backwards), and the
    per-step product takes the packed GEMM (more than 8 rows)."""
    def build(b, x, p):
        return (cell(b, rng, "lstm", x[0], 512, return_sequences=True, go_backwards=True)
                + cell(b, rng, "gru", x[0], 512, reset_after=False, return_sequences=True)
                + cell(b, rng, "gru", x[0], 256, go_backwards=True)
                + cell(b, rng, "simple_rnn", x[0], 300, return_sequences=True))
    check(build, [(20, 4)], rng, batches=(37, 9))


def test_batch_1_chunks_of_a_long_sequence(rng):
    """At batch 1 a 512-unit LSTM projects 128 steps at a time: 150 steps take two chunks."""
    check(lambda b, x, p: cell(b, rng, "lstm", x[0], 512, return_sequences=True, go_backwards=True),
          [(150, 2)], rng, batches=(1, 2), low=0.0, high=1.0)


@pytest.fixture
def num_threads():
    """Sets the compiled code's thread count for one test (restored after it)."""
    from graphc.runtime import threads
    yield threads.set_num_threads
    threads.set_num_threads(threads.default_num_threads())
    threads._requested = None


@pytest.mark.parametrize("team", [1, 2, 3])
def test_projection_inside_each_step_product(rng, num_threads, team):
    """More than 8 samples on a thread take x_t and h side by side into one product per step with the kernel and
    the recurrent kernel packed as one (kernels/rnn.c run_rows_fused): LSTM and SimpleRNN, with and without bias
    and initial states, sequences and backwards; 84 gate columns end in a partial panel. 41 samples run on one
    thread or split 20 + 21 or 13 + 14 + 14 (the calls large enough for a team), 9 on one thread."""
    def build(b, x, p):
        seq, h0, c0, h0_wide = x
        return (cell(b, rng, "lstm", seq, 48, states=[h0, c0], return_sequences=True, go_backwards=True)
                + cell(b, rng, "lstm", seq, 21, use_bias=False)
                + cell(b, rng, "simple_rnn", seq, 128, states=[h0_wide], return_sequences=True)
                + cell(b, rng, "simple_rnn", seq, 128, use_bias=False, go_backwards=True))
    num_threads(team)
    check(build, [(10, 15), (48,), (48,), (128,)], rng, batches=(41, 9))


@pytest.mark.parametrize("team", [2, 3])
def test_fewer_samples_than_threads_share_the_units(rng, num_threads, team):
    """With fewer samples than threads, each thread takes a range of the units, the same columns of every
    gate (kernels/rnn.c run_units), and the threads meet once per step. 100 units split at multiples of 8
    (3 threads: 32 + 32 + 36; each thread's packed columns are 2-3 panels, the last partial, which the steps
    read in alternating order), states, sequences and both directions; a GRU without reset_after stays on
    the one-thread path (its candidate's product needs the whole r * h). Equal to the reference, and to
    the same program on one thread."""
    num_threads(team)

    def build(b, x, p):
        seq, h0, c0 = x
        return (cell(b, rng, "lstm", seq, 100, states=[h0, c0], return_sequences=True)
                + cell(b, rng, "lstm", seq, 100, go_backwards=True, use_bias=False)
                + cell(b, rng, "gru", seq, 100, states=[h0], return_sequences=True, go_backwards=True)
                + cell(b, rng, "gru", seq, 110, reset_after=False)
                + cell(b, rng, "simple_rnn", seq, 200, return_sequences=True))
    program = check(build, [(25, 3), (100,), (100,)], rng, batches=(1, 2))
    arrays = [rng.uniform(-2, 2, (1,) + s).astype("float32") for s in [(25, 3), (100,), (100,)]]
    params = [w.value for w in program.param_keys]
    shared = program.run(arrays, params)
    num_threads(1)
    for a, b in zip(shared, program.run(arrays, params)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_shared_units_over_chunks_of_a_long_sequence(rng, num_threads):
    """Two threads on one sample of a 512-unit LSTM: each projects its 1024 columns 256 steps at a time, so
    301 steps take two chunks (an odd count: the last h is copied back from the second buffer). Its columns
    of the recurrent kernel (1024 x 512 floats) are more than the kernel packs, so they are read in place;
    the 100-unit cells above take the packed columns."""
    num_threads(2)
    check(lambda b, x, p: cell(b, rng, "lstm", x[0], 512, return_sequences=True, go_backwards=True),
          [(301, 2)], rng, batches=(1,), low=0.0, high=1.0)


def test_seed_lstm_length_784(rng):
    """Seed 003's recurrence (784 steps of one pixel, LSTM(128)) and the other cells at the same length,
    at the default tolerance: with Keras-scaled weights the float32 error stays near 1e-6."""
    def build(b, x, p):
        return (cell(b, rng, "lstm", x[0], 128, return_sequences=True)
                + cell(b, rng, "gru", x[0], 32, go_backwards=True)
                + cell(b, rng, "simple_rnn", x[0], 16))
    check(build, [(784, 1)], rng, low=0.0, high=1.0)


PORTABLE_SOURCE = """/* kernels/rnn.c as a machine without AVX2 builds it (plain C tiles and activations), renamed */
#define GRAPHC_FORCE_PORTABLE 1
#define graphc_simple_rnn portable_simple_rnn
#define graphc_lstm portable_lstm
#define graphc_gru portable_gru
#define graphc_simple_rnn_scratch_floats portable_simple_rnn_scratch_floats
#define graphc_lstm_scratch_floats portable_lstm_scratch_floats
#define graphc_gru_scratch_floats portable_gru_scratch_floats
#define graphc_rnn_activate portable_rnn_activate
#include "rnn.c"
#undef graphc_rnn_activate
void graphc_rnn_activate(int activation, float *v, int64_t n); /* the kernels library's */
void library_rnn_activate(int activation, float *v, int64_t n) { graphc_rnn_activate(activation, v, n); }
"""
PORTABLE_CDEF = """
typedef struct graphc_scratch { float *base; size_t floats_per_thread; int nthreads; } graphc_scratch;
size_t portable_simple_rnn_scratch_floats(int64_t, int64_t, int, int);
size_t portable_lstm_scratch_floats(int64_t, int64_t, int, int);
size_t portable_gru_scratch_floats(int64_t, int64_t, int, int, int);
int portable_simple_rnn(int64_t, int64_t, int, int, int, int, const float *, const float *, const float *,
                        const float *, const float *, const float *, const float *, float *, float *,
                        const graphc_scratch *);
int portable_lstm(int64_t, int64_t, int, int, int, int, int, const float *, const float *, const float *,
                  const float *, const float *, const float *, const float *, const float *, float *, float *, float *,
                  const graphc_scratch *);
int portable_gru(int64_t, int64_t, int, int, int, int, int, int, const float *, const float *, const float *,
                 const float *, const float *, const float *, const float *, float *, float *, const graphc_scratch *);
void portable_rnn_activate(int, float *, int64_t);
void library_rnn_activate(int, float *, int64_t);
"""


@pytest.mark.parametrize("build", ["library", "portable"])
def test_activation_accuracy_and_special_values(build):
    """The kernel's own sigmoid (a polynomial exp) and tanh (a rational function), AVX2 intrinsics in the
    library here and plain C in the portable build, against float64: within a few float32 ulp over their whole
    range, and IEEE special values: NaN stays NaN, infinities saturate."""
    from graphc.ir.ops.elementwise import UNARY
    from graphc.runtime import compile_module
    module = compile_module(PORTABLE_SOURCE, PORTABLE_CDEF, name="rnn_portable")
    activate = getattr(module.lib, f"{build}_rnn_activate")
    grid = np.concatenate([np.linspace(-100, 100, 20001), np.linspace(-1, 1, 20001), [1e-30, -1e-30, 0.0, 88.5,
                                                                                        -88.5, 1e4, -1e4]])
    x = grid.astype("float32")
    # atol: exp underflows to 0 below float's normal range (sigmoid(-100) is 0, not 4e-44);
    # x / 6 + 0.5 rounds to float32's resolution near 0.5 (6e-8), 1 + erf(x) to that of 1 (gelu, as C_EXPR's)
    for name, rtol, atol in [("sigmoid", 4e-7, 1e-30), ("tanh", 4e-7, 1e-30), ("silu", 4e-7, 1e-30),
                             ("hard_sigmoid", 0, 6e-8), ("relu", 0, 0), ("softsign", 2e-7, 1e-30),
                             ("elu", 2e-7, 1e-30), ("gelu", 4e-7, 2e-7), ("softplus", 2e-7, 1e-30)]:
        v = x.copy()
        activate(CODES[name], module.ffi.from_buffer("float[]", v), v.size)
        want = UNARY[name](x.astype(np.float64)).astype(np.float64)
        np.testing.assert_allclose(v, want, rtol=rtol, atol=atol, err_msg=name)
    special = np.array([np.nan, np.inf, -np.inf] * 6, "float32")  # vector lanes and the scalar tail
    for name, want in [("sigmoid", [np.nan, 1, 0] * 6), ("tanh", [np.nan, 1, -1] * 6)]:
        v = special.copy()
        activate(CODES[name], module.ffi.from_buffer("float[]", v), v.size)
        np.testing.assert_array_equal(v, np.array(want, "float32"), err_msg=name)


def scratch_for(ffi, floats, nthreads):
    """A graphc_scratch of ``nthreads`` regions of ``floats`` (rounded to 16) floats, 64-byte aligned, followed by
    a NaN guard; returns (the struct pointer, the regions' array with the guard, what must stay alive)."""
    per = -(-floats // 16) * 16
    buf = np.full(per * nthreads + 16 + 64, np.nan, "float32")
    start = (-buf.ctypes.data % 64) // 4
    regions = buf[start:]
    s = ffi.new("graphc_scratch *", {"base": ffi.cast("float *", regions.ctypes.data), "floats_per_thread": per,
                                     "nthreads": nthreads})
    return s, regions[per * nthreads:per * nthreads + 16], buf


@pytest.mark.parametrize("kind,reset_after", [("simple_rnn", True), ("lstm", True), ("gru", True), ("gru", False)])
def test_portable_kernel_against_the_reference(rng, kind, reset_after):
    """The plain C path (ARM and other non-AVX2 machines) on every variant, called directly with scratch of
    the size its sizing function gives (on two threads), which the call does not overstep; the last case with a
    mask (padding at either end and inside)."""
    from graphc.ir import OPS
    from graphc.runtime import compile_module
    module = compile_module(PORTABLE_SOURCE, PORTABLE_CDEF, name="rnn_portable")
    ffi, fn = module.ffi, getattr(module.lib, f"portable_{kind}")
    k, units, steps, features = GATES[kind], 21, 6, 3
    f32 = lambda *shape: rng.uniform(-1, 1, shape).astype("float32")  # noqa: E731
    kernel, recurrent = f32(features, k * units) * 0.5, f32(units, k * units) * np.float32(np.sqrt(3 / units))
    ptr = lambda a: ffi.NULL if a is None else ffi.from_buffer("float[]", a)  # noqa: E731
    for n, seq, back, bias in [(1, True, False, True), (5, False, True, True), (9, True, True, False)]:
        x, b = f32(n, steps, features), (f32(2, 3 * units) if kind == "gru" and reset_after else f32(k * units))
        b = b if bias else None
        states = [f32(n, units) for _ in range(2 if kind == "lstm" else 1)] if n == 5 else []
        attrs = dict(units=units, use_bias=bias, return_sequences=seq, go_backwards=back)
        attrs.update({"reset_after": reset_after} if kind == "gru" else {})
        mask = None
        if n == 9:
            mask = (rng.uniform(size=(n, steps)) > 0.3).astype("float32")
            mask[0, :2], mask[1, -2:], mask[2] = 0, 0, 0
            attrs["masked"] = True
        want = OPS[kind].reference(*[a for a in (x, kernel, recurrent, b, mask) if a is not None], *states, **attrs)
        got = [np.zeros_like(w) for w in want]
        outs = [ptr(got[0]) if seq else ffi.NULL] + [ptr(a) for a in got[1:]]
        acts = [CODES["tanh"]] + ([CODES["sigmoid"]] if kind != "simple_rnn" else [])
        flags = [int(back)] + ([int(reset_after)] if kind == "gru" else [])
        init = [ptr(s) for s in states] or [ffi.NULL] * (2 if kind == "lstm" else 1)
        floats = getattr(module.lib, f"portable_{kind}_scratch_floats")(n, steps, features, units, *flags[1:])
        scratch, guard, keep = scratch_for(ffi, floats, 2)
        assert 0 < floats < 16384  # sized for the problem: tens of KB here (it was 2 MB per thread)
        assert fn(n, steps, features, units, *acts, *flags, ptr(x), ptr(kernel), ptr(recurrent), ffi.NULL, ptr(b),
                  *init, ptr(mask), *outs, scratch) == 0
        assert np.isnan(guard).all(), "the kernel wrote past its scratch"
        del keep
        if not seq:
            got[0] = got[1]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


def _lstm_graph(units, activation="tanh"):
    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3, 2)))
    ins = [x] + [b.param(Weights(None), n, TensorType(s)) for n, s in
                 [("k", (2, 4 * units)), ("r", (units, 4 * units)), ("b", (4 * units,))]]
    b.scope = "lstm_7"
    return b.finish([b.emit("lstm", ins, units=units, activation=activation, use_bias=True)[0]])


def test_unsupported_activation_is_reported():
    with pytest.raises(CodegenError, match=r"cannot lower lstm of layer 'lstm_7' to C: lstm: activation='log' "
                                           r"has no C implementation in the recurrent kernel; supported: "):
        generate_c(_lstm_graph(4, activation="log"))


def test_constants_match_the_header_and_the_scratch_limit_is_reported():
    header = open(os.path.join(ROOT, "kernels", "graphc_rnn.h")).read()
    assert int(re.search(r"#define GRAPHC_RNN_SCRATCH_FLOATS (\d+)", header).group(1)) == C_SCRATCH_FLOATS
    enum = re.findall(r"(GRAPHC_RNN_ACT_\w+)", header[header.index("enum {"):])
    assert "GRAPHC_RNN_ACT_IDENTITY = 0," in header
    assert enum == list(C_ACTIVATIONS.values())  # so CODES above are the C values
    units = C_SCRATCH_FLOATS // 4
    assert "graphc_lstm(" in generate_c(_lstm_graph(units)).source
    with pytest.raises(CodegenError, match=r"lstm: units=65537 needs 262148 floats of scratch"):
        generate_c(_lstm_graph(units + 1))


# --- seed models: compiled C against the NumPy reference ---------------------------------------------------------
sys.path.insert(0, os.path.join(ROOT, "examples"))
import seed_models  # noqa: E402


@pytest.mark.parametrize("name", ["rnn_003", "shared_feature_extractor_003", "multi_output_003",
                                  "question_answering_001", "ticket_model_002"])
def test_seed_models_compile(name, monkeypatch):
    model = seed_models.SEED_MODELS[name]()
    x = seed_models.random_inputs(model, batch=3, seq_len=13)
    x = x if len(x) > 1 else x[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "runs on the NumPy reference executor" fails the test
        got = model.predict(x, verbose=0)
    monkeypatch.setenv("GRAPHC_BACKEND", "reference")
    want = model.predict(x, verbose=0)
    for g, w in zip(got if isinstance(got, list) else [got], want if isinstance(want, list) else [want]):
        assert g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
