"""Whole-sequence recurrent ops: ``simple_rnn``, ``lstm``, ``gru``.

One op runs a layer over all timesteps (not one op per step), so codegen can compute the
input projection of every timestep with one GEMM and keep the recurrence in one kernel.

Inputs, in order: x (N, T, F) (T may be None), kernel (F, k*u), recurrent_kernel (u, k*u),
bias (only when ``use_bias``), then the initial states (all of them, or none for zeros).
Outputs: (output, h_last) for simple_rnn and gru, (output, h_last, c_last) for lstm; output is
(N, T, u) with ``return_sequences`` (in processing order, so reversed in time with
``go_backwards``, as Keras returns it), else (N, u).
With ``masked`` the last input is a (N, T) float mask (1: a step, 0: padding, in time order): at a masked
step the states carry over unchanged and the output repeats the state, as Keras's recurrent layers do with
a mask (and zero initial states, the only ones graphc combines with a mask).
Weight layouts and gate order follow Keras 3: LSTM gates i, f, c, o; GRU gates z, r, h, and
with ``reset_after`` the GRU bias is (2, 3u): the input bias, then the recurrent bias.
Activations are names of rows of the elementwise UNARY table.
"""
from __future__ import annotations

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType, dims_compatible, is_float
from .elementwise import UNARY

# op name -> (gates k, number of states)
CELLS = {"simple_rnn": (1, 1), "lstm": (4, 2), "gru": (3, 1)}


def bias_shape(kind: str, units: int, reset_after: bool = False) -> tuple:
    if kind == "gru" and reset_after:
        return (2, 3 * units)
    return (CELLS[kind][0] * units,)


def split_inputs(kind: str, arrays, use_bias: bool):
    """(x, kernel, recurrent_kernel, bias or None, [states]) from an op's input list."""
    arrays = list(arrays)
    fixed = 4 if use_bias else 3
    n_states = CELLS[kind][1]
    if len(arrays) not in (fixed, fixed + n_states):
        what = "x, kernel, recurrent_kernel" + (", bias" if use_bias else "")
        raise ShapeError(f"{kind} takes {what} and optionally {n_states} initial state(s): "
                         f"{fixed} or {fixed + n_states} inputs, received {len(arrays)}")
    x, kernel, recurrent = arrays[:3]
    bias = arrays[3] if use_bias else None
    return x, kernel, recurrent, bias, arrays[fixed:]


def split_mask(arrays, masked):
    """(the inputs without the mask, the mask or None): with ``masked`` the last input is the mask."""
    arrays = list(arrays)
    return (arrays[:-1], arrays[-1]) if masked else (arrays, None)


def _check_activation(kind, attr, name):
    if name not in UNARY:
        raise ShapeError(f"{kind}: {attr}={name!r} is not an elementwise op; expected one of {sorted(UNARY)}")


def _infer(kind, types, *, units, use_bias, return_sequences, reset_after=False, masked=False, **activations):
    for attr, name in activations.items():
        _check_activation(kind, attr, name)
    k = CELLS[kind][0]
    types, mask = split_mask(types, masked)
    x, kernel, recurrent, bias, states = split_inputs(kind, types, use_bias)
    if x.rank != 3:
        raise ShapeError(f"{kind} expects x of shape (batch, timesteps, features), received {x.shape}")
    if not is_float(x.dtype):
        raise ShapeError(f"{kind} expects a floating-point sequence, received dtype {x.dtype}")
    expected = [("kernel", kernel, (x.shape[2], k * units)), ("recurrent_kernel", recurrent, (units, k * units))]
    if bias is not None:
        expected.append(("bias", bias, bias_shape(kind, units, reset_after)))
    expected += [(f"initial state {i}", s, (x.shape[0], units)) for i, s in enumerate(states)]
    if mask is not None:
        if states:
            raise ShapeError(f"{kind}: a mask with initial states is not supported (Keras applies no mask then)")
        expected.append(("mask", mask, (x.shape[0], x.shape[1])))
    for what, t, shape in expected:
        if t.rank != len(shape) or not all(dims_compatible(a, b) for a, b in zip(t.shape, shape)):
            raise ShapeError(f"{kind}: {what} must have shape {shape}, received {t.shape}")
        if t.dtype != x.dtype:
            raise ShapeError(f"{kind}: {what} has dtype {t.dtype}, the sequence has {x.dtype}")
    batch = x.shape[0]
    for s in states:  # a state may tell the batch size when x does not
        batch = batch if batch is not None else s.shape[0]
    out = (batch, x.shape[1], units) if return_sequences else (batch, units)
    last = TensorType((batch, units), x.dtype)
    return (TensorType(out, x.dtype),) + (last,) * CELLS[kind][1]


def _activation(name):
    fn = UNARY[name]
    # Keep float32 arithmetic float32 whatever the table row computes in.
    return lambda v: np.asarray(fn(v), dtype=v.dtype)


