"""Training forms and gradients (backprop through time) of the recurrent ops.

``<kind>_train`` (kind: simple_rnn, lstm, gru) takes the inputs and attributes of ``<kind>`` and returns
its outputs followed by what the backward pass reads, so the backward never reruns the recurrence:
  hp (N, T, u)   the state h entering each timestep,
  cs (N, T, u)   LSTM only: the cell state after each timestep,
  zs (N, T, k*u) every gate's pre-activation (a GRU's candidate includes its reset term); for an LSTM
                 with Keras's default activations (tanh, sigmoid) the gates' activations instead, which are
                 all the backward needs of them (`keeps_gates`),
  aux (N, T, u)  GRU only: with reset_after h_prev @ U_h + b_rh (what r multiplies), else r * h_prev.
The saved tensors are indexed by timestep in time order (not processing order), so with go_backwards the
input projection and the weight gradients stay single GEMMs over contiguous rows.

With ``recurrent_masked`` (recurrent_dropout in training) both ops take one more input after the others,
rdrop (N, k, u): each gate's dropout mask of the state entering its recurrent product (split_rdrop).

``<kind>_grad`` takes ``<kind>``'s inputs, the saved tensors and the gradients of ``<kind>``'s outputs, and
returns one gradient per ``<kind>`` input (x, kernel, recurrent_kernel, [bias], [initial states]),
then scratch the C kernel writes: dzs (N, T, k*u), the gradients of the pre-activations (for a GRU the
input side's), and for a GRU with reset_after daux (N, T, u), the recurrent side's candidate gradient
(dzs's candidate block times r). kernel, recurrent_kernel and bias gradients are GEMMs over dzs.
"""
from __future__ import annotations

import math

import numpy as np

from ..registry import OPS, defop
from ..types import ShapeError, TensorType
from .elementwise import SELU_ALPHA, SELU_SCALE, _erf, _sigmoid
from .rnn import C_ACTIVATIONS, CELLS, _activation, _c_activation, split_inputs, split_mask

# kind -> names of the saved tensors (outputs of <kind>_train after <kind>'s own outputs)
SAVED = {"simple_rnn": ("hp", "zs"), "lstm": ("hp", "cs", "zs"), "gru": ("hp", "zs", "aux")}
DEFAULTS = {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "return_sequences": False,
            "go_backwards": False, "reset_after": True, "masked": False, "recurrent_masked": False}


def split_rdrop(arrays, recurrent_masked):
    """(the other inputs, the recurrent dropout masks or None): with ``recurrent_masked`` the last input of a
    _train or _grad op's forward inputs is rdrop (N, k, u), gate g's product with the recurrent kernel taking
    h * rdrop[:, g] (Keras's implementation 1; a GRU's candidate without reset_after r * (h * rdrop[:, 2]))."""
    arrays = list(arrays)
    return (arrays[:-1], arrays[-1]) if recurrent_masked else (arrays, None)


def state_products(h, recurrent, rdrop, g0, g1, units):
    """h @ the columns of gates [g0, g1) of the recurrent kernel, each gate's with h masked by its rdrop."""
    if rdrop is None:
        return h @ recurrent[:, g0 * units:g1 * units]
    return np.concatenate([(h * rdrop[:, g]) @ recurrent[:, g * units:(g + 1) * units] for g in range(g0, g1)], 1)


def state_grads(d, recurrent, rdrop, g0, g1, units):
    """The gradient reaching h through state_products, d being those gates' gradients."""
    if rdrop is None:
        return d @ recurrent[:, g0 * units:g1 * units].T
    return sum((d[:, (g - g0) * units:(g - g0 + 1) * units] @ recurrent[:, g * units:(g + 1) * units].T) * rdrop[:, g]
               for g in range(g0, g1))


def state_weight_grads(hp, d, rdrop, g0, g1, units):
    """The recurrent kernel's gradient of gates [g0, g1) over all rows: hp^T @ d, per gate with hp masked."""
    rows = lambda v: v.reshape(-1, v.shape[-1])  # noqa: E731
    if rdrop is None:
        return rows(hp).T @ rows(d)
    return np.concatenate([rows(hp * rdrop[:, None, g]).T @ rows(d)[:, (g - g0) * units:(g - g0 + 1) * units]
                           for g in range(g0, g1)], 1)


