"""The C API of an exported model: ``<name>.h`` and the functions behind it (appended to ``<name>.c``).

Every public symbol starts with ``<name>_`` (macros with ``<NAME>_``). Strings from users (input and output
names) reach the C only as escaped string literals or sanitized comments.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..codegen.context import c_comment

DTYPE_CODES = {"float32": 1, "int32": 2, "int64": 3, "float64": 4, "bool": 5}
STATUS = [  # (suffix, message); the code is the index. 2 is the generated run's own "id out of range".
    ("OK", "success"),
    ("ERR_NULL_ARGUMENT", "a required pointer argument is NULL"),
    ("ERR_ID_RANGE", "an id given to an Embedding is negative or not below its input_dim"),
    ("ERR_BATCH", "the batch size is below 1, or above the batch size the model was exported for"),
    ("ERR_WORKSPACE", "the workspace is smaller than workspace_size(batch) or not aligned to WORKSPACE_ALIGN"),
    ("ERR_NO_WEIGHTS", "no weights: pass a buffer filled by load_weights (this export has no embedded weights)"),
    ("ERR_WEIGHTS_FORMAT", "not a graphc weights file of this version and byte order"),
    ("ERR_WEIGHTS_MISMATCH", "the weights belong to a different model (layout or size differ)"),
    ("ERR_WEIGHTS_CHECKSUM", "the weights are corrupt (checksum mismatch)"),
    ("ERR_FILE", "the weights file cannot be opened or read in full"),
    ("ERR_OUT_OF_MEMORY", "out of memory (only the _alloc convenience call allocates)"),
    ("ERR_INTERNAL", "internal error in the generated code"),
    ("ERR_PREPARED", "the prepared buffer is smaller than prepared_size() or not aligned to WORKSPACE_ALIGN"),
    ("ERR_WEIGHT_INDEX", "a weight index is negative or not below NUM_WEIGHTS"),
]


def c_string(text: str) -> str:
    """A C string literal of ``text``: letters, digits and a few safe marks as they are, every other byte
    (quotes, backslashes, '?' of trigraphs, non-ASCII) as an octal escape."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/ ")
    return '"' + "".join(chr(b) if chr(b) in safe else f"\\{b:03o}" for b in str(text).encode()) + '"'


@dataclass
class TensorInfo:
    name: str
    dtype: str
    shape: tuple        # shape[0] None: the batch axis
    rows: int           # rows of axis 0 per sample (1 for model inputs and outputs)

    @property
    def per_sample(self) -> int:
        return self.rows * math.prod(self.shape[1:]) if self.batched else math.prod(self.shape)

    @property
    def batched(self) -> bool:
        return bool(self.shape) and self.shape[0] is None


@dataclass
class ApiSpec:
    name: str
    inputs: list            # TensorInfo
    outputs: list
    num_weights: int
    weights_bytes: int      # blob bytes after the 64-byte header
    layout_crc: int
    embedded: bool
    batch_size: int         # 0: any batch
    max_threads: int
    workspace_bytes: int    # for the fixed batch size (0 when any batch)
    graph_prefix: str       # of the generated <prefix>_run / _arena_bytes
    weight_offsets: list    # byte offset of each weight in the payload
    weight_sizes: list      # and its bytes
    weight_names: list      # the variables' paths
    prepared: bool = False  # the generated code has prepared weights (<prefix>_prepare, _run_prepared)


