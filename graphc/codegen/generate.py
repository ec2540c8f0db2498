"""Graph -> one C translation unit with a run function and an arena-size function.

    size_t <prefix>_arena_bytes(int64_t batch, int nthreads);
    int    <prefix>_run(int64_t batch, void *const *inputs, void *const *outputs,
                        const void *const *params, void *arena, int nthreads);

Inputs, outputs and params are arrays of pointers in graph order; the caller owns every buffer (the
arena is ``arena_bytes(batch, nthreads)`` bytes, 64-byte aligned), so a call performs no allocation and
keeps no state. The arena holds the planned intermediates, then (64-byte aligned) the kernels' scratch:
``nthreads`` regions of the largest per-thread need of the graph's kernels (see graphc_scratch in
kernels/graphc_kernels.h); a call's kernels use at most ``nthreads`` threads (< 1 means 1).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..ir import get_op
from ..passes import (eliminate_common_subexpressions, fold_constants, fuse_conv_max_pool, fuse_epilogues,
                      plan_memory, rematerialize, simplify)
from ..passes.bn_fold import fold_batch_norm
from ..passes.memory import MemoryPlan, rows_factor
from .context import C_TYPES, CodegenError, Context, c_comment, c_ident
from .pointwise import emit_pointwise, fusion_plan, is_pointwise, loop_roots

ARENA_ALIGN = 64


def kernel_headers() -> list:
    """Every kernels/graphc_*.h, so an op family's new kernels are visible to generated code."""
    from ..runtime.kernels import kernels_dir
    return sorted(p.name for p in kernels_dir().glob("graphc_*.h"))


@dataclass
class GeneratedC:
    source: str
    cdef: str
    prefix: str
    graph: object        # the optimized graph the source was generated from
    plan: MemoryPlan
    profile_labels: tuple = ()  # with profile=True: what each of the profile's timers covers, in order


def optimize(graph):
    """The inference pipeline of passes, in order."""
    graph = fold_batch_norm(simplify(graph))
    graph = fold_constants(eliminate_common_subexpressions(graph))
    return fuse_conv_max_pool(fuse_epilogues(rematerialize(graph)))


def missing_lowerings(graph) -> list:
    return sorted({f"{op.kind} (layer '{op.scope}')" for op in graph.ops
                   if get_op(op.kind).lower_c is None and get_op(op.kind).c_expr is None})


def _constant_decl(name, array):
    flat = np.asarray(array).reshape(-1)
    ctype = C_TYPES[str(array.dtype)]
    if array.dtype.kind == "f":
        values = ", ".join(repr(float(x)) + "f" if np.isfinite(x) else ("INFINITY" if x > 0 else "(-INFINITY)")
                           if np.isinf(x) else "NAN" for x in flat)
    else:
        values = ", ".join(str(int(x)) for x in flat)
    return f"static const {ctype} {name}[{max(flat.size, 1)}] = {{{values or '0'}}};"


def direct_outputs(graph, aliases, run_at, inlined) -> dict:
    """Outputs that may be computed straight into their caller's buffer although that buffer is also a
    parameter's (a training step's new weights): value id -> output index. Safe when the value comes from an
    elementwise loop and every read of the parameter happens before that loop, or inside it at the same
    element."""
    producer = {v.id: op for op in graph.ops for v in op.outputs}
    root = {}
    for op in graph.ops:
        if op.kind == "reshape":
            root[op.outputs[0].id] = root.get(op.inputs[0].id, op.inputs[0].id)
    param_of = {id(key): vid for vid, key in graph.param_keys.items()}
    direct = {}
    for k, key in aliases.items():
        v = graph.outputs[k]
        op = producer.get(v.id)
        if (op is None or not is_pointwise(op) or v.id in root
                or sum(o.id == v.id for o in graph.outputs) > 1):
            continue
        at, pid = run_at[id(op)], param_of.get(id(key))
        reads = [(run_at[id(r)], x) for r in graph.ops for x in r.inputs if root.get(x.id, x.id) == pid]
        if all(r_at < at or (r_at == at and x.type.shape == v.type.shape) for r_at, x in reads):
            direct[v.id] = k
    return direct