def num_outputs(kind: str) -> int:
    """Outputs of the plain op: the output and the final state(s)."""
    return 1 + CELLS[kind][1]


def _attrs(attrs):
    return {**DEFAULTS, **attrs}


# d act(x) / dx from x and y = act(x); the same conventions as the elementwise ops' gradient rules
ACT_GRADS = {
    "identity": lambda x, y: np.ones_like(x),
    "tanh": lambda x, y: 1 - y * y,
    "sigmoid": lambda x, y: y * (1 - y),
    "hard_sigmoid": lambda x, y: np.where((x > -3) & (x < 3), 1 / 6, 0.0),
    "relu": lambda x, y: (x > 0) * 1.0,
    "relu6": lambda x, y: ((x > 0) & (x < 6)) * 1.0,
    "exp": lambda x, y: y,
    "elu": lambda x, y: np.where(x > 0, 1.0, y + 1),
    "selu": lambda x, y: np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA),
    "softplus": lambda x, y: _sigmoid(x),
    "softsign": lambda x, y: 1 / np.square(1 + np.abs(x)),
    "silu": lambda x, y: (lambda s: s * (1 + x * (1 - s)))(_sigmoid(x)),
    "gelu": lambda x, y: (0.5 * (1 + _erf(x.astype(np.float64) / math.sqrt(2)).astype(np.float64))
                          + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)),
    "leaky_relu": lambda x, y: np.where(x >= 0, 1.0, 0.2),
}
assert set(ACT_GRADS) == set(C_ACTIVATIONS)


def _act_pair(name):
    """(activation, g * derivative) for a recurrent activation, keeping the input's dtype."""
    if name not in ACT_GRADS:
        raise ShapeError(f"recurrent ops have no gradient for activation {name!r}; supported: {sorted(ACT_GRADS)}")
    act, d = _activation(name), ACT_GRADS[name]
    return act, lambda g, x, y: np.asarray(g * d(x, y), dtype=g.dtype)


# --- shape rules ---------------------------------------------------------------------------------------------------
def _train_type(kind):
    def infer(*types, **attrs):
        attrs = dict(attrs)
        types, rdrop = split_rdrop(types, attrs.pop("recurrent_masked", False))
        outs = OPS[kind].infer(*types, **attrs)
        x = types[0]
        if rdrop is not None:
            want = (x.shape[0], CELLS[kind][0], attrs["units"])
            if rdrop.rank != 3 or not all(a is None or b is None or a == b for a, b in zip(rdrop.shape, want)) \
                    or rdrop.dtype != x.dtype:
                raise ShapeError(f"{kind}_train: the recurrent dropout masks must be {x.dtype} of shape {want}, "
                                 f"received {rdrop.dtype} {rdrop.shape}")
        g = CELLS[kind][0] * attrs["units"]
        seq = lambda width: TensorType((outs[1].shape[0], x.shape[1], width), x.dtype)  # noqa: E731
        saved = {"hp": seq(attrs["units"]), "cs": seq(attrs["units"]), "zs": seq(g), "aux": seq(attrs["units"])}
        return tuple(outs) + tuple(saved[name] for name in SAVED[kind])
    return infer


def split_grad_inputs(kind, arrays):
    """A <kind>_grad input list -> (<kind>'s inputs, saved tensors, output gradients)."""
    arrays = list(arrays)
    n_saved, n_out = len(SAVED[kind]), num_outputs(kind)
    if len(arrays) < 3 + n_saved + n_out:
        raise ShapeError(f"{kind}_grad takes {kind}'s inputs, {n_saved} saved tensors and {n_out} output "
                         f"gradients, received {len(arrays)} inputs")
    return arrays[:-(n_saved + n_out)], arrays[-(n_saved + n_out):-n_out], arrays[-n_out:]