def _run(kind, arrays, units, use_bias, return_sequences, go_backwards, step, masked=False):
    """Shared loop: project all timesteps at once, then apply ``step`` per timestep (keeping the states of the
    masked samples)."""
    arrays, mask = split_mask(arrays, masked)
    x, kernel, recurrent, bias, states = split_inputs(kind, arrays, use_bias)
    n, t_len = x.shape[0], x.shape[1]
    if not states:
        states = [np.zeros((n, units), x.dtype) for _ in range(CELLS[kind][1])]
    steps = x[:, ::-1] if go_backwards else x
    projected = steps.transpose(1, 0, 2) @ kernel  # (T, N, k*u): one GEMM for the whole sequence
    if bias is not None:
        projected += bias if bias.ndim == 1 else bias[0]
    sequence = np.empty((n, t_len, units), x.dtype) if return_sequences else None
    states = [np.array(s, dtype=x.dtype) for s in states]
    keep = None if mask is None else (mask[:, ::-1] if go_backwards else mask) > 0  # (N, T), processing order
    for t in range(t_len):
        new = step(projected[t], states)
        states = new if keep is None else [np.where(keep[:, t:t + 1], a, b) for a, b in zip(new, states)]
        if sequence is not None:
            sequence[:, t] = states[0]
    output = sequence if return_sequences else states[0]
    return (output, *states)


def _simple_rnn_ref(*arrays, units, activation="tanh", use_bias=True, return_sequences=False,
                    go_backwards=False, masked=False):
    recurrent = arrays[2]
    act = _activation(activation)

    def step(xw, states):
        return [act(xw + states[0] @ recurrent)]

    return _run("simple_rnn", arrays, units, use_bias, return_sequences, go_backwards, step, masked)


def _lstm_ref(*arrays, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
              return_sequences=False, go_backwards=False, masked=False):
    recurrent, u = arrays[2], units
    act, ract = _activation(activation), _activation(recurrent_activation)

    def step(xw, states):
        h, c = states
        z = xw + h @ recurrent
        i, f, o = ract(z[:, :u]), ract(z[:, u:2 * u]), ract(z[:, 3 * u:])
        c = f * c + i * act(z[:, 2 * u:3 * u])
        return [o * act(c), c]

    return _run("lstm", arrays, units, use_bias, return_sequences, go_backwards, step, masked)


def _gru_ref(*arrays, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
             return_sequences=False, go_backwards=False, reset_after=True, masked=False):
    recurrent, u = arrays[2], units
    recurrent_bias = arrays[3][1] if use_bias and reset_after else 0
    act, ract = _activation(activation), _activation(recurrent_activation)

    def step(xw, states):
        h = states[0]
        if reset_after:  # reset gate applied to the projected state (cuDNN convention)
            hw = h @ recurrent + recurrent_bias
            z = ract(xw[:, :u] + hw[:, :u])
            r = ract(xw[:, u:2 * u] + hw[:, u:2 * u])
            candidate = act(xw[:, 2 * u:] + r * hw[:, 2 * u:])
        else:  # reset gate applied to the state before its projection
            hw = h @ recurrent[:, :2 * u]
            z = ract(xw[:, :u] + hw[:, :u])
            r = ract(xw[:, u:2 * u] + hw[:, u:2 * u])
            candidate = act(xw[:, 2 * u:] + (r * h) @ recurrent[:, 2 * u:])
        return [z * h + (1 - z) * candidate]

    return _run("gru", arrays, units, use_bias, return_sequences, go_backwards, step, masked)


def _simple_rnn_type(*types, units, activation="tanh", use_bias=True, return_sequences=False, go_backwards=False,
                     masked=False):
    return _infer("simple_rnn", types, units=units, use_bias=use_bias, return_sequences=return_sequences,
                  masked=masked, activation=activation)


def _lstm_type(*types, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
               return_sequences=False, go_backwards=False, masked=False):
    return _infer("lstm", types, units=units, use_bias=use_bias, return_sequences=return_sequences, masked=masked,
                  activation=activation, recurrent_activation=recurrent_activation)


def _gru_type(*types, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
              return_sequences=False, go_backwards=False, reset_after=True, masked=False):
    return _infer("gru", types, units=units, use_bias=use_bias, return_sequences=return_sequences, masked=masked,
                  reset_after=reset_after, activation=activation, recurrent_activation=recurrent_activation)


defop("simple_rnn", infer=_simple_rnn_type, reference=_simple_rnn_ref)
defop("lstm", infer=_lstm_type, reference=_lstm_ref)
defop("gru", infer=_gru_type, reference=_gru_ref)