def _scratch_code(prefix, sizes, planned):
    """The per-thread scratch helper (the largest of the kernels' sizing expressions, in whole 64-byte lines),
    the body of arena_bytes, and the declarations making ``scratch`` in the run function."""
    if not sizes:
        return [], ["    (void)nthreads;", f"    return {planned};"], ["(void)nthreads;"]
    fn = f"{prefix}_scratch_floats"
    helper = ["/* Scratch floats per thread: what the most demanding kernel call needs. */",
              f"static size_t {fn}(int64_t batch) {{", "    size_t most = 0, need;", "    (void)batch;",
              *[line for expr in sizes for line in (f"    need = {expr};", "    if (need > most) most = need;")],
              "    return (most + 15u) & ~(size_t)15u;", "}", ""]
    arena = ["    if (nthreads < 1) nthreads = 1;",
             f"    return {planned} + (size_t)nthreads * {fn}(batch) * sizeof(float);"]
    decls = ["graphc_scratch scratch;",
             f"scratch.base = (float *)(arena + {planned});",
             f"scratch.floats_per_thread = {fn}(batch);",
             "scratch.nthreads = nthreads < 1 ? 1 : nthreads;"]
    return helper, arena, decls


def _prepared_code(prefix, ctx, sig_run):
    """Prepared weights, where kernels asked for them (ctx.prepared_param): copies of parameters derived once
    per set of weights (packed GEMM operands), in one float buffer the caller keeps. Gives the functions that
    size and fill it, the run function's pointers into it, the signature of the function with the body
    (run_prepared, which takes the buffer; run passes NULL), run itself, and their cdef."""
    if not ctx.prepared:
        return [], [], sig_run, [], ""
    at = f"{prefix}_prepared_at"
    sig_floats = f"size_t {prefix}_prepared_floats(void)"
    sig_prepare = f"void {prefix}_prepare(const void *const *params, float *prepared)"
    sig_body = (f"int {prefix}_run_prepared(int64_t batch, void *const *inputs, void *const *outputs, "
                f"const void *const *params, const float *prepared, void *arena_ptr, int nthreads)")
    fns = ["/* Prepared weights: copies of parameters that the kernels derive once per set of weights (packed for",
           " * the GEMM, transformed for Winograd) and read on every call; prepared_at(k) is where copy k starts,",
           " * in floats. */",
           f"static size_t {at}(int k) {{", "    size_t at = 0;"]
    for k, copy in enumerate(ctx.prepared):
        fns += [f"    if (k == {k}) return at;", f"    at += ({copy.floats} + 15u) & ~(size_t)15u;"]
    fns += ["    return at;", "}", "", f"{sig_floats} {{", f"    return {at}({len(ctx.prepared)});", "}", "",
            f"{sig_prepare} {{"]
    for k, copy in enumerate(ctx.prepared):
        fns += [f"    {{ /* {copy.note} */", f"        float *dst = prepared + {at}({k});", f"        {copy.fill}",
                "    }"]
    fns += ["}", ""]
    decls = [f"const float *{copy.name} = prepared ? prepared + {at}({k}) : NULL;"
             for k, copy in enumerate(ctx.prepared)]
    wrapper = [f"{sig_run} {{",
               "    return " + f"{prefix}_run_prepared(batch, inputs, outputs, params, NULL, arena_ptr, nthreads);",
               "}", ""]
    return fns, decls, sig_body, wrapper, f"{sig_floats};\n{sig_prepare};\n{sig_body};\n"


def _refresh_code(prefix, ctx):
    """A training step's last statements: the prepared copies of the weights it has just updated, derived again
    from their new values, so the next step's forward pass reads them (the caller keeps the buffer across calls
    and hands it back; CompiledGraph.keep_prepared)."""
    refresh = [(k, copy) for k, copy in enumerate(ctx.prepared) if copy.refresh]
    if not refresh:
        return []
    lines = ["/* the updated weights' prepared copies, for the next step (the caller's buffer, written here only) */",
             "if (prepared) {"]
    for k, copy in refresh:
        lines += [f"    {{ /* {copy.note} */", f"        float *dst = (float *)prepared + {prefix}_prepared_at({k});",
                  f"        {copy.refresh}", "    }"]
    return lines + ["}"]