def _grad_type(kind):
    def infer(*types, **attrs):
        fwd, saved, grads = split_grad_inputs(kind, types)
        for attr in ("activation", "recurrent_activation"):
            if _attrs(attrs)[attr] not in ACT_GRADS:
                raise ShapeError(f"{kind}_grad: no gradient for {attr}={_attrs(attrs)[attr]!r}; "
                                 f"supported: {sorted(ACT_GRADS)}")
        expected = _train_type(kind)(*fwd, **attrs)
        for what, t, e in zip([*SAVED[kind], *(f"gradient of output {i}" for i in range(len(grads)))],
                              [*saved, *grads], [*expected[len(grads):], *expected[:len(grads)]]):
            if t.rank != e.rank or any(a is not None and b is not None and a != b for a, b in zip(t.shape, e.shape)):
                raise ShapeError(f"{kind}_grad: {what} must have shape {e.shape}, received {t.shape}")
        x = fwd[0]
        scratch = [TensorType((x.shape[0], x.shape[1], CELLS[kind][0] * attrs["units"]), x.dtype)]
        if kind == "gru" and _attrs(attrs)["reset_after"]:
            scratch.append(TensorType((x.shape[0], x.shape[1], attrs["units"]), x.dtype))
        differentiable = split_mask(split_rdrop(fwd, _attrs(attrs)["recurrent_masked"])[0],
                                    _attrs(attrs)["masked"])[0]  # (the masks have no gradient)
        return tuple(TensorType(t.shape, t.dtype) for t in differentiable) + tuple(scratch)
    return infer


# --- NumPy references ----------------------------------------------------------------------------------------------
def _timesteps(t_len, backwards):
    """Processing step s -> timestep t."""
    return [t_len - 1 - s if backwards else s for s in range(t_len)]


def keeps_gates(kind, attrs):
    """Whether <kind>_train saves the gates' activations in zs, not their pre-activations: an LSTM whose
    activations' derivatives need only their values (tanh, sigmoid), so the backward skips recomputing them."""
    return kind == "lstm" and attrs["activation"] == "tanh" and attrs["recurrent_activation"] == "sigmoid"


def _train_ref(kind):
    def ref(*arrays, units, **attrs):
        a = _attrs(attrs)
        arrays, rdrop = split_rdrop(arrays, a["recurrent_masked"])
        arrays, mask = split_mask(arrays, a["masked"])
        x, kernel, recurrent, bias, states = split_inputs(kind, arrays, a["use_bias"])
        n, t_len, u, dt = x.shape[0], x.shape[1], units, x.dtype
        act, ract = _activation(a["activation"]), _activation(a["recurrent_activation"])
        zs = x @ kernel  # (N, T, G): the input projection of every timestep
        if bias is not None:
            zs += bias if bias.ndim == 1 else bias[0]
        h = np.array(states[0], dt) if states else np.zeros((n, u), dt)
        c = (np.array(states[1], dt) if states else np.zeros((n, u), dt)) if kind == "lstm" else None
        hp, cs, aux = (np.zeros((n, t_len, u), dt) for _ in range(3))
        seq = np.zeros((n, t_len, u), dt)
        for s, t in enumerate(_timesteps(t_len, a["go_backwards"])):
            hp[:, t] = h_in = h
            c_in = c
            z = zs[:, t]  # a view: the pre-activations are completed in place
            if kind == "simple_rnn":
                z += state_products(h, recurrent, rdrop, 0, 1, u)
                h = act(z)
            elif kind == "lstm":
                z += state_products(h, recurrent, rdrop, 0, 4, u)
                i, f, g, o = ract(z[:, :u]), ract(z[:, u:2 * u]), act(z[:, 2 * u:3 * u]), ract(z[:, 3 * u:])
                c = f * c + i * g
                h = o * act(c)
                if keeps_gates(kind, a):
                    z[:] = np.concatenate([i, f, g, o], 1)
            else:
                if a["reset_after"]:
                    hw = state_products(h, recurrent, rdrop, 0, 3, u) + (bias[1] if bias is not None else 0)
                    z[:, :2 * u] += hw[:, :2 * u]
                    aux[:, t] = hw[:, 2 * u:]
                    z[:, 2 * u:] += ract(z[:, u:2 * u]) * aux[:, t]
                else:
                    z[:, :2 * u] += state_products(h, recurrent, rdrop, 0, 2, u)
                    aux[:, t] = ract(z[:, u:2 * u]) * (h if rdrop is None else h * rdrop[:, 2])
                    z[:, 2 * u:] += aux[:, t] @ recurrent[:, 2 * u:]
                gz = ract(z[:, :u])
                h = gz * h + (1 - gz) * act(z[:, 2 * u:])
            if mask is not None:  # masked samples keep their states
                keep = mask[:, t:t + 1] > 0
                h = np.where(keep, h, h_in)
                c = np.where(keep, c, c_in) if c is not None else None
            if kind == "lstm":
                cs[:, t] = c
            seq[:, s] = h
        out = seq if a["return_sequences"] else h
        last = (h, c) if kind == "lstm" else (h,)
        saved = {"hp": hp, "cs": cs, "zs": zs, "aux": aux}
        return (out, *last, *(saved[name] for name in SAVED[kind]))
    return ref


