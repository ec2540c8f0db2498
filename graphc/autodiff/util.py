"""Shape helpers shared by gradient rules."""
from __future__ import annotations

from ..tracing import emit


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``: the adjoint of NumPy broadcasting ``shape`` up to ``g.shape``."""
    gs, shape = tuple(g.shape), tuple(shape)
    if gs == shape:
        return g
    lead = len(gs) - len(shape)
    padded = (1,) * lead + shape
    axes = [i for i, (a, b) in enumerate(zip(gs, padded)) if b == 1 and a != 1 or i < lead]
    # C reductions take one contiguous run of axes, so reduce each run on its own (innermost first).
    runs = []
    for a in axes:
        if runs and runs[-1][-1] == a - 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    for run in reversed(runs):
        g = emit("reduce_sum", g, axes=tuple(run), keepdims=True)
    return emit("reshape", g, shape=shape) if tuple(g.shape) != shape else g


def expand_like(g, x, axes, keepdims):
    """Spread a reduction's gradient ``g`` (over ``axes`` of ``x``) back to x's shape."""
    if not keepdims:
        rank = len(x.shape)
        axes = {a % rank for a in axes}
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
        if any(d is None for d in kept[1:]) or (kept and kept[0] is None and g.shape[:1] != (None,)):
            raise ValueError(f"cannot expand a gradient of shape {g.shape} to {x.shape}")
        g = emit("reshape", g, shape=kept)
    return emit("broadcast_like", g, x)
