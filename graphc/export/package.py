"""graphc.export_c: a model -> a self-contained C package (header, sources, weights, CMakeLists.txt).

The package is written into a fresh directory beside ``out_dir`` and moved into place at the end, so a
failed export leaves no half-written package, and an existing directory is replaced only when it is an
earlier graphc export and ``overwrite=True``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..codegen import generate_c
from ..codegen.generate import optimize
from ..passes.memory import rows_factor
from . import capi, kernel_sources
from .training import training_parts
from .weights import WeightsLayout

MARKER = "graphc-export.json"
TEMPLATES = Path(__file__).resolve().parent / "templates"
C_KEYWORDS = set("""auto break case char const continue default do double else enum extern float for goto if
inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void
volatile while _Bool _Complex _Imaginary bool true false class namespace new delete template this""".split())
# <name>.h sits on the include path of every program built with the package: it must not hide a system header
SYSTEM_HEADERS = set("""assert complex ctype errno fenv float inttypes iso646 limits locale math setjmp signal stdalign
stdarg stdatomic stdbool stddef stdint stdio stdlib stdnoreturn string tgmath threads time uchar wchar wctype
pthread unistd fcntl sched dirent dlfcn strings alloca malloc memory omp immintrin x86intrin arm_neon""".split())
_CTYPE = {"float32": "float", "float64": "double", "int32": "int32_t", "int64": "int64_t", "bool": "unsigned char"}


def check_name(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"export_c: name must be a str (a C identifier), received {type(name).__name__}")
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name) or "__" in name or name in C_KEYWORDS:
        raise ValueError(f"export_c: name {name!r} is not usable as a C identifier prefix: use 1-40 letters, "
                         "digits and single underscores, starting with a letter, and not a C keyword "
                         "(e.g. name='mnist_mlp')")
    if name.lower() in SYSTEM_HEADERS:
        raise ValueError(f"export_c: name {name!r} would give a header {name}.h that hides the system header "
                         f"<{name.lower()}.h> from programs built with the package: choose another name")
    if name.lower() == "example_main":
        raise ValueError("export_c: name 'example_main' is the package's example program (example_main.c): "
                         "choose another name")
    return name


@dataclass
class Export:
    """What export_c produced: the package directory and the facts the figures and tests need."""
    path: Path
    name: str
    spec: capi.ApiSpec
    arena_bytes: int          # planned intermediates for the fixed or an example batch
    peak_live_bytes: int


def export_c(model, out_dir, *, name="model", weights="embedded", batch_size=None, training=False,
             overwrite=False, input_shapes=None, max_threads=None) -> Path:
    """Writes ``model`` as a standalone C package into ``out_dir``: ``<name>.h`` (the API), ``<name>.c``,
    the weights (``<name>_weights.c`` with ``weights="embedded"``, ``<name>.weights`` with ``"file"``), the
    kernels it needs, ``CMakeLists.txt``, ``example_main.c`` and a README. ``batch_size`` fixes the largest
    batch (the header then defines ``<NAME>_WORKSPACE_SIZE``); ``input_shapes`` (per sample, without the
    batch axis) fix variable-length inputs; ``max_threads`` bounds the OpenMP threads a call uses (the
    workspace holds scratch for that many; default 8). ``training=True`` (a compiled model) adds
    ``<name>_train_step`` and the training state functions (``<name>_train.c``). Returns the package directory."""
    return export_package(model, out_dir, name=name, weights=weights, batch_size=batch_size, training=training,
                          overwrite=overwrite, input_shapes=input_shapes, max_threads=max_threads).path


def export_package(model, out_dir, *, name="model", weights="embedded", batch_size=None, training=False,
                   overwrite=False, input_shapes=None, max_threads=None) -> Export:
    from ..models.functional import Model
    if not isinstance(model, Model):
        raise TypeError(f"export_c expects a graphc Model, received {type(model).__name__}")
    name = check_name(name)
    if weights not in ("embedded", "file"):
        raise ValueError(f"export_c: weights must be 'embedded' or 'file', received {weights!r}")
    batch_size = _positive("batch_size", batch_size)
    max_threads = _positive("max_threads", max_threads) or 8
    out_dir = Path(out_dir)
    _check_destination(out_dir, overwrite)

    graph = _inference_graph(model, input_shapes)
    generated = generate_c(graph, prefix="graphc_model", title=f"model {model.name}")
    layout = WeightsLayout(generated.graph)
    spec = _api_spec(model, name, generated, layout, weights == "embedded", batch_size or 0, max_threads)
    if batch_size:
        spec.workspace_bytes = _workspace_bytes(generated, batch_size, max_threads)

    train = training_parts(model, name, graph, layout, weights == "embedded") if training else None
    files = {f"{name}.h": capi.header(spec, f"model {model.name}", train.header_lines if train else ()),
             f"{name}.c": _model_source(generated, name, spec),
             **{f"kernels/{k}": v for k, v in kernel_sources.kernel_files(
                 generated.source + (train.generated_source if train else ""), name).items()}}
    if train:
        files[f"{name}_train.c"] = train.source
    if weights == "embedded":
        files[f"{name}_weights.c"] = layout.embedded_c(name, f"{name}.h")
    files["CMakeLists.txt"] = _cmake(name, sorted(f for f in files if f.endswith(".c")), weights == "file")
    files["example_main.c"] = _fill(_template("example_main.c"), name,
                                    WEIGHTS_DEFAULT="NULL" if weights == "embedded" else f'"{name}.weights"')
    files["README.md"] = _readme(model, name, spec)
    files[MARKER] = json.dumps({"format": 1, "generator": "graphc", "model": model.name, "name": name,
                                "weights": weights, "batch_size": batch_size, "max_threads": max_threads,
                                "training": bool(training)},
                               indent=2) + "\n"
    blobs = {f"{name}.weights": layout.file_bytes()} if weights == "file" else {}
    _write_package(out_dir, files, blobs)
    plan = generated.plan
    example = batch_size or 1
    return Export(out_dir, name, spec, plan.fixed_bytes + example * plan.per_sample_bytes,
                  plan.peak_live_bytes(example))


def load_weights(model, path, input_shapes=None):
    """Sets ``model``'s weights from a weights file written by ``export_c(weights="file")`` or by the C
    function ``<name>_save_weights`` (e.g. after training in C); the file must belong to this model."""
    from .weights import read_file
    layout = WeightsLayout(optimize(_inference_graph(model, input_shapes)))  # generate_c's params, in its order
    payload = read_file(path, layout)
    for var, e in zip(layout.variables, layout.entries):
        var.assign(np.frombuffer(payload, dtype=np.dtype(e.dtype).newbyteorder("<"), count=math.prod(e.shape),
                                 offset=e.offset).reshape(e.shape).astype(e.dtype))


def _positive(what, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"export_c: {what} must be a positive int or None, received {value!r}")
    return value


def _check_destination(out_dir: Path, overwrite: bool):
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"export_c: {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise ValueError(f"export_c: {out_dir} exists and is not empty; pass overwrite=True to replace an "
                             "earlier export, or choose another directory")
        if not (out_dir / MARKER).is_file():
            raise ValueError(f"export_c: {out_dir} is not empty and is not a graphc export (no {MARKER}); "
                             "refusing to replace it even with overwrite=True")
        here, there = Path.cwd().resolve(), out_dir.resolve()
        if here == there or there in here.parents:  # (replacing it would leave this process in a deleted directory)
            raise ValueError(f"export_c: cannot replace {out_dir}: it holds the current working directory; "
                             "change directory first, or export elsewhere")


def _inference_graph(model, input_shapes):
    from ..passes import needs_specialization, specialize
    graph = model.build_graph(False)
    names = model.input_names
    if input_shapes is not None:
        shapes = [tuple(s) for s in input_shapes]
        if len(shapes) != len(model.inputs):
            raise ValueError(f"export_c: input_shapes has {len(shapes)} shape(s), model '{model.name}' has "
                             f"{len(model.inputs)} input(s) {names}")
        for n, s, t in zip(names, shapes, model.inputs):
            want = t.shape[1:]
            if len(s) != len(want) or any(w is not None and w != d for w, d in zip(want, s)) or \
                    any(not isinstance(d, int) or d < 1 for d in s):
                raise ValueError(f"export_c: input_shapes for input '{n}' must fit {tuple(want)} with every "
                                 f"None replaced by a positive int, received {s}")
        return specialize(graph, tuple(shapes)) if needs_specialization(graph) else graph
    if needs_specialization(graph):
        free = [f"'{n}' {tuple(t.shape)}" for n, t in zip(names, model.inputs) if None in t.shape[1:]]
        raise ValueError(f"export_c: model '{model.name}' has variable-length inputs ({', '.join(free)}); "
                         "C needs every size but the batch fixed: pass input_shapes=[...] (per sample, "
                         "without the batch axis), e.g. input_shapes=[(100,)]")
    return graph


def _api_spec(model, name, generated, layout, embedded, batch_size, max_threads) -> capi.ApiSpec:
    g = generated.graph
    rows = rows_factor(g)
    out_names = list(getattr(model, "output_names", None) or [f"output_{k}" for k in range(len(g.outputs))])
    nul = [n for n in [*model.input_names, *out_names] if "\0" in str(n)]
    if nul:  # (C strings end at the first NUL byte: input_name() would give a cut name)
        raise ValueError(f"export_c: input or output names {nul} contain a NUL byte, which a C string cannot hold; "
                         "rename them")
    ins = [capi.TensorInfo(n, v.type.dtype, tuple(v.type.shape), 1) for n, v in zip(model.input_names, g.inputs)]
    outs = [capi.TensorInfo(n, v.type.dtype, tuple(v.type.shape), rows.get(v.id) or 1)
            for n, v in zip(out_names, g.outputs)]
    return capi.ApiSpec(name=name, inputs=ins, outputs=outs, num_weights=len(layout.entries),
                        weights_bytes=layout.total_bytes, layout_crc=layout.layout_hash(), embedded=embedded,
                        batch_size=batch_size, max_threads=max_threads, workspace_bytes=0,
                        graph_prefix=f"{name}_gc_model", weight_offsets=[e.offset for e in layout.entries],
                        weight_sizes=[e.nbytes for e in layout.entries],
                        weight_names=[e.label for e in layout.entries],
                        prepared="_prepare(" in generated.cdef)


def _workspace_bytes(generated, batch, max_threads) -> int:
    """Asks the generated code itself (compiled through the runtime, cached) for its workspace size."""
    from ..runtime import compile_module
    module = compile_module(generated.source, generated.cdef, name=generated.prefix)
    return int(getattr(module.lib, f"{generated.prefix}_arena_bytes")(batch, max_threads))


def _model_source(generated, name, spec) -> str:
    """The generated graph code in the model's namespace followed by the API functions."""
    return kernel_sources.internal_source(generated, name) + capi.implementation(spec)


