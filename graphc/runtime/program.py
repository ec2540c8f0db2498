"""A graph compiled to C, called with NumPy arrays.

Inputs that are C-contiguous arrays of the right dtype are passed to C without a copy
(``ffi.from_buffer``); others are converted once. The arena (intermediates, then the kernels' scratch for
the call's thread count) is allocated per thread and reused, grown only when a larger batch or more threads
arrive, so steady-state calls allocate nothing but their outputs.
"""
from __future__ import annotations

import threading
from typing import NamedTuple

import numpy as np

from ..codegen import generate_c
from ..passes.memory import rows_factor
from ..variables import weights_version
from . import threads


class IdOutOfRangeError(RuntimeError, ValueError):
    """An Embedding (gather) id is negative or too large. A RuntimeError as every failed compiled run, and a
    ValueError as the NumPy reference raises for the same data."""


class _Seen(NamedTuple):
    """The arrays a caller gave (held, so that no other array takes their ids) and their ids."""
    arrays: tuple
    ids: tuple


def _seen(arrays) -> _Seen:
    arrays = tuple(arrays)  # (a caller's tuple is kept as it is, a list copied: its owner may change it)
    return _Seen(arrays, tuple(map(id, arrays)))


def _same_arrays(seen: _Seen, arrays) -> bool:
    """Whether ``arrays`` are those ``seen``: the same tuple holds the same arrays (a tuple cannot change),
    else compare the ids."""
    return (seen.arrays is arrays and type(arrays) is tuple) or seen.ids == tuple(map(id, arrays))


class _GivenOutputs(NamedTuple):
    """Output arrays a caller gave for a batch size, checked, and the pointer array made for them."""
    batch: int
    seen: _Seen         # the arrays (None: a new array per call)
    pointers: object    # cffi void *[]: the given arrays' pointers set once, the others' on every call
    new: list           # the indices of the outputs not given
    buffers: list       # the given arrays' cffi buffers (kept alive while their pointers are in use)


