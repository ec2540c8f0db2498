"""The operands of a recurrent layer's training op with recurrent_dropout, as Keras's cells apply it.

With recurrent_dropout, Keras runs its cells' `implementation=1`: each gate has its own dropout mask of the
inputs and its own mask of the state entering its product with the recurrent kernel, drawn once per batch and
kept for every step (SimpleRNN: one of each):
    z_g = (x * d_g) @ W_g + b_g + (h * m_g) @ U_g    for each gate g
(a GRU's candidate without reset_after: x_h + (r * (h * m_h)) @ U_h; the state update reads h itself).
The state masks m go into the fused recurrent kernels as the op's `rdrop` input (N, k, u). The input masks
stay in the graph: the op's sequence becomes [x * d_0 | ... | x * d_{k-1}] and its kernel block-diagonal,
the k kernels' columns each in their own rows, so the projection is one product, k times wider.
"""
from __future__ import annotations

import numpy as np

from .. import ops
from ..ir.ops.rnn import CELLS
from ..tracing import Tensor, emit, to_value
from .core import drop


def draw_masks(like, gates, rate, seed):
    """Dropout masks (N, gates, n) for a (N, n) tensor `like`: 0 or 1 / (1 - rate), one per sample, gate and unit."""
    ones = ops.stack([emit("broadcast_like", 1.0, like)] * gates, axis=1)
    return drop(ones, rate, seed, (like.shape[0], gates, like.shape[1]))


def per_gate_inputs(sequence, kernel, in_masks, units):
    """(sequence, kernel) for the op with each gate's input mask: [x * d_g for g] (N, T, k * F) and the
    block-diagonal kernel (k * F, k * u) whose row block g keeps gate g's columns of the kernel."""
    gates = in_masks.shape[1]
    sequence = ops.concatenate([sequence * ops.expand_dims(in_masks[:, g], 1) for g in range(gates)], axis=-1)
    blocks = []
    for g in range(gates):  # row block g: the kernel with gate g's columns only
        keep = np.zeros((1, gates * units))
        keep[:, g * units:(g + 1) * units] = 1.0
        # (a Variable has no operators of its own; the constant in the kernel's dtype)
        blocks.append(ops.multiply(kernel, Tensor(to_value(keep, str(kernel.dtype)))))
    return sequence, ops.concatenate(blocks, axis=0)


def dropout_operands(layer, sequence, kernel, seed):
    """(sequence, kernel, rdrop) of a recurrent layer's training op with 0 < recurrent_dropout < 1."""
    gates, units = CELLS[layer.op_kind][0], layer.units
    first = sequence[:, 0, :]
    state_like = ops.repeat(first[:, :1], units, axis=1)
    rdrop = draw_masks(state_like, gates, layer.recurrent_dropout, seed)
    if 0.0 < layer.dropout < 1.0:  # (Keras drops nothing at a rate of 1)
        sequence, kernel = per_gate_inputs(sequence, kernel, draw_masks(first, gates, layer.dropout, seed), units)
    return sequence, kernel, rdrop