def _profile_code(prefix, labels):
    """With profile=True: a timer per lowered op (its statements, a fused loop counting once), summed over
    calls in static storage, and <prefix>_profile_take, which hands the sums over and resets them. Static
    storage: a profiled program is for one caller at a time."""
    n = max(len(labels), 1)
    fns = ["/* Profile: seconds spent in each op's statements, summed over calls (profile_take resets them). */",
           f"static double {prefix}_profile_seconds[{n}];", f"static long long {prefix}_profile_calls;", "",
           f"static double {prefix}_profile_clock(void) {{",
           "    struct timespec t;", "    clock_gettime(CLOCK_MONOTONIC, &t);",
           "    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;", "}", "",
           f"static double {prefix}_profile_mark(int k, double since) {{",
           f"    const double now = {prefix}_profile_clock();",
           f"    {prefix}_profile_seconds[k] += now - since;", "    return now;", "}", "",
           f"long long {prefix}_profile_take(double *seconds) {{",
           f"    const long long calls = {prefix}_profile_calls;",
           f"    memcpy(seconds, {prefix}_profile_seconds, sizeof {prefix}_profile_seconds);",
           f"    memset({prefix}_profile_seconds, 0, sizeof {prefix}_profile_seconds);",
           f"    {prefix}_profile_calls = 0;", "    return calls;", "}", ""]
    return fns, f"long long {prefix}_profile_take(double *seconds);\n"


