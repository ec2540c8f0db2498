"""The training step of an export (``export_c(training=True)``): forward, loss, backward and optimizer update
as one C function over a caller-owned training state.

The state is one buffer: the weights image that ``<name>_predict`` reads (64-byte header, then the inference
parameters), a 64-byte record (magic, iteration count, learning rate), then every other variable the step
uses (the optimizer's slots) at 64-byte-aligned offsets. So the state itself can be passed to predict, and
``<name>_save_weights`` writes its weights as a file Python loads with ``graphc.export.load_weights``.
The C side starts a fresh optimizer, as compile() does: slots at their initial values, iteration 0.
"""
from __future__ import annotations

import dataclasses

from ..codegen import generate_c
from ..codegen.context import c_comment, c_float
from ..optimizers.schedules import LearningRateSchedule
from ..training.step import build_step
from . import kernel_sources
from .capi import DTYPE_CODES, TensorInfo

RECORD_BYTES = 64
ALIGN = 64


@dataclasses.dataclass
class TrainSpec:
    source: str                 # <name>_train.c
    generated_source: str       # the step's generated C before renaming (says which kernels it calls)
    header_lines: list          # the training part of <name>.h


def _align(n):
    return -(-n // ALIGN) * ALIGN


def training_parts(model, name, graph, layout, embedded) -> TrainSpec:
    """The train step of ``model`` (compiled with an optimizer and loss) for the shapes of ``graph`` (its
    inference graph, specialized), over the state laid out after ``layout`` (the inference weights)."""
    spec = getattr(model, "_spec", None)
    if spec is None:
        raise ValueError(f"export_c(training=True): model '{model.name}' is not compiled; call "
                         "model.compile(optimizer, loss) first")
    opt = spec.optimizer
    if isinstance(getattr(opt, "_learning_rate", None), LearningRateSchedule):
        raise ValueError("export_c(training=True) needs a constant learning rate (the C step has no schedules); "
                         "compile with a float learning_rate; the C program can change it with "
                         f"{name}_set_learning_rate")
    unknown = set(opt.hyperparameters()) - {"lr", "alpha"}
    if unknown:
        raise ValueError(f"export_c(training=True): the optimizer {type(opt).__name__} is not supported in C")
    plain = dataclasses.replace(spec, metrics=[[] for _ in spec.losses])  # the C step reports the loss only
    in_shapes = [(1,) + tuple(v.type.shape[1:]) for v in graph.inputs]
    out_shapes = [(1,) + tuple(v.type.shape[1:]) for v in graph.outputs]
    targets = [None if lo is None else ((1,) if lo.target_dtype == "int32" else shape)
               for lo, shape in zip(spec.losses, out_shapes)]
    step = build_step(model, plain, True, in_shapes, targets, [None] * len(targets))
    n_scalars = len(step.graph.outputs) - len(step.updated)
    generated = generate_c(step.graph, prefix="graphc_train", title=f"train step of model {model.name}",
                           output_aliases=step.output_aliases(), prepare_weights=False)  # (its state has none)
    g = generated.graph

    # Where each variable lives in the state.
    offset_of = {id(var): 64 + e.offset for var, e in zip(layout.variables, layout.entries)}
    record = 64 + _align(layout.total_bytes)
    cursor = record + RECORD_BYTES
    extras = []  # (label, offset, bytes, fill value, ctype)
    fill = _slot_fills(opt)
    for var in [g.param_keys[v.id] for v in g.params] + list(step.updated):
        if id(var) in offset_of:
            continue
        if id(var) not in fill:
            raise ValueError(f"export_c(training=True): the step uses variable '{var.path}', which is neither a "
                             "weight of the model nor an optimizer slot")
        offset_of[id(var)] = cursor
        nbytes = int(var.value.nbytes)
        extras.append((var.path, cursor, nbytes, fill[id(var)]))
        cursor += _align(max(nbytes, 1))
    state_bytes = cursor

    target_infos = [TensorInfo(f"{spec.output_names[k]}", lo.target_dtype, (None,) + tuple(shape[1:]), 1)
                    for k, (lo, shape) in enumerate(zip(spec.losses, targets)) if lo is not None]
    prefix = f"{name}_gc_train"
    source = kernel_sources.internal_source(generated, name) + _train_api(name, prefix, step, g, offset_of, extras, record, n_scalars, target_infos, opt, embedded)
    return TrainSpec(source, generated.source, _header(name, state_bytes, target_infos))


def _slot_fills(opt) -> dict:
    """id(slot variable) -> the value a fresh optimizer starts it at (slots are made group by group, variable
    by variable, name by name: see Optimizer.build)."""
    fills = [initial for names, initial in opt._slot_groups() for _ in opt._trainable_variables for _ in names]
    return {id(s): float(v) for s, v in zip(opt._slot_variables, fills)}


def _header(name, state_bytes, targets) -> list:
    n, N = name, name.upper()
    lines = ["", "/* ---- training (export_c(training=True)) ---------------------------------------------------------",
             f" * The training state ({N}_TRAIN_STATE_SIZE bytes, aligned to {N}_WORKSPACE_ALIGN) holds the weights",
             f" * image predict reads (pass the state as `weights`), the optimizer's slots and its step count.",
             " * targets[k]: the k-th trained output's targets for `batch` samples (class ids as int32 for sparse",
             " * losses). The C side starts a fresh optimizer, as compile() does. */",
             f"#define {N}_TRAIN_STATE_SIZE ((size_t){state_bytes}u)",
             f"#define {N}_NUM_TARGETS {len(targets)}",
             *[f"#define {N}_TARGET{i}_SAMPLE_ELEMENTS {t.per_sample} /* {t.dtype}, for output {c_comment(t.name)} */"
               for i, t in enumerate(targets)],
             f"size_t {n}_train_state_size(void);",
             f"/* weights: NULL for the embedded weights, or a weights image (e.g. from {n}_load_weights) */",
             f"int {n}_train_init(void *state, size_t state_bytes, const void *weights);",
             f"size_t {n}_train_workspace_size(int batch);",
             f"/* one step of the optimizer on this batch; *loss (if not NULL) gets the batch's total loss */",
             f"int {n}_train_step(void *state, int batch, const void *const *inputs, const void *const *targets,",
             f"    float *loss, void *workspace, size_t workspace_bytes);",
             f"int {n}_set_learning_rate(void *state, float learning_rate);",
             f"int64_t {n}_train_iterations(const void *state);",
             f"int {n}_target_dtype(int index);",
             f"size_t {n}_target_sample_elements(int index);"]
    return lines


def _train_api(name, prefix, step, g, offset_of, extras, record, n_scalars, targets, opt, embedded):
    n, N = name, name.upper()
    hyper = opt.hyperparameters()
    target_index = {k: j for j, k in enumerate(sorted({f[1] for f in step.feeds if f[0] == "y"}))}
    feed_exprs = []
    for f in step.feeds:
        if f[0] == "x":
            feed_exprs.append(f"(void *)inputs[{f[1]}]")
        elif f[0] == "y":
            feed_exprs.append(f"(void *)targets[{target_index[f[1]]}]")
        elif f[0] == "hyper":
            feed_exprs.append(f"&hyper_{f[1]}")
        elif f[0] == "rng":
            feed_exprs.append("&rng")
        else:
            raise ValueError(f"export_c(training=True): unexpected step input {f}")
    params = [f"(const void *)(s + {offset_of[id(g.param_keys[v.id])]}u)" for v in g.params]
    outs = ["&losses[0]"] + [f"&losses[{i}]" for i in range(1, n_scalars)]
    outs += [f"(void *)(s + {offset_of[id(var)]}u)" for var in step.updated]
    fills = "\n".join(f"    fill(s + {off}u, {nbytes // 4}u, {c_float(value)}); /* {c_comment(label)} */"
                      for label, off, nbytes, value in extras)
    fill_fn = ("static void fill(unsigned char *p, size_t count, float value)\n{\n    size_t i;\n"
               "    for (i = 0; i < count; i++) memcpy(p + 4 * i, &value, 4);\n}\n") if extras else ""
    alpha = ""
    if "alpha" in hyper:
        alpha = (f"    {{\n        float t = (float)(it + 1), b1 = powf({c_float(float(opt.beta_1))}, t), "
                 f"b2 = powf({c_float(float(opt.beta_2))}, t);\n"
                 f"        hyper_alpha = hyper_lr * sqrtf(1.0f - b2) / (1.0f - b1);\n    }}\n")
    decl_alpha = "    float hyper_alpha = 0.0f;\n" if "alpha" in hyper else ""
    tables = (f"static const int target_dtypes[{max(len(targets), 1)}] = "
              f"{{{', '.join(str(DTYPE_CODES[t.dtype]) for t in targets) or '0'}}};\n"
              f"static const size_t target_sample_elements[{max(len(targets), 1)}] = "
              f"{{{', '.join(f'{t.per_sample}u' for t in targets) or '0'}}};\n")
    copy_weights = (f"    rc = weights ? {n}_gc_check_header(weights) : {n}_copy_embedded_weights(state, {N}_WEIGHTS_SIZE);\n"
                    if embedded else
                    f"    if (!weights) return {N}_ERR_NO_WEIGHTS;\n    rc = {n}_gc_check_header(weights);\n")
    return f"""
/* ---- training API (see {n}.h) ------------------------------------------------------------------------ */
#include "{n}.h"

int {n}_gc_check_header(const void *weights); /* in {n}.c */
int {n}_gc_threads(void);

#define RECORD {record}u
{tables}
{fill_fn}
static int check_state(const unsigned char *s)
{{
    return memcmp(s + RECORD, "GRAPHCTS", 8) == 0 ? {N}_OK : {N}_ERR_NO_WEIGHTS;
}}

size_t {n}_train_state_size(void) {{ return {N}_TRAIN_STATE_SIZE; }}

int {n}_train_init(void *state, size_t state_bytes, const void *weights)
{{
    unsigned char *s = (unsigned char *)state;
    int64_t zero = 0;
    float lr = {c_float(float(hyper['lr']))};
    int rc;
    if (!state) return {N}_ERR_NULL_ARGUMENT;
    if (state_bytes < {N}_TRAIN_STATE_SIZE || (uintptr_t)state % {N}_WORKSPACE_ALIGN != 0) return {N}_ERR_WORKSPACE;
{copy_weights}    if (rc != {N}_OK) return rc;
    if (weights) memcpy(s, weights, {N}_WEIGHTS_SIZE);
    memset(s + RECORD, 0, {N}_TRAIN_STATE_SIZE - RECORD);
    memcpy(s + RECORD, "GRAPHCTS", 8);
    memcpy(s + RECORD + 8, &zero, 8);
    memcpy(s + RECORD + 16, &lr, 4);
{fills}
    return {N}_OK;
}}

size_t {n}_train_workspace_size(int batch)
{{
    return batch < 1 ? 0 : {prefix}_arena_bytes((int64_t)batch, {N}_MAX_THREADS);
}}

int {n}_set_learning_rate(void *state, float learning_rate)
{{
    if (!state) return {N}_ERR_NULL_ARGUMENT;
    if (check_state((const unsigned char *)state) != {N}_OK) return {N}_ERR_NO_WEIGHTS;
    memcpy((unsigned char *)state + RECORD + 16, &learning_rate, 4);
    return {N}_OK;
}}

int64_t {n}_train_iterations(const void *state)
{{
    int64_t it;
    if (!state || check_state((const unsigned char *)state) != {N}_OK) return -1;
    memcpy(&it, (const unsigned char *)state + RECORD + 8, 8);
    return it;
}}

int {n}_target_dtype(int index) {{ return index >= 0 && index < {N}_NUM_TARGETS ? target_dtypes[index] : -1; }}
size_t {n}_target_sample_elements(int index)
{{
    return index >= 0 && index < {N}_NUM_TARGETS ? target_sample_elements[index] : 0;
}}

int {n}_train_step(void *state, int batch, const void *const *inputs, const void *const *targets,
    float *loss, void *workspace, size_t workspace_bytes)
{{
    unsigned char *s = (unsigned char *)state;
    float losses[{max(n_scalars, 1)}], hyper_lr;
{decl_alpha}    int64_t it;
    int32_t rng;
    int i, rc;
    if (!state || !inputs || !targets || !workspace) return {N}_ERR_NULL_ARGUMENT;
    for (i = 0; i < {N}_NUM_INPUTS; i++) if (!inputs[i]) return {N}_ERR_NULL_ARGUMENT;
    for (i = 0; i < {N}_NUM_TARGETS; i++) if (!targets[i]) return {N}_ERR_NULL_ARGUMENT;
    if (batch < 1) return {N}_ERR_BATCH;
    if ((uintptr_t)workspace % {N}_WORKSPACE_ALIGN != 0 || workspace_bytes < {n}_train_workspace_size(batch))
        return {N}_ERR_WORKSPACE;
    if (check_state(s) != {N}_OK) return {N}_ERR_NO_WEIGHTS;
    memcpy(&it, s + RECORD + 8, 8);
    memcpy(&hyper_lr, s + RECORD + 16, 4);
{alpha}    rng = (int32_t)(it % 2147483648);
    (void)rng;
    {{
        void *const feeds[{max(len(feed_exprs), 1)}] = {{{', '.join(feed_exprs) or '0'}}};
        const void *const params[{max(len(params), 1)}] = {{{', '.join(params) or '0'}}};
        void *const outs[{len(outs)}] = {{{', '.join(outs)}}};
        rc = {prefix}_run((int64_t)batch, feeds, outs, params, workspace, {n}_gc_threads());
    }}
    if (rc != 0) return rc == 2 ? {N}_ERR_ID_RANGE : {N}_ERR_INTERNAL;
    it += 1;
    memcpy(s + RECORD + 8, &it, 8);
    if (loss) *loss = losses[0];
    return {N}_OK;
}}
"""

