"""What lowering functions use to name things in C: pointers, dimensions, types, comments.

Names given by users (layer and input names) only ever reach the C source through ``c_ident`` (an
identifier of [A-Za-z0-9_]) or ``c_comment`` (text that cannot close the comment), never raw.
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

C_TYPES = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "uint8_t"}


class CodegenError(ValueError):
    """The graph holds something the C backend cannot lower (it names the op and the layer)."""


def c_ident(text: str, limit: int = 40) -> str:
    ident = re.sub(r"[^A-Za-z0-9_]", "_", text)[:limit].strip("_") or "v"
    return ident if not ident[0].isdigit() else "_" + ident


def c_comment(text: str) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text)).replace("\\", "/")
    # backslashes first: turned into "/" after the breaking-up, "*\\" would close the comment
    text = text.replace("*/", "* /").replace("/*", "/ *")
    # "??" could start a trigraph (C99 reads "??/" as a backslash): break those up too
    return re.sub(r"\?(?=\?)", "? ", text)


def local_name(layer: str, kind: str) -> str:
    """The C name of a buffer an op of ``kind`` in ``layer`` writes: ``<layer>_<kind>``, the layer's part cut
    before the suffix, so it can never be a C keyword, a library function or one of the run function's own
    variables (``batch``, ``arena``, ``i``); no layer: ``t_<kind>``; ``t_`` also before a name that could be a
    kernel's (``graphc_...``, or ``<name>_gc_...`` in an exported package, see export/kernel_sources.py)."""
    part = re.sub(r"[^A-Za-z0-9_]", "_", layer)[:32].strip("_")
    if part and part[0].isdigit():
        part = "_" + part
    name = f"{part}_{kind}" if part else f"t_{kind}"
    return "t_" + name if name.lower().startswith("graphc_") or "_gc_" in name else name


def c_float(x: float) -> str:
    if math.isinf(x):
        return "INFINITY" if x > 0 else "(-INFINITY)"
    if math.isnan(x):
        return "NAN"
    return repr(float(x)) + "f"


class PreparedCopy(NamedTuple):
    """A copy of a parameter that kernels read instead of it (see Context.prepared_param)."""
    name: str               # its pointer in the run function
    floats: str             # C expression of its size
    fill: str               # C statement deriving it from the parameter (into `dst`)
    note: str               # what it is, for a comment
    refresh: Optional[str]  # a train step's statement deriving it again from the parameter's new value, or None