def generate_c(graph, prefix: str = "graphc_model", title: str = "", output_aliases=None,
               profile: bool = False, prepare_weights: bool = True) -> GeneratedC:
    """``output_aliases``: {output index: parameter key} for outputs whose buffer the caller will pass is
    that parameter's storage (a training step writing new weights in place). ``profile``: time each op's
    statements (see _profile_code; the labels are in ``profile_labels``). ``prepare_weights``: False for a
    caller that keeps no prepared copies (an exported train step): then the kernels ask for none."""
    prefix = c_ident(prefix, 60)
    graph = optimize(graph)
    missing = missing_lowerings(graph)
    if missing:
        raise CodegenError(f"no C lowering yet for: {', '.join(missing)}")
    wide = sorted({f"{op.kind} of layer '{op.scope}'" for op in graph.ops if not is_pointwise(op)
                   and any(v.type.dtype == "float64" for v in [*op.inputs, *op.outputs])})
    if wide:  # (elementwise loops declare their C types; the kernels behind other ops compute in float only)
        raise CodegenError(f"no float64 C lowering for: {', '.join(wide)} (graphc's C kernels compute in float32)")
    for v in [*graph.inputs, *graph.outputs]:
        if any(d is None for d in v.type.shape[1:]):
            raise CodegenError(f"{v.name or v!r} has a dynamic non-batch dimension {v.type.shape}: "
                               "specialize the graph to concrete shapes before generating C")
    loop_of, stored = fusion_plan(graph)
    inlined = {id(op) for op in graph.ops if loop_of[id(op)] is not op}
    run_at = loop_roots(graph)
    direct = direct_outputs(graph, output_aliases or {}, run_at, inlined)
    plan = plan_memory(graph, run_at=run_at,
                       no_storage={op.outputs[0].id for op in graph.ops
                                   if id(op) in inlined and op.outputs[0].id not in stored} | set(direct),
                       in_place={id(op) for op in graph.ops if is_pointwise(op) and id(op) not in inlined})
    rows = rows_factor(graph)
    ctx = Context(graph, plan, rows)
    ctx.direct = direct
    ctx.prepare_weights = prepare_weights
    if output_aliases:  # a training step: its updates change the weights at every call
        ctx.updates = {vid: j for j, key in output_aliases.items()
                       for vid, owner in graph.param_keys.items() if owner is key}
    constants = []
    for i, (vid, array) in enumerate(graph.constants.items()):
        name = f"const_{i}"
        ctx.names[vid] = name
        constants.append(_constant_decl(name, array))

    body, labels = [], []
    fused = {}  # (profile labels) loop root -> how many ops are fused into its loop
    for op in graph.ops if profile else ():
        if id(op) in inlined:
            fused[id(loop_of[id(op)])] = fused.get(id(loop_of[id(op)]), 0) + 1
    for op in graph.ops:
        if op.kind == "reshape":
            ctx.view_of[op.outputs[0].id] = op.inputs[0].id
        if id(op) in inlined:
            if op.outputs[0].id in stored:  # written by the loop it is fused into
                ctx.declare_output(op, op.outputs[0], 0)
            continue
        for i, out in enumerate(op.outputs):
            ctx.declare_output(op, out, i)
        body.append(f"/* {ctx.describe(op)} */")
        try:
            lines = (emit_pointwise(ctx, op, inlined, graph, stored, loop_of) if is_pointwise(op)
                     else get_op(op.kind).lower_c(ctx, op))
        except (ValueError, KeyError) as e:
            raise CodegenError(f"cannot lower {op.kind} of layer '{op.scope}' to C: {e}") from None
        body += lines
        if profile and any(not line.lstrip().startswith("/*") for line in lines):  # (a view has none)
            more = fused.get(id(op), 0)
            labels.append(ctx.describe(op) + (f" [+{more} fused]" if more else ""))
            body.append(f"profile_t = {prefix}_profile_mark({len(labels) - 1}, profile_t);")
    body.append("/* graph outputs */")
    copies = [f"memcpy(outputs[{i}], {ctx.ptr(v)}, (size_t)({ctx.numel(v)}) * sizeof({ctx.ctype(v)}));"
              for i, v in enumerate(graph.outputs) if direct.get(v.id) != i]
    body += copies
    if profile and copies:
        labels.append("graph outputs: copies")
        body.append(f"profile_t = {prefix}_profile_mark({len(labels) - 1}, profile_t);")
    refresh = _refresh_code(prefix, ctx)
    body += refresh
    if profile and refresh:
        labels.append("prepared copies of the updated weights")
        body.append(f"profile_t = {prefix}_profile_mark({len(labels) - 1}, profile_t);")

    # a pointer nothing reads (a graph input the step does not use, e.g. a learning rate only folded into
    # another input) must not warn: exported packages build with -Werror
    used = set(re.findall(r"\w+", "\n".join(body)))
    unused = [m.group(1) for m in (re.search(r"\*(\w+) = ", d) for d in ctx.decls) if m and m.group(1) not in used]

    fixed = -(-plan.fixed_bytes // ARENA_ALIGN) * ARENA_ALIGN
    plan.fixed_bytes = fixed
    sig_arena = f"size_t {prefix}_arena_bytes(int64_t batch, int nthreads)"
    sig_run = (f"int {prefix}_run(int64_t batch, void *const *inputs, void *const *outputs, "
               f"const void *const *params, void *arena_ptr, int nthreads)")
    prepared_fns, prepared_decls, sig_body, run_wrapper, prepared_cdef = _prepared_code(prefix, ctx, sig_run)
    planned = f"(((size_t){plan.fixed_bytes} + (size_t)batch * {plan.per_sample_bytes} + 63u) & ~(size_t)63u)"
    scratch_fn, arena_size, scratch_decls = _scratch_code(prefix, ctx.scratch_sizes, planned)
    profile_fns, profile_cdef = _profile_code(prefix, labels) if profile else ([], "")
    profile_decls = ([f"double profile_t = {prefix}_profile_clock();", f"{prefix}_profile_calls++;"]
                     if profile else [])
    header = [f"/* Generated by graphc{(' from ' + c_comment(title)) if title else ''}. Do not edit.",
              *[f" * input  {i}: {c_comment(v.name)} {v.type}" for i, v in enumerate(graph.inputs)],
              *[f" * output {i}: {v.type}" for i, v in enumerate(graph.outputs)],
              f" * arena: {plan.fixed_bytes} + batch * {plan.per_sample_bytes} bytes "
              f"(all intermediates: {plan.total_per_sample} per sample; peak live {plan.peak_live_per_sample})"
              + (", then nthreads regions of kernel scratch" if ctx.scratch_sizes else ""),
              " */",
              *(["#ifndef _POSIX_C_SOURCE /* clock_gettime, for the profile */", "#define _POSIX_C_SOURCE 199309L",
                 "#endif", "#include <time.h>"] if profile else []),
              "#include <math.h>", "#include <stdint.h>", "#include <stddef.h>", "#include <string.h>",
              *[f'#include "{h}"' for h in kernel_headers()], ""]
    lines = [*header, *constants, *([""] if constants else []), *scratch_fn, *profile_fns,
             f"{sig_arena} {{", *arena_size, "}", "", *prepared_fns,
             f"{sig_body} {{",
             "    char *arena = (char *)arena_ptr;",
             "    (void)arena; (void)inputs; (void)params;",
             *[f"    {d}" for d in [*ctx.decls, *prepared_decls, *scratch_decls, *profile_decls]],
             *([f"    {' '.join(f'(void){n};' for n in unused)}"] if unused else []), "",
             *[f"    {line}" for line in body],
             "    return 0;", "}", "", *run_wrapper]
    source = "\n".join(lines)
    cdef = f"{sig_arena};\n{sig_run};\n{prepared_cdef}{profile_cdef}"
    return GeneratedC(source, cdef, prefix, graph, plan, tuple(labels))
