"""A graph compiled to C, called with NumPy arrays.

Inputs that are C-contiguous arrays of the right dtype are passed to C without a copy
(``ffi.from_buffer``); others are converted once. The arena is allocated per thread and reused, grown
only when a larger batch arrives, so steady-state calls allocate nothing but their outputs.
"""
from __future__ import annotations

import threading

import numpy as np

from ..codegen import generate_c
from ..passes.memory import rows_factor
from . import threads


class IdOutOfRangeError(RuntimeError, ValueError):
    """An Embedding (gather) id is negative or too large. A RuntimeError as every failed compiled run, and a
    ValueError as the NumPy reference raises for the same data."""


class CompiledGraph:
    def __init__(self, graph, prefix: str = "graphc_model", title: str = ""):
        from .build import compile_module
        generated = generate_c(graph, prefix, title)
        self.generated = generated
        self.graph = generated.graph
        self.module = compile_module(generated.source, generated.cdef, name=generated.prefix)
        self.ffi, lib = self.module.ffi, self.module.lib
        self._run = getattr(lib, f"{generated.prefix}_run")
        self._arena_bytes = getattr(lib, f"{generated.prefix}_arena_bytes")
        rows = rows_factor(self.graph)
        self._out_rows = [rows.get(v.id) for v in self.graph.outputs]
        self._local = threading.local()

    @property
    def param_keys(self):
        """The owners (weights) of the parameters, in the order ``run`` expects their arrays."""
        return [self.graph.param_keys[v.id] for v in self.graph.params]

    def arena_bytes(self, batch: int) -> int:
        return int(self._arena_bytes(batch))

    def memory_report(self, batch: int = 1) -> dict:
        """Bytes of the arena for ``batch`` against the peak of simultaneously live intermediates."""
        plan = self.generated.plan
        return {"batch": batch, "arena_bytes": self.arena_bytes(batch),
                "peak_live_bytes": batch * plan.peak_live_per_sample,
                "all_intermediates_bytes": batch * plan.total_per_sample}

    def _arena(self, batch):
        need = self.arena_bytes(batch) + 64
        buf = getattr(self._local, "arena", None)
        if buf is None or buf.nbytes < need:
            buf = self._local.arena = np.empty(need, dtype=np.uint8)
        offset = (-buf.ctypes.data) % 64  # 64-byte aligned start
        return buf[offset:]

    def run(self, arrays, param_arrays):
        ffi = self.ffi
        batch = int(arrays[0].shape[0]) if arrays and arrays[0].ndim else 1
        ins = []
        for a, v in zip(arrays, self.graph.inputs):
            a = np.ascontiguousarray(a, dtype=v.type.dtype)
            if a.shape[1:] != tuple(v.type.shape[1:]) or a.shape[0] != batch:
                raise ValueError(f"input '{v.name}': expected shape {v.type.shape} with batch {batch}, got {a.shape}")
            ins.append(a)
        params = [np.ascontiguousarray(p, dtype=v.type.dtype) for p, v in zip(param_arrays, self.graph.params)]
        outs = []
        for v, rf in zip(self.graph.outputs, self._out_rows):
            lead = batch * rf if rf is not None else v.type.shape[0]
            outs.append(np.empty((lead,) + tuple(v.type.shape[1:]) if v.type.rank else (), dtype=v.type.dtype))
        arena = self._arena(batch)
        keep = [ffi.from_buffer(a) for a in ins + params] + [ffi.from_buffer(o) for o in outs]
        n_in, n_par = len(ins), len(params)
        with threads.share_of_threads():
            rc = self._run(batch, ffi.new("void *[]", keep[:n_in] or [ffi.NULL]),
                           ffi.new("void *[]", keep[n_in + n_par:] or [ffi.NULL]),
                           ffi.new("void *[]", keep[n_in:n_in + n_par] or [ffi.NULL]), ffi.from_buffer(arena))
        if rc == 2:  # GRAPHC_ERR_ID_RANGE (kernels/graphc_norm.h): a gather met a bad id and read nothing
            from ..ir.ops.gather import explain_bad_ids
            raise IdOutOfRangeError("compiled model returned error code 2: an id is out of range for an Embedding "
                                    f"(negative, or not below its input_dim); {explain_bad_ids(self.graph, ins, params)}")
        if rc != 0:
            raise RuntimeError(f"compiled model returned error code {rc}")
        return outs