def header(spec: ApiSpec, title: str, extra=()) -> str:
    n, N = spec.name, spec.name.upper()
    lines = [f"/* {n}.h: C API of {c_comment(title)}, exported by graphc.",
             " *",
             " * Inputs and outputs are C-contiguous arrays with the batch as their first axis:",
             *[f" *   input  {i} {c_comment(t.name)!s}: {t.dtype} {_shape_text(t)}" for i, t in enumerate(spec.inputs)],
             *[f" *   output {i} {c_comment(t.name)!s}: {t.dtype} {_shape_text(t)}" for i, t in enumerate(spec.outputs)],
             " *",
             f" * {n}_predict is reentrant and thread-safe: it keeps no state of its own and allocates nothing; every",
             " * intermediate lives in the caller's workspace. Call it from several threads with one workspace each.",
             " */",
             f"#ifndef {N}_H_", f"#define {N}_H_", "", "#include <stddef.h>", "#include <stdint.h>", "",
             "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
             f"#define {N}_API_VERSION 1",
             f"#define {N}_NUM_INPUTS {len(spec.inputs)}",
             f"#define {N}_NUM_OUTPUTS {len(spec.outputs)}",
             f"#define {N}_NUM_WEIGHTS {spec.num_weights}",
             f"#define {N}_HAS_EMBEDDED_WEIGHTS {int(spec.embedded)}",
             f"/* bytes of a weights buffer ({n}_load_weights fills one; {n}_weights_size() returns the same) */",
             f"#define {N}_WEIGHTS_SIZE ((size_t){64 + spec.weights_bytes}u)",
             f"/* the workspace holds scratch for this many OpenMP threads; more are not used */",
             f"#define {N}_MAX_THREADS {spec.max_threads}",
             f"#define {N}_WORKSPACE_ALIGN 64"]
    if spec.batch_size:
        lines += [f"/* exported for batches of at most {spec.batch_size}: a static arena of this size fits every call */",
                  f"#define {N}_BATCH_SIZE {spec.batch_size}",
                  f"#define {N}_WORKSPACE_SIZE ((size_t){spec.workspace_bytes}u)"]
    for kind, items in (("INPUT", spec.inputs), ("OUTPUT", spec.outputs)):
        for i, t in enumerate(items):
            lines.append(f"#define {N}_{kind}{i}_SAMPLE_ELEMENTS {t.per_sample} /* elements per sample */")
    lines += ["", f"/* dtypes of inputs and outputs */",
              *[f"#define {N}_{dt.upper()} {code}" for dt, code in DTYPE_CODES.items()], "",
              "/* status codes */",
              *[f"#define {N}_{suffix} {code}" for code, (suffix, _) in enumerate(STATUS)], "",
              f"/* weights: {'NULL for the weights compiled into the library, or ' if spec.embedded else ''}"
              f"a buffer of {N}_WEIGHTS_SIZE bytes",
              f" * filled by {n}_load_weights (or checked by {n}_check_weights).",
              f" * batch: samples in this call{f' (1..{N}_BATCH_SIZE)' if spec.batch_size else ''}; inputs[i], outputs[i]: "
              "arrays of the i-th input/output for `batch` samples.",
              f" * workspace: workspace_bytes >= {n}_workspace_size(batch) bytes, aligned to {N}_WORKSPACE_ALIGN. */",
              f"int {n}_predict(const void *weights, int batch, const void *const *inputs, void *const *outputs,",
              f"    void *workspace, size_t workspace_bytes);",
              f"/* Prepared weights: copies of weights that the kernels would otherwise derive on every call (matrices",
              f" * packed for the GEMM, 3x3 kernels transformed for Winograd). {n}_prepare fills a buffer of",
              f" * {n}_prepared_size() bytes, aligned to {N}_WORKSPACE_ALIGN, from weights (as {n}_predict takes them);",
              f" * {n}_predict_prepared reads it on every call (NULL: as {n}_predict), with the same weights, and is",
              f" * reentrant as {n}_predict. Prepare again after changing the weights. 0 bytes: nothing to prepare",
              f" * ({n}_prepare does nothing and any buffer, NULL too, is accepted). */",
              f"size_t {n}_prepared_size(void);",
              f"int {n}_prepare(const void *weights, void *prepared, size_t prepared_bytes);",
              f"int {n}_predict_prepared(const void *weights, const void *prepared, int batch, const void *const *inputs,",
              f"    void *const *outputs, void *workspace, size_t workspace_bytes);",
              f"/* the same, allocating (and freeing) its own workspace */",
              f"int {n}_predict_alloc(const void *weights, int batch, const void *const *inputs, void *const *outputs);",
              f"size_t {n}_workspace_size(int batch);",
              f"const char *{n}_status_message(int status);", "",
              f"/* weights from a file written by graphc.export_c(weights=\"file\"): magic, version, size and checksum",
              f" * are checked; a wrong file returns an error code. */",
              f"size_t {n}_weights_size(void);",
              f"int {n}_load_weights(const char *path, void *buffer, size_t buffer_bytes);",
              f"/* checks a weights image already in memory (e.g. a mapped file): {N}_OK when it can be passed as weights */",
              f"int {n}_check_weights(const void *weights, size_t bytes);"]
    lines += ["/* one weight of a weights image (or training state; NULL: the embedded weights): its variable's",
              " * path (e.g. \"dense/kernel\"), its bytes (Keras's layout, C order), a copy out, a copy in */",
              f"const char *{n}_weight_name(int index);",
              f"size_t {n}_weight_bytes(int index);",
              f"int {n}_read_weight(const void *weights, int index, void *dst);",
              f"int {n}_write_weight(void *weights, int index, const void *src);",
              f"/* writes a weights file (atomically), with a fresh checksum; graphc.export.load_weights reads it */",
              f"int {n}_save_weights(const void *weights, const char *path);"]
    if spec.embedded:
        lines += [f"/* copies the embedded weights into a buffer of {N}_WEIGHTS_SIZE bytes (to modify them) */",
                  f"int {n}_copy_embedded_weights(void *buffer, size_t buffer_bytes);"]
    lines += ["",
              "/* inputs and outputs: name, dtype code, rank, dims (axis 0 is -1: any batch), elements per sample;",
              " * NULL / -1 / 0 for an index out of range */",
              *[f"{ret}{n}_{kind}_{what}({args});" for kind in ("input", "output") for ret, what, args in
                (("const char *", "name", "int index"), ("int ", "dtype", "int index"), ("int ", "rank", "int index"),
                 ("int64_t ", "dim", "int index, int axis"), ("size_t ", "sample_elements", "int index"))],
              *extra, "", "#ifdef __cplusplus", "}", "#endif", f"#endif /* {N}_H_ */", ""]
    return "\n".join(lines)