def _grad_ref(kind):
    def ref(*arrays, units, **attrs):
        a = _attrs(attrs)
        fwd, saved, grads = split_grad_inputs(kind, arrays)
        fwd, rdrop = split_rdrop(fwd, a["recurrent_masked"])
        fwd, mask = split_mask(fwd, a["masked"])
        x, kernel, recurrent, bias, states = split_inputs(kind, fwd, a["use_bias"])
        saved = dict(zip(SAVED[kind], saved))
        hp, zs, cs, aux = saved["hp"], saved["zs"], saved.get("cs"), saved.get("aux")
        dout = grads[0]
        n, t_len, u, dt = x.shape[0], x.shape[1], units, x.dtype
        act, dact = _act_pair(a["activation"])
        ract, dract = _act_pair(a["recurrent_activation"])
        dzs = np.zeros(zs.shape, dt)
        daux = np.zeros((n, t_len, u), dt)
        dh = np.array(grads[1], dt) + (0 if a["return_sequences"] else dout)
        dc = np.array(grads[2], dt) if kind == "lstm" else None
        steps = _timesteps(t_len, a["go_backwards"])
        for s in reversed(range(t_len)):
            t = steps[s]
            if a["return_sequences"]:
                dh = dh + dout[:, s]
            dh_in, dc_in = dh, dc
            z = zs[:, t]
            if kind == "simple_rnn":
                dzs[:, t] = dact(dh, z, act(z))
                dh = state_grads(dzs[:, t], recurrent, rdrop, 0, 1, u)
            elif kind == "lstm":
                c = cs[:, t]
                c_prev = cs[:, steps[s - 1]] if s > 0 else (states[1] if states else np.zeros_like(c))
                if keeps_gates(kind, a):  # (their derivatives read only these values)
                    i, f, g, o = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
                else:
                    i, f, g, o = ract(z[:, :u]), ract(z[:, u:2 * u]), act(z[:, 2 * u:3 * u]), ract(z[:, 3 * u:])
                ac = act(c)
                dc = dc + dact(dh * o, c, ac)
                dzs[:, t] = np.concatenate([dract(dc * g, z[:, :u], i), dract(dc * c_prev, z[:, u:2 * u], f),
                                            dact(dc * i, z[:, 2 * u:3 * u], g), dract(dh * ac, z[:, 3 * u:], o)], 1)
                dc = dc * f
                dh = state_grads(dzs[:, t], recurrent, rdrop, 0, 4, u)
            else:
                h_prev = hp[:, t]
                gz, r, cand = ract(z[:, :u]), ract(z[:, u:2 * u]), act(z[:, 2 * u:])
                dcand = dact(dh * (1 - gz), z[:, 2 * u:], cand)
                dgz = dract(dh * (h_prev - cand), z[:, :u], gz)
                direct = dh * gz
                if a["reset_after"]:
                    dr = dract(dcand * aux[:, t], z[:, u:2 * u], r)
                    daux[:, t] = dcand * r
                    dh = direct + state_grads(np.concatenate([dgz, dr, daux[:, t]], 1), recurrent, rdrop, 0, 3, u)
                else:
                    drh = dcand @ recurrent[:, 2 * u:].T  # (d of r * h, h masked for the candidate)
                    drh = drh if rdrop is None else drh * rdrop[:, 2]
                    dr = dract(drh * h_prev, z[:, u:2 * u], r)
                    dh = direct + drh * r + state_grads(np.concatenate([dgz, dr], 1), recurrent, rdrop, 0, 2, u)
                dzs[:, t] = np.concatenate([dgz, dr, dcand], 1)
            if mask is not None:  # a masked step passed the states on unchanged: so do their gradients
                keep = mask[:, t:t + 1] > 0
                dzs[:, t] *= keep
                daux[:, t] *= keep
                dh = np.where(keep, dh, dh_in)
                dc = np.where(keep, dc, dc_in) if dc is not None else None
        rows = lambda v: v.reshape(-1, v.shape[-1])  # noqa: E731
        dx = dzs @ kernel.T
        dkernel = rows(x).T @ rows(dzs)
        if kind != "gru":
            drec = state_weight_grads(hp, dzs, rdrop, 0, CELLS[kind][0], u)
        elif a["reset_after"]:
            drec = state_weight_grads(hp, np.concatenate([dzs[..., :2 * u], daux], -1), rdrop, 0, 3, u)
        else:
            drec = np.concatenate([state_weight_grads(hp, dzs[..., :2 * u], rdrop, 0, 2, u),
                                   rows(aux).T @ rows(dzs)[:, 2 * u:]], 1)
        out = [dx, dkernel, drec]
        if bias is not None:
            db = rows(dzs).sum(0)
            if bias.ndim == 2:  # GRU reset_after: the recurrent bias sees the recurrent side's gradient
                db = np.stack([db, np.concatenate([db[:2 * u], rows(daux).sum(0)])])
            out.append(db)
        if states:
            out += [dh, dc] if kind == "lstm" else [dh]
        scratch = [dzs] + ([daux] if kind == "gru" and a["reset_after"] else [])
        return tuple(np.asarray(v, dt) for v in out + scratch)
    return ref


