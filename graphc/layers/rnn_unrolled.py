"""Training with recurrent_dropout: the recurrence written out step by step in IR ops, as Keras's cells.

Keras drops units of the state entering each step's product with the recurrent kernel. Its masks are drawn
once per batch and kept for every step, and with recurrent_dropout the cell runs Keras's `implementation=1`:
each gate has its own mask of the inputs and its own mask of the state (SimpleRNN: one of each).
    LSTM: z_g = (x * d_g) @ W_g + b_g + (h * m_g) @ U_g for g in i, f, c, o;  c = f c + i act(z_c);  h = o act(c)
    GRU:  z_g as above for g in z, r, with the recurrent bias (reset_after); the candidate
          act(x_h + r * ((h * m_h) @ U_h + b_rh)) with reset_after, act(x_h + (r * (h * m_h)) @ U_h) without;
          h = z h + (1 - z) candidate (the state itself, not its dropped copy)
    SimpleRNN: h = act((x * d) @ W + b + (h * m) @ U)
The whole-sequence recurrent ops keep the state inside their kernels, so this path unrolls the steps into
the graph instead; autodiff, fusion and the memory plan then treat them as any other ops. It needs the
number of timesteps at definition time; inference (no dropout) keeps the fused op.
"""
from __future__ import annotations

from .. import ops
from ..ir import format_shape
from ..tracing import emit
from .core import drop

GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def unrolled_call(layer, sequence, states, mask, seed):
    """The layer's training outputs [output, *final states] with dropout and recurrent dropout."""
    kind, steps = type(layer).__name__, sequence.shape[1]
    if steps is None:
        raise ValueError(f"{kind} '{layer.name}': training with recurrent_dropout={layer.recurrent_dropout} needs "
                         f"a known number of timesteps, received input shape {format_shape(sequence.shape)}; "
                         "give the Input a fixed length")
    first = sequence[:, 0, :]
    in_masks = draw_masks(layer, first, layer.dropout, seed)
    rec_masks = draw_masks(layer, ops.repeat(first[:, :1], layer.units, axis=1), layer.recurrent_dropout, seed)
    bias = layer.bias if layer.use_bias else None
    return recurrence(layer, sequence, layer.kernel, layer.recurrent_kernel, bias, states, mask, in_masks,
                      rec_masks)


def draw_masks(layer, like, rate, seed):
    """One dropout mask shaped like `like` (batch, n) per gate, drawn once and kept for every step; Nones at
    rates 0 and 1 (Keras drops nothing there)."""
    k = GATES[layer.op_kind]
    if not 0.0 < rate < 1.0:
        return [None] * k
    ones = emit("broadcast_like", 1.0, like)
    return [drop(ones, rate, seed, tuple(like.shape)) for _ in range(k)]


def recurrence(layer, sequence, kernel, recurrent, bias, states, mask, in_masks, rec_masks):
    """[output, h(, c)] of the layer's cell over the sequence, the masks (None: keep all) applied as Keras's
    implementation 1: in_masks (batch, features) on the inputs, rec_masks (batch, units) on the state entering
    the recurrent products, one of each per gate."""
    u, steps, k = layer.units, sequence.shape[1], GATES[layer.op_kind]
    act = lambda v: emit(layer._activation_op, v)  # noqa: E731
    ract = (lambda v: emit(layer._recurrent_activation_op, v)) if layer.has_recurrent_activation else None
    two_biases = getattr(layer, "reset_after", False) and bias is not None  # GRU's (2, 3u): input, recurrent
    in_bias, rec_bias = (ops.getitem(bias, 0), ops.getitem(bias, 1)) if two_biases else (bias, None)

    def cols(w, g):  # gate g's columns of a kernel (or bias); (weights are Variables: no [] of their own)
        return ops.getitem(w, (Ellipsis, slice(g * u, (g + 1) * u)))

    projected = []  # per gate: (batch, steps, u), the inputs' part of the pre-activations
    for g in range(k):
        x = sequence if in_masks[g] is None else sequence * ops.expand_dims(in_masks[g], 1)
        z = ops.matmul(x, cols(kernel, g))
        projected.append(z if in_bias is None else z + cols(in_bias, g))
    zero = emit("broadcast_like", 0.0, projected[0][:, 0, :])
    h = states[0] if states else zero
    c = (states[1] if states else zero) if layer.op_kind == "lstm" else None

    def product(g, v):  # v @ U_g, with the recurrent bias where the cell has one
        r = ops.matmul(v, cols(recurrent, g))
        return r if rec_bias is None else r + cols(rec_bias, g)

    outputs = []
    for s in range(steps):
        t = steps - 1 - s if layer.go_backwards else s
        hm = [h if m is None else h * m for m in rec_masks]
        if layer.op_kind == "simple_rnn":
            new_h, new_c = act(projected[0][:, t, :] + product(0, hm[0])), None
        elif layer.op_kind == "lstm":
            i, f = ract(projected[0][:, t, :] + product(0, hm[0])), ract(projected[1][:, t, :] + product(1, hm[1]))
            o = ract(projected[3][:, t, :] + product(3, hm[3]))
            new_c = f * c + i * act(projected[2][:, t, :] + product(2, hm[2]))
            new_h = o * act(new_c)
        else:
            zg, r = ract(projected[0][:, t, :] + product(0, hm[0])), ract(projected[1][:, t, :] + product(1, hm[1]))
            if layer.reset_after:
                cand = act(projected[2][:, t, :] + r * product(2, hm[2]))
            else:
                cand = act(projected[2][:, t, :] + ops.matmul(r * hm[2], cols(recurrent, 2)))
            new_h, new_c = zg * h + (1.0 - zg) * cand, None
        out = new_h
        if mask is not None:  # a masked step keeps the states and repeats the output (or gives zeros)
            keep = ops.greater(ops.expand_dims(ops.cast(mask[:, t], "float32"), -1), 0.0)
            out = ops.where(keep, new_h, 0.0 if layer.zero_output_for_mask else h)
            new_h = ops.where(keep, new_h, h)
            new_c = None if new_c is None else ops.where(keep, new_c, c)
        h, c = new_h, new_c
        outputs.append(out)
    result = ops.stack(outputs, axis=1) if layer.return_sequences else outputs[-1]
    return [result, h] + ([c] if c is not None else [])