def _shape_text(t):
    return "[" + ", ".join("batch" if d is None else str(d) for d in t.shape) + "]"


def implementation(spec: ApiSpec) -> str:
    """The API functions (appended to the generated code in <name>.c)."""
    n, N, g = spec.name, spec.name.upper(), spec.graph_prefix
    tables = []
    for kind, items in (("input", spec.inputs), ("output", spec.outputs)):
        count = max(len(items), 1)
        rank = max([len(t.shape) for t in items] + [1])
        dims = ", ".join("{" + ", ".join("-1" if d is None else str(d) for d in t.shape) + "}" if t.shape else "{0}"
                         for t in items) or "{0}"
        tables += [f"static const char *const {kind}_names[{count}] = {{{', '.join(c_string(t.name) for t in items) or '0'}}};",
                   f"static const int {kind}_dtypes[{count}] = {{{', '.join(str(DTYPE_CODES[t.dtype]) for t in items) or '0'}}};",
                   f"static const int {kind}_ranks[{count}] = {{{', '.join(str(len(t.shape)) for t in items) or '0'}}};",
                   f"static const int64_t {kind}_dims[{count}][{rank}] = {{{dims}}};",
                   f"static const size_t {kind}_sample_elements[{count}] = {{{', '.join(f'{t.per_sample}u' for t in items) or '0'}}};"]
    offsets = ", ".join(f"{o}u" for o in spec.weight_offsets) or "0"
    messages = ",\n    ".join(c_string(m) for _, m in STATUS)
    batch_check = f" || batch > {N}_BATCH_SIZE" if spec.batch_size else ""
    embedded_ref = f"extern const void *const {n}_embedded_weights[{max(spec.num_weights, 1)}];\n" if spec.embedded else ""
    resolve_null = (f"        for (i = 0; i < {N}_NUM_WEIGHTS; i++) params[i] = {n}_embedded_weights[i];\n        return {N}_OK;"
                    if spec.embedded else f"        return {N}_ERR_NO_WEIGHTS;")
    if spec.prepared:
        prepared_size = f"{g}_prepared_floats() * sizeof(float)"
        prepare_body = f"""    const void *params[{max(spec.num_weights, 1)}];
    int rc;
    if (!prepared) return {N}_ERR_NULL_ARGUMENT;
    if ((uintptr_t)prepared % {N}_WORKSPACE_ALIGN != 0 || prepared_bytes < {n}_prepared_size()) return {N}_ERR_PREPARED;
    rc = resolve_weights(weights, params);
    if (rc != {N}_OK) return rc;
    {g}_prepare(params, (float *)prepared);
    return {N}_OK;"""
        prepared_check = f"    if ((uintptr_t)prepared % {N}_WORKSPACE_ALIGN != 0) return {N}_ERR_PREPARED;\n"
        run_call = (f"prepared ? {g}_run_prepared((int64_t)batch, (void *const *)inputs, outputs, params, "
                    f"(const float *)prepared, workspace, {n}_gc_threads())\n"
                    f"                  : {g}_run((int64_t)batch, (void *const *)inputs, outputs, params, workspace, "
                    f"{n}_gc_threads())")
    else:  # nothing to prepare: the buffer is not read
        prepared_size = "0"
        prepare_body = f"    (void)weights;\n    (void)prepared;\n    (void)prepared_bytes;\n    return {N}_OK;"
        prepared_check = "    (void)prepared;\n"
        run_call = f"{g}_run((int64_t)batch, (void *const *)inputs, outputs, params, workspace, {n}_gc_threads())"
    write_header = f"""static void write_u32(unsigned char *p, uint32_t v)
{{
    p[0] = (unsigned char)v; p[1] = (unsigned char)(v >> 8); p[2] = (unsigned char)(v >> 16); p[3] = (unsigned char)(v >> 24);
}}

/* the 64-byte header of graphc/export/weights.py */
static void write_header(unsigned char *h, uint32_t payload_crc)
{{
    uint32_t order = 0x01020304u;
    memcpy(h, "GRAPHCWT", 8);
    write_u32(h + 8, 1u);
    memcpy(h + 12, &order, 4); /* native order: a reader of another byte order sees it reversed */
    write_u32(h + 16, (uint32_t)PAYLOAD_BYTES); write_u32(h + 20, (uint32_t)(PAYLOAD_BYTES >> 32));
    write_u32(h + 24, (uint32_t){spec.num_weights}u); write_u32(h + 28, 0u);
    write_u32(h + 32, LAYOUT_CRC);
    write_u32(h + 36, payload_crc);
}}

"""
    copy_embedded = "" if not spec.embedded else f"""
int {n}_copy_embedded_weights(void *buffer, size_t buffer_bytes)
{{
    unsigned char *out = (unsigned char *)buffer;
    int i;
    if (!buffer) return {N}_ERR_NULL_ARGUMENT;
    if (buffer_bytes < {N}_WEIGHTS_SIZE) return {N}_ERR_WEIGHTS_MISMATCH;
    memset(out, 0, {N}_WEIGHTS_SIZE);
    for (i = 0; i < {N}_NUM_WEIGHTS; i++)
        memcpy(out + 64 + weight_offsets[i], {n}_embedded_weights[i], weight_bytes[i]);
    write_header(out, crc32(out + 64, {spec.weights_bytes}u));
    return {N}_OK;
}}
"""
    sizes = (f"static const size_t weight_bytes[{max(spec.num_weights, 1)}] = "
             f"{{{', '.join(f'{b}u' for b in spec.weight_sizes) or '0'}}};\n"
             f"static const char *const weight_names[{max(spec.num_weights, 1)}] = "
             f"{{{', '.join(c_string(x) for x in spec.weight_names) or '0'}}};\n")
    return f"""
/* ---- C API (see {n}.h) ------------------------------------------------------------------------------ */
#include <stdio.h>
#include <stdlib.h>
#include "{n}.h"
#ifdef _OPENMP
#include <omp.h>
#endif

{embedded_ref}{chr(10).join(tables)}
static const size_t weight_offsets[{max(spec.num_weights, 1)}] = {{{offsets}}};
{sizes}static const char *const status_messages[] = {{
    {messages}}};

#define LAYOUT_CRC 0x{spec.layout_crc:08x}u
#define PAYLOAD_BYTES ((uint64_t){spec.weights_bytes}u)

static uint32_t read_u32(const unsigned char *p)
{{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}}

static uint64_t read_u64(const unsigned char *p) {{ return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32; }}

/* zlib's CRC-32, a byte at a time from a table the caller keeps on its stack (no global state) */
static void crc32_table(uint32_t table[256])
{{
    uint32_t k;
    for (k = 0; k < 256; k++) {{
        uint32_t r = k;
        int b;
        for (b = 0; b < 8; b++) r = (r & 1u) ? 0xEDB88320u ^ (r >> 1) : r >> 1;
        table[k] = r;
    }}
}}

static uint32_t crc32_update(const uint32_t table[256], uint32_t c, const unsigned char *p, size_t n)
{{
    size_t i;
    for (i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
    return c;
}}

static uint32_t crc32(const unsigned char *p, size_t n)
{{
    uint32_t table[256];
    crc32_table(table);
    return crc32_update(table, 0xFFFFFFFFu, p, n) ^ 0xFFFFFFFFu;
}}

{write_header}
/* header checks only (cheap: run on every predict call) */
static int check_header(const unsigned char *h)
{{
    uint32_t order;
    memcpy(&order, h + 12, 4);
    if (memcmp(h, "GRAPHCWT", 8) != 0 || read_u32(h + 8) != 1u || order != 0x01020304u) return {N}_ERR_WEIGHTS_FORMAT;
    if (read_u64(h + 16) != PAYLOAD_BYTES || read_u64(h + 24) != {spec.num_weights}u || read_u32(h + 32) != LAYOUT_CRC)
        return {N}_ERR_WEIGHTS_MISMATCH;
    return {N}_OK;
}}

static int resolve_weights(const void *weights, const void **params)
{{
    const unsigned char *blob = (const unsigned char *)weights;
    int i, rc;
    if (!weights) {{
{resolve_null}
    }}
    rc = check_header(blob);
    if (rc != {N}_OK) return rc;
    for (i = 0; i < {N}_NUM_WEIGHTS; i++) params[i] = blob + 64 + weight_offsets[i];
    return {N}_OK;
}}

/* for the training step's translation unit too */
int {n}_gc_check_header(const void *weights) {{ return check_header((const unsigned char *)weights); }}

/* the threads a call uses: OpenMP's count, at most the MAX_THREADS the workspace has scratch for */
int {n}_gc_threads(void)
{{
#ifdef _OPENMP
    const int n = omp_get_max_threads();
    return n < {N}_MAX_THREADS ? n : {N}_MAX_THREADS;
#else
    return 1;
#endif
}}

size_t {n}_weights_size(void) {{ return {N}_WEIGHTS_SIZE; }}

int {n}_check_weights(const void *weights, size_t bytes)
{{
    const unsigned char *blob = (const unsigned char *)weights;
    int rc;
    if (!weights) return {N}_ERR_NULL_ARGUMENT;
    if (bytes < 64) return {N}_ERR_WEIGHTS_FORMAT;
    rc = check_header(blob);
    if (rc != {N}_OK) return rc;
    if (bytes != {N}_WEIGHTS_SIZE) return {N}_ERR_WEIGHTS_MISMATCH;
    return crc32(blob + 64, (size_t)PAYLOAD_BYTES) == read_u32(blob + 36) ? {N}_OK : {N}_ERR_WEIGHTS_CHECKSUM;
}}

int {n}_load_weights(const char *path, void *buffer, size_t buffer_bytes)
{{
    FILE *f;
    size_t got;
    int extra, rc;
    if (!path || !buffer) return {N}_ERR_NULL_ARGUMENT;
    if (buffer_bytes < {N}_WEIGHTS_SIZE) return {N}_ERR_WEIGHTS_MISMATCH;
    f = fopen(path, "rb");
    if (!f) return {N}_ERR_FILE;
    got = fread(buffer, 1, 64, f);
    if (got != 64) {{ fclose(f); return {N}_ERR_WEIGHTS_FORMAT; }}
    rc = check_header((const unsigned char *)buffer);
    if (rc != {N}_OK) {{ fclose(f); return rc; }}
    got = fread((unsigned char *)buffer + 64, 1, (size_t)PAYLOAD_BYTES, f);
    extra = fgetc(f);
    fclose(f);
    if (got != (size_t)PAYLOAD_BYTES) return {N}_ERR_FILE;
    if (extra != EOF) return {N}_ERR_WEIGHTS_MISMATCH;
    return {n}_check_weights(buffer, {N}_WEIGHTS_SIZE);
}}
{copy_embedded}
const char *{n}_weight_name(int index) {{ return index >= 0 && index < {N}_NUM_WEIGHTS ? weight_names[index] : NULL; }}
size_t {n}_weight_bytes(int index) {{ return index >= 0 && index < {N}_NUM_WEIGHTS ? weight_bytes[index] : 0; }}

int {n}_read_weight(const void *weights, int index, void *dst)
{{
    const void *params[{max(spec.num_weights, 1)}];
    int rc;
    if (!dst) return {N}_ERR_NULL_ARGUMENT;
    if (index < 0 || index >= {N}_NUM_WEIGHTS) return {N}_ERR_WEIGHT_INDEX;
    rc = resolve_weights(weights, params);
    if (rc != {N}_OK) return rc;
    memcpy(dst, params[index], weight_bytes[index]);
    return {N}_OK;
}}

int {n}_write_weight(void *weights, int index, const void *src)
{{
    unsigned char *blob = (unsigned char *)weights;
    int rc;
    if (!weights || !src) return {N}_ERR_NULL_ARGUMENT;
    if (index < 0 || index >= {N}_NUM_WEIGHTS) return {N}_ERR_WEIGHT_INDEX;
    rc = check_header(blob);
    if (rc != {N}_OK) return rc;
    memcpy(blob + 64 + weight_offsets[index], src, weight_bytes[index]);
    return {N}_OK;
}}

int {n}_save_weights(const void *weights, const char *path)
{{
    const void *params[{max(spec.num_weights, 1)}];
    unsigned char header[64], zeros[64];
    char tmp[4096];
    size_t used = 0;
    FILE *f;
    int i, rc, ok;
    uint32_t crc = 0xFFFFFFFFu, table[256];
    if (!path) return {N}_ERR_NULL_ARGUMENT;
    rc = resolve_weights(weights, params);
    if (rc != {N}_OK) return rc;
    if (strlen(path) + 5 > sizeof tmp) return {N}_ERR_FILE;
    strcpy(tmp, path);
    strcat(tmp, ".tmp");
    crc32_table(table);
    memset(zeros, 0, sizeof zeros);
    for (i = 0; i < {N}_NUM_WEIGHTS; i++) {{   /* the payload's CRC, padding included */
        crc = crc32_update(table, crc, (const unsigned char *)params[i], weight_bytes[i]);
        used = weight_offsets[i] + weight_bytes[i];
        crc = crc32_update(table, crc, zeros, (i + 1 < {N}_NUM_WEIGHTS ? weight_offsets[i + 1] : (size_t)PAYLOAD_BYTES) - used);
    }}
    if ({N}_NUM_WEIGHTS == 0) crc = crc32_update(table, crc, zeros, (size_t)PAYLOAD_BYTES);
    memset(header, 0, sizeof header);
    write_header(header, crc ^ 0xFFFFFFFFu);
    f = fopen(tmp, "wb");
    if (!f) return {N}_ERR_FILE;
    ok = fwrite(header, 1, 64, f) == 64;
    for (i = 0; ok && i < {N}_NUM_WEIGHTS; i++) {{
        size_t end = i + 1 < {N}_NUM_WEIGHTS ? weight_offsets[i + 1] : (size_t)PAYLOAD_BYTES;
        ok = fwrite(params[i], 1, weight_bytes[i], f) == weight_bytes[i];
        ok = ok && fwrite(zeros, 1, end - weight_offsets[i] - weight_bytes[i], f) == end - weight_offsets[i] - weight_bytes[i];
    }}
    if ({N}_NUM_WEIGHTS == 0) ok = ok && fwrite(zeros, 1, (size_t)PAYLOAD_BYTES, f) == (size_t)PAYLOAD_BYTES;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {{ remove(tmp); return {N}_ERR_FILE; }}
    return {N}_OK;
}}

size_t {n}_workspace_size(int batch)
{{
    return batch < 1 ? 0 : {g}_arena_bytes((int64_t)batch, {N}_MAX_THREADS);
}}

size_t {n}_prepared_size(void)
{{
    return {prepared_size};
}}

int {n}_prepare(const void *weights, void *prepared, size_t prepared_bytes)
{{
{prepare_body}
}}

int {n}_predict_prepared(const void *weights, const void *prepared, int batch, const void *const *inputs,
    void *const *outputs, void *workspace, size_t workspace_bytes)
{{
    const void *params[{max(spec.num_weights, 1)}];
    int i, rc;
    if (!inputs || !outputs || !workspace) return {N}_ERR_NULL_ARGUMENT;
    for (i = 0; i < {N}_NUM_INPUTS; i++) if (!inputs[i]) return {N}_ERR_NULL_ARGUMENT;
    for (i = 0; i < {N}_NUM_OUTPUTS; i++) if (!outputs[i]) return {N}_ERR_NULL_ARGUMENT;
    if (batch < 1{batch_check}) return {N}_ERR_BATCH;
    if ((uintptr_t)workspace % {N}_WORKSPACE_ALIGN != 0 || workspace_bytes < {n}_workspace_size(batch))
        return {N}_ERR_WORKSPACE;
{prepared_check}    rc = resolve_weights(weights, params);
    if (rc != {N}_OK) return rc;
    rc = {run_call};
    return rc == 0 ? {N}_OK : rc == 2 ? {N}_ERR_ID_RANGE : {N}_ERR_INTERNAL;
}}

int {n}_predict(const void *weights, int batch, const void *const *inputs, void *const *outputs,
    void *workspace, size_t workspace_bytes)
{{
    return {n}_predict_prepared(weights, NULL, batch, inputs, outputs, workspace, workspace_bytes);
}}

int {n}_predict_alloc(const void *weights, int batch, const void *const *inputs, void *const *outputs)
{{
    size_t bytes = {n}_workspace_size(batch);
    unsigned char *raw, *aligned;
    int rc;
    if (bytes == 0) return {N}_ERR_BATCH;
    raw = (unsigned char *)malloc(bytes + {N}_WORKSPACE_ALIGN);
    if (!raw) return {N}_ERR_OUT_OF_MEMORY;
    aligned = raw + ({N}_WORKSPACE_ALIGN - (uintptr_t)raw % {N}_WORKSPACE_ALIGN) % {N}_WORKSPACE_ALIGN;
    rc = {n}_predict(weights, batch, inputs, outputs, aligned, bytes);
    free(raw);
    return rc;
}}

const char *{n}_status_message(int status)
{{
    if (status < 0 || status >= (int)(sizeof status_messages / sizeof status_messages[0])) return "unknown status code";
    return status_messages[status];
}}

{_info_functions(n, N)}"""


def _info_functions(n, N) -> str:
    out = []
    for kind, count in (("input", f"{N}_NUM_INPUTS"), ("output", f"{N}_NUM_OUTPUTS")):
        ok = f"index >= 0 && index < {count}"
        out += [f"const char *{n}_{kind}_name(int index) {{ return {ok} ? {kind}_names[index] : NULL; }}",
                f"int {n}_{kind}_dtype(int index) {{ return {ok} ? {kind}_dtypes[index] : -1; }}",
                f"int {n}_{kind}_rank(int index) {{ return {ok} ? {kind}_ranks[index] : -1; }}",
                f"int64_t {n}_{kind}_dim(int index, int axis)",
                "{", f"    return {ok} && axis >= 0 && axis < {kind}_ranks[index] ? {kind}_dims[index][axis] : 0;", "}",
                f"size_t {n}_{kind}_sample_elements(int index) {{ return {ok} ? {kind}_sample_elements[index] : 0; }}"]
    return "\n".join(out) + "\n"
