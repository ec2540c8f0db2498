"""Static memory planning: every intermediate gets an offset in one arena, from its lifetime.

The batch stays symbolic, so sizes are counted in elements per sample of the model's batch: a value of
shape (None, 64) takes 64 per sample, a (None, 64) made by folding (None, 28, 64) takes 28 * 64. The arena
holds a fixed region (values without a batch axis) followed by a region of ``batch * per_sample`` elements
whose offsets scale with the batch, so one plan serves every batch size and a call performs no malloc.
Placement is greedy by size (largest first, lowest free offset), as TVM's planner does; values that are
views of another (reshape) share its storage.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..ir import Graph

ALIGN = 16  # elements: 64 bytes for float32, whatever the batch
VIEW_OPS = {"reshape"}  # outputs that are the same bytes as their input

DTYPE_BYTES = {"float32": 4, "float64": 8, "int32": 4, "int64": 8, "bool": 1}


def rows_factor(graph: Graph) -> dict:
    """Value id -> how many rows of axis 0 each sample of the model's batch becomes (None: no batch)."""
    rf = {}
    for v in graph.inputs:
        rf[v.id] = 1 if v.shape and v.shape[0] is None else None
    for v in graph.params:
        rf[v.id] = None
    for vid in graph.constants:
        rf[vid] = None
    for op in graph.ops:
        batched = [v for v in op.inputs if rf.get(v.id) is not None]
        for out in op.outputs:
            if not out.shape or out.shape[0] is not None or not batched:
                rf[out.id] = None
            elif op.kind == "reshape":
                src = op.inputs[0]
                per_in = rf[src.id] * math.prod(src.shape[1:])
                rf[out.id] = per_in // math.prod(out.shape[1:])
            else:
                rf[out.id] = rf[batched[0].id]
    return rf


@dataclass
class MemoryPlan:
    """Offsets in bytes: ``fixed_offset[v]`` in the fixed region, or ``batch * scaled_offset[v]`` after it."""

    fixed_bytes: int
    per_sample_bytes: int
    fixed_offset: dict = field(default_factory=dict)
    scaled_offset: dict = field(default_factory=dict)
    rows: dict = field(default_factory=dict)           # value id -> rows factor (None: no batch axis)
    peak_live_per_sample: int = 0                      # largest sum of live values, per sample (bytes)
    total_per_sample: int = 0                          # sum of all planned values, per sample (bytes)
    peak_live_fixed: int = 0                           # the same for values without a batch axis (bytes)
    total_fixed: int = 0

    def peak_live_bytes(self, batch: int) -> int:
        """Largest sum of intermediates alive at once (an upper bound when both regions peak apart)."""
        return self.peak_live_fixed + batch * self.peak_live_per_sample

    def arena_bytes(self, batch: int) -> int:
        return self.fixed_bytes + batch * self.per_sample_bytes


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def plan_memory(graph: Graph, run_at=None, no_storage=(), in_place=()) -> MemoryPlan:
    """Offsets for every op output.

    run_at: id(op) -> position at which the op really runs (an op fused into a later loop runs there,
    so its operands must stay alive until then); no_storage: value ids never written to memory (results
    kept in a loop's registers); in_place: ids of elementwise ops whose loop may write its output over
    an input of the same shape that is read for the last time there.
    """
    rf = rows_factor(graph)
    run_at = run_at or {}
    when = [run_at.get(id(op), i) for i, op in enumerate(graph.ops)]
    root = {}  # value id -> id of the value whose storage it shares

    def owner(vid):
        while vid in root:
            vid = root[vid]
        return vid

    produced = {out.id for op in graph.ops for out in op.outputs}
    values = {}
    first, last = {}, {}
    end = len(graph.ops)
    for i, op in enumerate(graph.ops):
        for v in op.inputs:
            if v.id in produced and v.id not in no_storage:
                o = owner(v.id)
                last[o] = max(last.get(o, when[i]), when[i])
    for v in graph.outputs:
        if v.id in produced:
            last[owner(v.id)] = end  # read after the last op

    outputs = {v.id for v in graph.outputs}
    for i, op in enumerate(graph.ops):
        for out in op.outputs:
            if out.id in no_storage:
                continue
            src = op.inputs[0] if op.inputs else None
            if op.kind in VIEW_OPS:
                root[out.id] = owner(src.id)
            elif id(op) in in_place:
                donor = next((v for v in op.inputs if v.id in values and v.id not in outputs
                              and v.type == out.type and rf.get(v.id) == rf.get(out.id)
                              and last.get(owner(v.id)) == when[i]), None)
                if donor is not None:
                    root[out.id] = owner(donor.id)
            if out.id in root and owner(out.id) not in values:
                continue  # a view of a graph input, parameter or constant: no storage of its own
            values[out.id] = out
            o = owner(out.id)
            first.setdefault(o, when[i])
            last[o] = max(last.get(o, when[i]), last.get(out.id, when[i]), when[i])

    def size_bytes(vid):
        v = values[vid]
        n = math.prod(d for d in v.shape[1:]) if rf.get(vid) is not None else math.prod(v.shape)
        n *= rf[vid] if rf.get(vid) is not None else 1
        return _aligned(n) * DTYPE_BYTES[v.dtype] if n else 0

    owners = sorted({owner(v) for v in values}, key=lambda o: (-size_bytes(o), first[o]))
    plan = MemoryPlan(0, 0, rows={vid: rf.get(vid) for vid in values})
    for region, offsets in (("fixed", plan.fixed_offset), ("scaled", plan.scaled_offset)):
        placed = []  # (offset, size, first, last)
        for o in owners:
            if (rf.get(o) is None) != (region == "fixed"):
                continue
            size = size_bytes(o)
            offset = 0
            for off, sz in sorted((off, sz) for off, sz, f, l in placed if not (l < first[o] or last[o] < f)):
                if offset + size <= off:
                    break
                offset = max(offset, off + sz)
            placed.append((offset, size, first[o], last[o]))
            offsets[o] = offset
        total = max((off + sz for off, sz, _, _ in placed), default=0)
        if region == "fixed":
            plan.fixed_bytes = _aligned(total)
        else:
            plan.per_sample_bytes = total
    for vid in values:  # views and in-place results sit where their owner sits
        o = owner(vid)
        (plan.fixed_offset if o in plan.fixed_offset else plan.scaled_offset)[vid] = \
            (plan.fixed_offset if o in plan.fixed_offset else plan.scaled_offset)[o]
    scaled = [o for o in owners if rf.get(o) is not None]
    plan.total_per_sample = sum(size_bytes(o) for o in scaled)
    plan.peak_live_per_sample = max((sum(size_bytes(o) for o in scaled if first[o] <= i <= last[o])
                                     for i in range(end + 1)), default=0)
    fixed = [o for o in owners if rf.get(o) is None]
    plan.total_fixed = sum(size_bytes(o) for o in fixed)
    plan.peak_live_fixed = max((sum(size_bytes(o) for o in fixed if first[o] <= i <= last[o])
                                for i in range(end + 1)), default=0)
    return plan
