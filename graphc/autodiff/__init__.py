"""Reverse-mode autodiff on the IR.

``gradients`` walks the ops of the graph being traced backwards from a scalar and appends, for every op on
a path from the differentiated values to it, the ops of its gradient rule. The rules live in the op's
registry entry (``OpDef.grad``; filled by the ``rules_*`` modules of this package) and are written with
``graphc.ops``, so the backward pass is ordinary IR: it compiles, fuses and gets its memory planned like
the forward pass it extends.

A rule is ``grad(op, x, y, dy) -> dx``: ``x`` the op's inputs and ``y`` its outputs as Tensors, ``dy``
the gradients of the outputs (None for an output nothing depends on), ``dx`` one gradient or None per
input (None: not differentiable, e.g. integer ids).
"""
from __future__ import annotations

from ..ir import get_op
from ..ir.types import is_float
from ..tracing import Tensor, current_builder, emit, scope



def _load_rules():
    """Import every ``rules*`` module of this package (each fills OpDef.grad for its ops)."""
    import importlib
    import pkgutil
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("rules"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_rules()


class NoGradientError(ValueError):
    """An op on the path from a trained weight to the loss has no gradient rule."""


def gradients(loss, wrt, ops=None):
    """d loss / d w for each w in ``wrt`` (Tensors or Values of the graph being traced), as Tensors.

    ``loss`` must be a scalar. ``ops`` defaults to every op traced so far. A w the loss does not depend
    on gets None (as tf.GradientTape does).
    """
    builder = current_builder()
    if builder is None:
        raise RuntimeError("graphc.autodiff.gradients runs inside a trace (graphc.tracing.tracing)")
    loss_v = loss.value if isinstance(loss, Tensor) else loss
    if loss_v.type.shape != ():
        raise ValueError(f"gradients: the loss must be a scalar, received shape {loss_v.type.shape}")
    wrt_v = [w.value if isinstance(w, Tensor) else w for w in wrt]
    ops = list(builder.ops if ops is None else ops)

    # Values on a path from some w to the loss: forward-reachable from wrt and backward-reachable from loss.
    reach = {v.id for v in wrt_v}
    for op in ops:
        if any(v.id in reach for v in op.inputs):
            reach.update(o.id for o in op.outputs if is_float(o.dtype))
    needed, live = set(), {loss_v.id}
    for op in reversed(ops):
        if any(o.id in live for o in op.outputs):
            live.update(v.id for v in op.inputs)
            needed.update(v.id for v in op.inputs if v.id in reach)
    needed.update(v.id for v in wrt_v if v.id in live)

    grads = {loss_v.id: emit("broadcast_like", Tensor(builder.constant(1.0, loss_v.type.dtype)), Tensor(loss_v))}
    for op in reversed(ops):
        dy = [grads.get(o.id) for o in op.outputs]
        if all(g is None for g in dy) or not any(v.id in needed for v in op.inputs):
            continue
        rule = get_op(op.kind).grad
        if rule is None:
            raise NoGradientError(f"layer '{op.scope}': IR op '{op.kind}' has no gradient rule, so the "
                                  "weights before it cannot be trained (freeze them with trainable=False)")
        with scope(f"{op.scope} (backward)" if op.scope else "backward"):
            dx = rule(op, [Tensor(v) for v in op.inputs], [Tensor(v) for v in op.outputs], dy)
            for v, g in zip(op.inputs, dx):
                if g is None or v.id not in needed:
                    continue
                if g.shape != v.type.shape and not _same_up_to_batch(g.shape, v.type.shape):
                    raise AssertionError(f"gradient rule of {op.kind} gave shape {g.shape} for an input of "
                                         f"shape {v.type.shape}")
                grads[v.id] = g if v.id not in grads else emit("add", grads[v.id], g)
    return [grads.get(v.id) for v in wrt_v]


def _same_up_to_batch(a, b):
    return len(a) == len(b) and all(x == y or x is None or y is None for x, y in zip(a, b))


__all__ = ["gradients", "NoGradientError"]