def _template(file):
    return (TEMPLATES / file).read_text()


def _fill(text, name, **values):
    values = {"NAME": name, "UNAME": name.upper(), **values}
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    return text


def _cmake(name, sources, weights_file) -> str:
    copy = (f'  configure_file("${{CMAKE_CURRENT_SOURCE_DIR}}/{name}.weights" '
            f'"${{CMAKE_CURRENT_BINARY_DIR}}/{name}.weights" COPYONLY)\n') if weights_file else ""
    return _fill(_template("CMakeLists.txt"), name, SOURCES="".join(f"  {s}\n" for s in sources).rstrip("\n"),
                 COPY_WEIGHTS=copy)


def _readme(model, name, spec) -> str:
    from ..codegen.context import c_comment
    buffers = [f"    static {_CTYPE[t.dtype]} in{i}[2 * {name.upper()}_INPUT{i}_SAMPLE_ELEMENTS];"
               for i, t in enumerate(spec.inputs)]
    buffers += [f"    static {_CTYPE[t.dtype]} out{i}[2 * {name.upper()}_OUTPUT{i}_SAMPLE_ELEMENTS];"
                for i, t in enumerate(spec.outputs)]
    signature = ("```c\n" + "\n".join(line for line in capi.header(spec, "").splitlines()
                                       if line.startswith(("int ", "size_t ", "const char", "    void"))) + "\n```")
    note = ("" if spec.embedded else
            f"\nThe weights are in `{name}.weights` (not compiled in): load them with "
            f"`{name}_load_weights(path, buffer, {name}_weights_size())` and pass the buffer as `weights`; a "
            "wrong or damaged file returns an error code.\n")
    weights_arg = "NULL" if spec.embedded else "weights"
    if not spec.embedded:
        buffers += [f"    static unsigned char weights[{name.upper()}_WEIGHTS_SIZE];",
                    f"    if ({name}_load_weights(\"{name}.weights\", weights, sizeof weights) != {name.upper()}_OK) return 1;"]
    return _fill(_template("README.md"), name, TITLE=c_comment(f"model {model.name}"), SIGNATURE=signature,
                 EXAMPLE_BATCH=2, BUFFERS="\n".join(buffers), WEIGHTS_ARG=weights_arg, WEIGHTS_NOTE=note,
                 INPUT_LIST=", ".join(f"in{i}" for i in range(len(spec.inputs))),
                 OUTPUT_LIST=", ".join(f"out{i}" for i in range(len(spec.outputs))))


def _write_package(out_dir: Path, files: dict, blobs: dict):
    """Everything into a new directory beside the destination, then moved into place: into an empty
    directory entry by entry (it keeps its own mode, owner and links to it), over an earlier export by
    swapping the two directories (the old one is removed only once the new one is complete). A link to a
    directory writes into the directory it names."""
    target = Path(os.path.realpath(out_dir))
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}"
    staging.mkdir()  # (mkdir honours the umask; mkdtemp would leave the package mode 0700)
    moved, old = [], None
    try:
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for rel, data in blobs.items():
            (staging / rel).write_bytes(data)
        if target.is_dir() and not any(target.iterdir()):
            for entry in sorted(staging.iterdir()):
                os.replace(entry, target / entry.name)
                moved.append(target / entry.name)
            staging.rmdir()
            return
        if target.exists():
            old = parent / f".{target.name}.old.{os.getpid()}.{secrets.token_hex(4)}"
            os.replace(target, old)
        os.replace(staging, target)
    except BaseException:
        for path in moved:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if old is not None:
        try:
            shutil.rmtree(old)
        except OSError as exc:
            warnings.warn(f"export_c: the new export is in {target}, but the earlier one, moved aside to {old}, "
                          f"could not be removed ({exc}); remove it by hand")