for _kind in CELLS:
    defop(f"{_kind}_train", infer=_train_type(_kind), reference=_train_ref(_kind))
    defop(f"{_kind}_grad", infer=_grad_type(_kind), reference=_grad_ref(_kind))


# --- C lowering (kernels/rnn_grad.c) -------------------------------------------------------------------------------
C_CELLS = {"simple_rnn": "GRAPHC_RNN_CELL_SIMPLE", "lstm": "GRAPHC_RNN_CELL_LSTM", "gru": "GRAPHC_RNN_CELL_GRU"}
# Floats of the kernels' largest per-block buffers (GRAPHC_RNN_GRAD_SCRATCH_FLOATS in graphc_rnn_grad.h).
C_SCRATCH_FLOATS = 131072


def scratch_floats(kind, units):
    """Scratch one sample needs: the gate activations (k * units) and six vectors of units."""
    return CELLS[kind][0] * units + 6 * units


def _common_args(ctx, op, kind, x):
    a = _attrs(op.attrs)
    if x.dtype != "float32":
        raise ValueError(f"{op.kind}: the C kernel computes in float32, the sequence is {x.dtype}")
    need = scratch_floats(kind, a["units"])
    if need > C_SCRATCH_FLOATS:
        raise ValueError(f"{op.kind}: units={a['units']} needs {need} floats of scratch per sample, more than the "
                         f"kernel's {C_SCRATCH_FLOATS}")
    ract = a["recurrent_activation"] if kind != "simple_rnn" else "sigmoid"
    return [C_CELLS[kind], f"(int64_t)({ctx.dim(x, 0)})", ctx.dim(x, 1), ctx.dim(x, 2), str(a["units"]),
            _c_activation(kind, "activation", a["activation"]), _c_activation(kind, "recurrent_activation", ract),
            str(int(a["go_backwards"])), str(int(a["reset_after"])), str(int(a["return_sequences"]))]