class CompiledGraph:
    def __init__(self, graph, prefix: str = "graphc_model", title: str = "", output_aliases=None,
                 profile: bool = False):
        from .build import compile_module
        generated = generate_c(graph, prefix, title, output_aliases, profile=profile)
        self.generated = generated
        self.graph = generated.graph
        self.module = compile_module(generated.source, generated.cdef, name=generated.prefix)
        self.ffi, lib = self.module.ffi, self.module.lib
        self._run = getattr(lib, f"{generated.prefix}_run")
        self._arena_bytes = getattr(lib, f"{generated.prefix}_arena_bytes")
        # prepared weights (packed GEMM operands), where the generated code has any: re-derived on the first
        # call after the weights change, then shared by every call and thread reading the same weights
        self._prepare = getattr(lib, f"{generated.prefix}_prepare", None) if "_prepare(" in generated.cdef else None
        if self._prepare is not None:
            self._prepared_floats = int(getattr(lib, f"{generated.prefix}_prepared_floats")())
            self._run_prepared = getattr(lib, f"{generated.prefix}_run_prepared")
        self._prepared = None  # (weights version, buffer, pointer)
        self._profile_take = getattr(lib, f"{generated.prefix}_profile_take") if profile else None
        self._prepare_lock = threading.Lock()
        rows = rows_factor(self.graph)
        self._out_rows = [rows.get(v.id) for v in self.graph.outputs]
        self._batched = [bool(v.type.shape) and v.type.shape[0] is None for v in self.graph.inputs]
        self._input_specs = [(v.name, np.dtype(v.type.dtype), tuple(v.type.shape), b)
                             for v, b in zip(self.graph.inputs, self._batched)]
        self._local = threading.local()
        self._needs = {}  # (batch, nthreads) -> arena bytes
        self._shapes = {}  # batch -> [(shape, dtype)] per output

    @property
    def param_keys(self):
        """The owners (weights) of the parameters, in the order ``run`` expects their arrays."""
        keys = self.__dict__.get("_param_keys")
        if keys is None:
            keys = self._param_keys = tuple(self.graph.param_keys[v.id] for v in self.graph.params)
        return keys

    def take_profile(self):
        """(calls, [(label, seconds)]) of a program compiled with profile=True: the time each op's statements
        took, summed over the calls since the last take (which this resets)."""
        if self._profile_take is None:
            raise ValueError("take_profile: this program was compiled without profile=True")
        labels = self.generated.profile_labels
        seconds = self.ffi.new("double[]", max(len(labels), 1))
        calls = int(self._profile_take(seconds))
        return calls, [(label, float(seconds[k])) for k, label in enumerate(labels)]

    def arena_bytes(self, batch: int, nthreads: int = 1) -> int:
        """Bytes of the arena a call at ``batch`` on ``nthreads`` threads needs (intermediates and scratch)."""
        return int(self._arena_bytes(batch, nthreads))

    def scratch_bytes(self, batch: int, nthreads: int = 1) -> int:
        """The kernels' scratch part of the arena: ``nthreads`` regions of the per-thread need."""
        return max(1, nthreads) * (self.arena_bytes(batch, 2) - self.arena_bytes(batch, 1))

    def memory_report(self, batch: int = 1) -> dict:
        """Bytes of the planned intermediates for ``batch`` ("arena_bytes") against the peak of simultaneously
        live ones, the kernels' scratch a call on the current thread count adds after them, and the weights'
        packed copies the program keeps ("prepared_weights_bytes", not in the arena)."""
        plan = self.generated.plan
        nthreads = threads.compiled_threads()
        return {"batch": batch, "arena_bytes": plan.arena_bytes(batch),
                "peak_live_bytes": plan.peak_live_bytes(batch),
                "all_intermediates_bytes": plan.total_fixed + batch * plan.total_per_sample,
                "threads": nthreads, "scratch_bytes": self.scratch_bytes(batch, nthreads),
                "prepared_weights_bytes": self.prepared_bytes()}

    def _arena(self, batch, nthreads):
        """This thread's arena as a cffi pointer, 64-byte aligned, grown only when a call needs more."""
        need = self._needs.get((batch, nthreads))
        if need is None:
            need = self._needs[(batch, nthreads)] = self.arena_bytes(batch, nthreads)
        cached = self._local.__dict__.get("arena")
        if cached is None or cached[0] < need:
            buf = np.empty(need + 64, dtype=np.uint8)
            aligned = buf[(-buf.ctypes.data) % 64:]
            cached = self._local.arena = (need, aligned, self.ffi.from_buffer(aligned))
        return cached[2]

    def _param_pointers(self, param_arrays):
        """The params pointer array, rebuilt only when the arrays are not those of the last call (weights
        are updated in place by set_weights, so in steady state this is a lookup). None: the arrays of the
        weights in ``param_keys``: Variables, whose storage never moves, so their pointers are made once."""
        if param_arrays is None:
            own = self.__dict__.get("_own_params")
            if own is None:
                from ..variables import Variable
                arrays = [k.value for k in self.param_keys]
                if not all(type(k) is Variable for k in self.param_keys):
                    return self._param_pointers(arrays)
                params = [np.ascontiguousarray(a, dtype=v.type.dtype) for a, v in zip(arrays, self.graph.params)]
                if any(p is not a for p, a in zip(params, arrays)):  # (a copy would go stale: not cached)
                    return self._param_pointers(arrays)
                ptrs = self.ffi.new("void *[]", [self.ffi.from_buffer(a) for a in params] or [self.ffi.NULL])
                own = self._own_params = (ptrs, params)
            return own
        cached = self._local.__dict__.get("params")  # (seen, pointers, arrays)
        if cached is not None and _same_arrays(cached[0], param_arrays):
            return cached[1], cached[2]
        params = [np.ascontiguousarray(p, dtype=v.type.dtype) for p, v in zip(param_arrays, self.graph.params)]
        ptrs = self.ffi.new("void *[]", [self.ffi.from_buffer(a) for a in params] or [self.ffi.NULL])
        self._local.params = (_seen(param_arrays), ptrs, params)
        return ptrs, params

    def _prepared_weights(self, param_ptrs):
        """The prepared-weights buffer for the weights' current values (``param_keys``'s own arrays, Variables)."""
        version = weights_version()
        cached = self._prepared
        if cached is not None and cached[0] != version and all(k.changed_at <= cached[0] for k in self.param_keys):
            cached = self._prepared = (version, cached[1], cached[2])  # other weights changed, not these
        if cached is None or cached[0] != version:
            with self._prepare_lock:
                cached = self._prepared
                if cached is None or cached[0] != version:
                    cached = self._prepared = (version, *self._new_prepared(param_ptrs))
        return cached[2]

    def _new_prepared(self, param_ptrs):
        """(buffer, pointer) of new prepared copies of the parameters at ``param_ptrs``."""
        buf = np.empty(self._prepared_floats + 16, dtype=np.float32)
        buf = buf[(-buf.ctypes.data // 4) % 16:][:self._prepared_floats]  # 64-byte aligned
        ptr = self.ffi.from_buffer("float[]", buf)
        self._prepare(param_ptrs, ptr)
        return buf, ptr

    def prepared_copies(self, param_arrays):
        """Prepared copies of ``param_arrays`` (``param_keys`` order) for a caller running on arrays of its own,
        to pass to ``run(..., prepared=)``: a train step keeps them current as it updates those arrays in place
        (Model.profile(training=True) runs one on copies of the weights). None if the program has none."""
        if self._prepare is None:
            return None
        return self._new_prepared(self._param_pointers(param_arrays)[0])

    def keep_prepared(self, version_before: int):
        """After a training step's call on the weights' own arrays, which derived again the prepared copies of
        the weights it updated (generate.py's _refresh_code): keep the copies for the weights' new version,
        if they were those of ``version_before`` (the version the call started from), so the next step
        does not derive them all again."""
        cached = self._prepared
        if cached is not None and cached[0] == version_before:
            self._prepared = (weights_version(), cached[1], cached[2])

    def prepared_bytes(self) -> int:
        """Bytes of the weights' prepared copies (packed GEMM operands) the program keeps: 0 if none."""
        return 4 * self._prepared_floats if self._prepare is not None else 0

    def _pointer_arrays(self):
        """This thread's arrays of input and output pointers, made once (filled on every call)."""
        cached = self._local.__dict__.get("pointers")
        if cached is None:
            cached = self._local.pointers = (self.ffi.new("void *[]", max(1, len(self.graph.inputs))),
                                             self.ffi.new("void *[]", max(1, len(self.graph.outputs))))
        return cached

    def _output_shapes(self, batch):
        shapes = self._shapes.get(batch)
        if shapes is None:
            shapes = self._shapes[batch] = [
                (((batch * rf if rf is not None else v.type.shape[0]),) + v.type.shape[1:] if v.type.rank else (),
                 np.dtype(v.type.dtype)) for v, rf in zip(self.graph.outputs, self._out_rows)]
        return shapes

    def _outputs(self, batch, outputs):
        """The output arrays of a call and the array of their pointers: new arrays, except where the caller
        gives ``outputs[k]``. Those are checked and pointed to once, then reused while the caller passes the
        same arrays (a train step writes into the same variables on every call), so a call sets only the new
        arrays' pointers."""
        shapes = self._output_shapes(batch)
        if outputs is None:
            outs, out_ptrs, new = [None] * len(shapes), self._pointer_arrays()[1], range(len(shapes))
        else:
            given = self._local.__dict__.get("given")
            if given is None or given.batch != batch or not _same_arrays(given.seen, outputs):
                given = self._local.given = self._given_outputs(batch, shapes, outputs)
            outs, out_ptrs, new = list(given.seen.arrays), given.pointers, given.new
        for k in new:
            shape, dtype = shapes[k]
            o = outs[k] = np.empty(shape, dtype=dtype)
            out_ptrs[k] = self.ffi.from_buffer(o)
        return outs, out_ptrs

    def _given_outputs(self, batch, shapes, outputs) -> _GivenOutputs:
        """Check the output arrays a caller gives and point to them."""
        if len(outputs) != len(shapes):
            raise ValueError(f"expected {len(shapes)} outputs (None for a new array), received {len(outputs)}")
        for k, o in enumerate(outputs):
            shape, dtype = shapes[k]
            if o is not None and not (isinstance(o, np.ndarray) and o.dtype == dtype and o.shape == shape
                                      and o.flags.c_contiguous and o.flags.writeable):
                raise ValueError(f"output {k}: expected a writeable C-contiguous {dtype} array of shape {shape}")
        buffers = [None if o is None else self.ffi.from_buffer(o) for o in outputs]
        out_ptrs = self.ffi.new("void *[]", max(1, len(outputs)))
        for k, b in enumerate(buffers):
            if b is not None:
                out_ptrs[k] = b
        return _GivenOutputs(batch, _seen(outputs), out_ptrs, [k for k, o in enumerate(outputs) if o is None],
                             buffers)

    def _inputs(self, arrays):
        """The batch size and the input arrays as C reads them (converted where they are not already)."""
        specs = self._input_specs
        if len(arrays) == 1 and len(specs) == 1 and specs[0][3]:  # one batched input: the common call, in short
            a, (name, dtype, shape, _) = arrays[0], specs[0]
            if not (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous):
                a = np.asarray(a, dtype=dtype, order="C")
            if a.ndim != len(shape) or a.shape[1:] != shape[1:]:
                raise ValueError(f"input '{name}': expected shape {shape}, got {a.shape}")
            return a.shape[0], (a,)
        batch = 1
        for a, b in zip(arrays, self._batched):
            if b:
                batch = int(a.shape[0] if type(a) is np.ndarray else np.shape(a)[0])  # (np.shape: lists too)
                break
        ins = []
        for a, (name, dtype, shape, batched) in zip(arrays, specs):
            if not (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous):
                a = np.asarray(a, dtype=dtype, order="C")  # (ascontiguousarray would make a scalar 1-D)
            if (a.shape[1:] != shape[1:] or a.shape[0] != batch) if batched else a.shape != shape:
                raise ValueError(f"input '{name}': expected shape {shape} with batch {batch}, got {a.shape}")
            ins.append(a)
        return batch, ins

    def run(self, arrays, param_arrays=None, outputs=None, prepared=None):
        """Run on ``arrays`` (graph input order) with the parameters' ``param_arrays`` (``param_keys``
        order; None: the current values of the weights in ``param_keys``); ``outputs``, if given, are the
        arrays to write the results into (C-contiguous, of the outputs' dtype and shape) instead of new ones;
        ``prepared``: what ``prepared_copies(param_arrays)`` gave, else the program keeps its own for the
        weights' own arrays only."""
        ffi = self.ffi
        batch, ins = self._inputs(arrays)
        param_ptrs, params = self._param_pointers(param_arrays)
        in_ptrs = self._pointer_arrays()[0]
        for k, a in enumerate(ins):  # (the arrays, held in ins and outs, keep the pointed-to memory alive)
            in_ptrs[k] = ffi.from_buffer(a)
        outs, out_ptrs = self._outputs(batch, outputs)
        # the program's own prepared copies only for the weights' own arrays (Variables: each change records its
        # version); other arrays get the caller's ``prepared``, or none
        rc = self._call(batch, in_ptrs, out_ptrs, param_ptrs,
                        param_arrays is None and bool(self.__dict__.get("_own_params")), prepared)
        if rc != 0:
            self._raise_for(rc, ins, params)
        return outs

    def _raise_for(self, rc, ins, params):
        if rc == 2:  # GRAPHC_ERR_ID_RANGE (kernels/graphc_norm.h): a gather met a bad id and read nothing
            from ..ir.ops.gather import explain_bad_ids
            raise IdOutOfRangeError("compiled model returned error code 2: an id is out of range for an Embedding "
                                    f"(negative, or not below its input_dim); {explain_bad_ids(self.graph, ins, params)}")
        raise RuntimeError(f"compiled model returned error code {rc}")

    def run_one(self, x):
        """``run([x])[0]`` in short, for the call a batch-1 prediction makes: a program of one batched input and
        one output, on the weights' own arrays (Variables), with ``x`` already an array of the input's dtype,
        shape and C layout. None, having done nothing, where the call is not that one: the caller then takes
        ``run``, which converts, checks and explains. (The MLP's predict_on_batch at batch 1, interleaved
        runs: 23.7-24.1 us through run, 21.4-22.5 through this; the C function alone takes about 17.)"""
        spec = self.__dict__.get("_one")
        if spec is None:
            spec = self._one = self._one_input_one_output()
        if not spec or type(x) is not np.ndarray or x.dtype != spec[0] or x.shape[1:] != spec[1] or \
                x.ndim != spec[2] or not x.flags.c_contiguous:
            return None
        own = self.__dict__.get("_own_params") or self._param_pointers(None)
        if own is not self.__dict__.get("_own_params"):  # (weights that are not Variables: run copes)
            return None
        batch = x.shape[0]
        shapes = self._shapes.get(batch) or self._output_shapes(batch)
        in_ptrs, out_ptrs = self._local.__dict__.get("pointers") or self._pointer_arrays()
        in_ptrs[0] = self.ffi.from_buffer(x)
        out = np.empty(shapes[0][0], dtype=shapes[0][1])
        out_ptrs[0] = self.ffi.from_buffer(out)
        rc = self._call(batch, in_ptrs, out_ptrs, own[0], True)
        if rc != 0:
            self._raise_for(rc, (x,), own[1])
        return out

    def _call(self, batch, in_ptrs, out_ptrs, param_ptrs, own, prepared=None):
        """The C call, on this thread's share of the threads; with the prepared weights where the program has
        them and the parameters are the weights' own arrays (``own``), or with the caller's ``prepared``."""
        with threads.share_of_threads() as nthreads:
            arena = self._arena(batch, nthreads)
            if prepared is not None:
                return self._run_prepared(batch, in_ptrs, out_ptrs, param_ptrs, prepared[1], arena, nthreads)
            if own and self._prepare is not None:
                return self._run_prepared(batch, in_ptrs, out_ptrs, param_ptrs, self._prepared_weights(param_ptrs),
                                          arena, nthreads)
            return self._run(batch, in_ptrs, out_ptrs, param_ptrs, arena, nthreads)

    def _one_input_one_output(self):
        """(dtype, shape past the batch axis, rank) of the one input, for run_one; () where the program is not
        one of one batched input and one output."""
        if len(self._input_specs) != 1 or len(self.graph.outputs) != 1 or not self._input_specs[0][3]:
            return ()
        _, dtype, shape, _ = self._input_specs[0]
        return (dtype, shape[1:], len(shape))