# --- C lowering: one kernel call per op (kernels/rnn.c) ----------------------------------------------------------
# Elementwise op name -> the kernel's activation code (graphc_rnn.h); every Keras activation a recurrent
# layer accepts is here.
C_ACTIVATIONS = {"identity": "GRAPHC_RNN_ACT_IDENTITY", "tanh": "GRAPHC_RNN_ACT_TANH",
                 "sigmoid": "GRAPHC_RNN_ACT_SIGMOID", "hard_sigmoid": "GRAPHC_RNN_ACT_HARD_SIGMOID",
                 "relu": "GRAPHC_RNN_ACT_RELU", "relu6": "GRAPHC_RNN_ACT_RELU6", "exp": "GRAPHC_RNN_ACT_EXP",
                 "elu": "GRAPHC_RNN_ACT_ELU", "selu": "GRAPHC_RNN_ACT_SELU", "softplus": "GRAPHC_RNN_ACT_SOFTPLUS",
                 "softsign": "GRAPHC_RNN_ACT_SOFTSIGN", "silu": "GRAPHC_RNN_ACT_SILU",
                 "gelu": "GRAPHC_RNN_ACT_GELU", "leaky_relu": "GRAPHC_RNN_ACT_LEAKY_RELU"}
# Floats of the kernel's largest block of projections (GRAPHC_RNN_SCRATCH_FLOATS in graphc_rnn.h).
C_SCRATCH_FLOATS = 262144


def _scratch_floats(kind, units, reset_after):
    """Scratch one sample needs for one step: its projection (k * units), plus the GRU's step buffer (the
    recurrent projection with reset_after, r * h without)."""
    k = CELLS[kind][0]
    return k * units + ((k * units if reset_after else units) if kind == "gru" else 0)


def _c_activation(kind, attr, name):
    if name not in C_ACTIVATIONS:
        raise ValueError(f"{kind}: {attr}={name!r} has no C implementation in the recurrent kernel; "
                         f"supported: {sorted(C_ACTIVATIONS)}")
    return C_ACTIVATIONS[name]


def _rnn_c(ctx, op):
    kind, attrs = op.kind, op.attrs
    units, use_bias = attrs["units"], attrs.get("use_bias", True)
    inputs, mask = split_mask(op.inputs, attrs.get("masked", False))
    x, kernel, recurrent, bias, states = split_inputs(kind, inputs, use_bias)
    if x.dtype != "float32":
        raise ValueError(f"{kind}: the C kernel computes in float32, the sequence is {x.dtype}")
    need = _scratch_floats(kind, units, attrs.get("reset_after", True))
    if need > C_SCRATCH_FLOATS:
        raise ValueError(f"{kind}: units={units} needs {need} floats of scratch per sample and step, more than "
                         f"the kernel's {C_SCRATCH_FLOATS}")
    def ptr(v):
        return ctx.ptr(v) if v is not None else "NULL"

    out, last = op.outputs[0], op.outputs[1]
    seq = ctx.ptr(out) if attrs.get("return_sequences", False) else "NULL"
    acts = [_c_activation(kind, "activation", attrs.get("activation", "tanh"))]
    if kind != "simple_rnn":
        acts.append(_c_activation(kind, "recurrent_activation", attrs.get("recurrent_activation", "sigmoid")))
    flags = [str(int(attrs.get("go_backwards", False)))]
    if kind == "gru":
        flags.append(str(int(attrs.get("reset_after", True))))
    h0 = [ptr(states[0]) if states else "NULL"]
    c0 = [ptr(states[1]) if states else "NULL"] if kind == "lstm" else []
    results = [seq, ctx.ptr(last)] + ([ctx.ptr(op.outputs[2])] if kind == "lstm" else [])
    sizes = [f"(int64_t)({ctx.dim(x, 0)})", ctx.dim(x, 1), ctx.dim(x, 2), str(units)]
    scratch = ctx.scratch(f"graphc_{kind}_scratch_floats({', '.join(sizes + flags[1:])})")
    gates = CELLS[kind][0]
    # packed once per set of weights: the threads that share a few samples' units read their columns from it
    packed = ctx.prepared_param(recurrent, f"graphc_rnn_packed_recurrent_floats({units}, {gates})",
                                f"graphc_rnn_pack_recurrent({units}, {gates}, {{src}}, {{dst}});",
                                f"{op.scope or kind}: recurrent kernel, packed for the per-step products")
    args = [*sizes, *acts, *flags, ctx.ptr(x), ctx.ptr(kernel), ctx.ptr(recurrent), packed, ptr(bias), *h0, *c0,
            ptr(mask), *results, scratch]
    lines = [f"if (graphc_{kind}({', '.join(args)}) != 0) return -1;"]
    if seq == "NULL":  # output 0 is the last state too
        lines.append(f"memcpy({ctx.ptr(out)}, {ctx.ptr(last)}, (size_t)({ctx.numel(last)}) * sizeof(float));")
    return lines


for _kind in CELLS:
    OPS[_kind].lower_c = _rnn_c