def _scratch(ctx, args, which):
    """The scratch argument, sized by graphc_rnn_<which>_scratch_floats of the call's cell and sizes."""
    return ctx.scratch(f"graphc_rnn_{which}_scratch_floats({', '.join(args[:5])}, {args[8]})")


def _ptrs(ctx, values):
    return [ctx.ptr(v) if v is not None else "NULL" for v in values]


def _train_c(ctx, op):
    kind = op.kind[:-len("_train")]
    a = _attrs(op.attrs)
    inputs, rdrop = split_rdrop(op.inputs, a["recurrent_masked"])
    inputs, mask = split_mask(inputs, a["masked"])
    x, kernel, recurrent, bias, states = split_inputs(kind, inputs, a["use_bias"])
    n_out = num_outputs(kind)
    saved = dict(zip(SAVED[kind], op.outputs[n_out:]))
    out, h, c = op.outputs[0], op.outputs[1], (op.outputs[2] if kind == "lstm" else None)
    h0, c0 = (states + [None, None])[:2]
    args = _common_args(ctx, op, kind, x) + _ptrs(ctx, [
        x, kernel, recurrent, bias, h0, c0, mask, rdrop, out if a["return_sequences"] else None, h, c,
        saved["hp"], saved.get("cs"), saved["zs"], saved.get("aux")])
    args.append(_scratch(ctx, args, "train"))
    lines = [f"if (graphc_rnn_train({', '.join(args)}) != 0) return -1;"]
    if not a["return_sequences"]:  # output 0 is the last state too
        lines.append(f"memcpy({ctx.ptr(out)}, {ctx.ptr(h)}, (size_t)({ctx.numel(h)}) * sizeof(float));")
    return lines


def _read(ctx, v):
    """Whether anything reads v in the graph being lowered (the gradient of a data input is not)."""
    return any(i.id == v.id for o in ctx.graph.ops for i in o.inputs) or any(o.id == v.id for o in ctx.graph.outputs)


def _grad_c(ctx, op):
    kind = op.kind[:-len("_grad")]
    a = _attrs(op.attrs)
    fwd, saved, grads = split_grad_inputs(kind, op.inputs)
    fwd, rdrop = split_rdrop(fwd, a["recurrent_masked"])
    fwd, mask = split_mask(fwd, a["masked"])
    x, kernel, recurrent, bias, states = split_inputs(kind, fwd, a["use_bias"])
    saved = dict(zip(SAVED[kind], saved))
    outs = list(op.outputs)
    n_fwd = len(fwd)
    d = dict(zip(["dx", "dkernel", "drecurrent"], outs[:3]))
    d["dx"] = d["dx"] if _read(ctx, d["dx"]) else None  # skipped: a GEMM as large as the input projection
    d["dbias"] = outs[3] if a["use_bias"] else None
    d_states = [v if _read(ctx, v) else None for v in outs[3 + a["use_bias"]:n_fwd]]
    scratch = outs[n_fwd:] + [None]
    c0 = states[1] if states and kind == "lstm" else None
    args = _common_args(ctx, op, kind, x) + _ptrs(ctx, [
        x, kernel, recurrent, c0, mask, rdrop, saved["hp"], saved.get("cs"), saved["zs"], saved.get("aux"),
        grads[0], grads[1], grads[2] if kind == "lstm" else None,
        d["dx"], d["dkernel"], d["drecurrent"], d["dbias"], *(d_states + [None, None])[:2], scratch[0], scratch[1]])
    args.append(_scratch(ctx, args, "grad"))
    return [f"if (graphc_rnn_grad({', '.join(args)}) != 0) return -1;"]


for _kind in CELLS:
    OPS[f"{_kind}_train"].lower_c = _train_c
    OPS[f"{_kind}_grad"].lower_c = _grad_c