class Context:
    """Per-graph naming state shared by the lowering functions."""

    def __init__(self, graph, plan, rows):
        self.graph, self.plan, self.rows = graph, plan, rows
        self.names = {}
        self.decls = []          # pointer declarations at the top of the run function
        self.view_of = {}        # value id -> value id whose storage it shares (reshape)
        self.direct = {}         # value id -> index of the graph output buffer it is computed in
        self.scratch_sizes = []  # C expressions (of `batch`) of the floats per thread kernels need
        self.prepare_weights = True  # whether kernels may ask for prepared copies of parameters
        # a training step: {param value id: index of the output its new value is written to}; None at inference
        self.updates = None
        self.prepared = []       # a PreparedCopy per copy
        self._prepared_key = {}  # (param id, fill) -> C name, so a shared weight is prepared once
        self._used = set()
        for i, v in enumerate(graph.inputs):
            self._declare(v, f"in_{c_ident(v.name)}", f"inputs[{i}]")
        for i, v in enumerate(graph.params):
            self._declare(v, f"w_{c_ident(v.name.replace('/', '_'))}", f"params[{i}]")

    # --- names and storage ------------------------------------------------------------------------
    def _unique(self, base):
        name, n = base, 1
        while name in self._used:
            n += 1
            name = f"{base}_{n}"
        self._used.add(name)
        return name

    def _declare(self, v, base, source):
        """Inputs and parameters are read-only pointers into the caller's arrays."""
        name = self._unique(base)
        self.names[v.id] = name
        t = self.ctype(v)
        self.decls.append(f"const {t} *{name} = (const {t} *){source};")

    def declare_output(self, op, v, index):
        """Storage of an op output: an arena slot (or the storage of the value it is a view of)."""
        base = local_name(op.scope.split("/")[-1], op.kind) + (f"_{index}" if index else "")
        if v.id in self.view_of:
            src = self.view_of[v.id]
            self.names[v.id] = self.names[src]
            return
        if v.id in self.direct:
            where = f"outputs[{self.direct[v.id]}]"
        elif v.id in self.plan.fixed_offset:
            where = f"arena + {self.plan.fixed_offset[v.id]}"
        else:
            where = f"arena + {self.plan.fixed_bytes} + (size_t)batch * {self.plan.scaled_offset[v.id]}"
        name = self._unique(base)
        self.names[v.id] = name
        self.decls.append(f"{self.ctype(v)} *{name} = ({self.ctype(v)} *)({where});")

    def ptr(self, v) -> str:
        return self.names[v.id]

    def scratch(self, floats: str) -> str:
        """The scratch argument of a kernel call (a ``const graphc_scratch *``), recording what the kernel needs:
        ``floats`` is a C expression, in terms of ``batch``, of the floats per thread (its sizing function)."""
        if floats not in self.scratch_sizes:
            self.scratch_sizes.append(floats)
        return "&scratch"

    def prepared_param(self, v, floats: str, fill: str, note: str, refill: str = None) -> str:
        """A copy of parameter ``v`` that a kernel derives once per set of weights (e.g. packed for the GEMM)
        and reads on every call instead. ``floats``: a C expression of its size; ``fill``: a C statement
        writing it, with ``{src}`` for the parameter and ``{dst}`` for the copy; ``refill``: the same on the
        call's ``nthreads`` threads, if the kernel has such a statement. Gives the C name of the copy's pointer
        in the run function, NULL when the caller passes no prepared weights; "NULL" when ``v`` is not a
        parameter, or in a training step (whose updates change the weights at every call) without ``refill``:
        a step derives the copies of the weights it updates again at its end, for the next step. ``note``
        says what the copy is, for a comment."""
        if not self.prepare_weights or v.id not in self.graph.param_keys or \
                (self.updates is not None and refill is None):
            return "NULL"
        key = (v.id, fill)
        if key not in self._prepared_key:
            name = self._unique(f"prep_{self.names[v.id]}")
            src = f"(const float *)params[{[p.id for p in self.graph.params].index(v.id)}]"
            new = f"(const float *)outputs[{self.updates[v.id]}]" if self.updates and v.id in self.updates else None
            self.prepared.append(PreparedCopy(name, floats, fill.replace("{src}", src).replace("{dst}", "dst"),
                                              c_comment(note),
                                              new and refill.replace("{src}", new).replace("{dst}", "dst")))
            self._prepared_key[key] = name
        return self._prepared_key[key]

    # --- shapes ---------------------------------------------------------------------------------
    @staticmethod
    def ctype(v) -> str:
        return C_TYPES[v.type.dtype]

    def dim(self, v, axis) -> str:
        """C expression of v's size along ``axis`` (axis 0 may be the symbolic batch)."""
        axis %= v.type.rank
        d = v.type.shape[axis]
        if d is not None:
            return str(d)
        if axis != 0:
            raise CodegenError(f"{v!r}: axis {axis} has no static size; specialize the graph first")
        rf = self.rows.get(v.id) or 1
        return "batch" if rf == 1 else f"(batch * {rf})"

    def numel(self, v) -> str:
        rest = math.prod(d for d in v.type.shape[1:]) if v.type.rank else 1
        if v.type.rank and v.type.shape[0] is None:
            return f"{self.dim(v, 0)} * {rest}" if rest != 1 else self.dim(v, 0)
        return str(math.prod(v.type.shape))

    def static_numel(self, v) -> int:
        return math.prod(v.type.shape[1:]) if v.type.rank and v.type.shape[0] is None else math.prod(v.type.shape)

    def describe(self, op) -> str:
        """A comment line naming the layer and the IR op (inputs -> outputs), shapes included."""
        ins = ", ".join(str(list(v.type.shape)) for v in op.inputs)
        outs = ", ".join(str(list(v.type.shape)) for v in op.outputs)
        attrs = ", ".join(f"{k}={v}" for k, v in op.attrs.items() if v is not None)
        return c_comment(f"{op.scope or '-'}: {op.kind}({ins}{'; ' + attrs if attrs else ''}) -> {outs}")


def _prod_expr(parts) -> str:
    """Product of C expressions / ints, folding the constants: ['batch', 4, 4] -> 'batch * 16'."""
    const, syms = 1, []
    for p in parts:
        if isinstance(p, int) or str(p).isdigit():
            const *= int(p)
        else:
            syms.append(str(p))
    if not syms:
        return str(const)
    return " * ".join(syms + ([str(const)] if const != 1 else []))


def _dims(self, v):
    return [self.dim(v, a) for a in range(v.type.rank)]


def _prod(self, v, start=0, stop=None):
    """C expression of the product of v's dims[start:stop]."""
    return _prod_expr(self.dims(v)[start:stop])


Context.dims = _dims
Context.prod = _prod
