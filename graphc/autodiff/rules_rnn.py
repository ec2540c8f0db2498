"""Gradient rules of the recurrent ops: backprop through time in one ``<kind>_grad`` op per layer.

``<kind>_train`` (what a recurrent layer emits when training) already returns the per-step tensors the
backward reads. The inference op ``<kind>`` has no saved tensors, so its rule first reruns the
recurrence as ``<kind>_train`` on the same inputs (this only happens when a graph built for inference is
differentiated, e.g. a layer called with training=False inside a training step).
"""
from __future__ import annotations

from ..ir import OPS
from ..ir.ops.rnn import CELLS
from ..ir.ops.rnn_grad import num_outputs
from ..tracing import Tensor, current_builder, emit


def _zeros_like(t):
    return emit("broadcast_like", Tensor(current_builder().constant(0.0, t.dtype)), t)


def _backward(kind, attrs, x, outputs, saved, dy):
    """Gradients of a <kind> op's inputs; ``outputs`` are its outputs, ``dy`` theirs (None: unused)."""
    grads = [g if g is not None else _zeros_like(y) for y, g in zip(outputs, dy)]
    dx = emit(f"{kind}_grad", *x, *saved, *grads, **attrs)
    # (the masks, the last inputs, have no gradient)
    masks = int(attrs.get("masked", False)) + int(attrs.get("recurrent_masked", False))
    return list(dx[:len(x) - masks]) + [None] * masks


def _train_rule(op, x, y, dy):
    kind, n = op.kind[:-len("_train")], num_outputs(op.kind[:-len("_train")])
    if any(g is not None for g in dy[n:]):
        raise ValueError(f"{op.kind}: the tensors it saves for the backward pass are not differentiable")
    return _backward(kind, op.attrs, x, y[:n], y[n:], dy[:n])


def _inference_rule(op, x, y, dy):
    saved = emit(f"{op.kind}_train", *x, **op.attrs)[num_outputs(op.kind):]
    return _backward(op.kind, op.attrs, x, y, saved, dy)


for _kind in CELLS:
    OPS[_kind].grad = _inference_rule
    OPS[f"{_kind}_train"].grad = _train_rule
