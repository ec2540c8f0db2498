"""compile_module: generated C source -> a loaded cffi (API mode) extension module, cached.

cffi writes the wrapper C file; we run the compiler on it ourselves (one command, our flags, no
setuptools), so a model build compiles only its own small file and links the kernels library.
"""
import importlib.machinery
import importlib.util
import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cache, kernels, toolchain
from .toolchain import CompileError

FORMAT = "module-v1"
# The generated code and its cdef must agree: calling an undeclared function is an error, not a
# warning that turns into "undefined symbol" at load time.
MODULE_FLAGS = ("-Werror=implicit-function-declaration",)


@dataclass
class CompiledModule:
    name: str
    ffi: Any            # the module's cffi FFI (ffi.from_buffer, ffi.new, ...)
    lib: Any            # the functions and globals declared in cdef
    path: Path          # the loaded shared library in the cache
    source_path: Path   # the generated C file it was built from, kept beside it
    key: str            # the content hash naming the cache entry
    built: bool         # True when this call compiled it, False when it came from the cache


_loaded = {}  # path -> module: a library is loaded once per process


def compile_module(source: str, cdef: str, *, name: str = "model") -> CompiledModule:
    """Builds (or fetches from the cache) and loads a module from a C translation unit.

    `source` may `#include "graphc_kernels.h"` and call the kernels; `cdef` declares what Python
    sees (cffi API mode). Raises CompileError with the compiler's message on failure.
    """
    tc = toolchain.current()
    kernel_lib = kernels.kernel_library(tc)
    python_abi = sysconfig.get_config_var("EXT_SUFFIX") or sys.implementation.cache_tag
    key = cache.digest(FORMAT, name, source, cdef, tc.key, *MODULE_FLAGS, kernel_lib.name, python_abi,
                       _cffi_version())
    module_name = f"_graphc_{re.sub(r'[^0-9A-Za-z_]', '_', name)}_{key[:20]}"
    path = cache.cache_dir() / f"{module_name}.so"
    source_path = path.with_suffix(".c")
    info = {"kind": "module", "name": name, "key": key, "compiler": list(tc.cc), "version": tc.version,
            "flags": list(tc.flags) + list(MODULE_FLAGS), "kernels": kernel_lib.name}

    def build(tmp):
        return _build(tmp, module_name, source, cdef, tc, kernel_lib, path, source_path)

    built = cache.fetch_or_build(path, build, info)
    module, error = _try_load(module_name, path)
    if error is not None and not built:
        # Matches its manifest yet does not load (e.g. replaced by hand): rebuild it once.
        built = cache.fetch_or_build(path, build, info, force=True)
        module, error = _try_load(module_name, path)
    if error is not None:
        kept = _keep_failed(source_path)
        cache.remove_entry(path)
        source_path.unlink(missing_ok=True)
        raise CompileError(f"module {module_name} compiled but does not load: {error}\n"
                           f"C source kept at: {kept}") from error
    return CompiledModule(name=name, ffi=module.ffi, lib=module.lib, path=path, source_path=source_path,
                          key=key, built=built)


def _build(tmp: Path, module_name: str, source: str, cdef: str, tc, kernel_lib: Path, path: Path,
           source_path: Path) -> dict:
    import cffi
    from cffi import recompiler

    model_c = tmp / f"{module_name}.c"
    model_c.write_text(source)
    ffi = cffi.FFI()
    try:
        ffi.cdef(cdef)
    except (cffi.CDefError, cffi.FFIError) as exc:
        raise CompileError(f"the cdef of {module_name} is not valid: {exc}\n"
                           f"C source kept at: {_keep_failed(model_c)}") from exc
    # The wrapper includes the generated file, so compiler messages point at its own lines.
    wrapper = tmp / f"{module_name}_cffi.c"
    # ffi.emit_c_code without its "generating ..." line: silencing that by redirect_stdout swapped sys.stdout
    # for the whole process, so builds on several threads at once could leave it pointing at a dead buffer
    recompiler.make_c_source(ffi, module_name, f'#include "{model_c.name}"\n', str(wrapper), verbose=False)
    include = Path(sysconfig.get_paths()["include"])
    if not (include / "Python.h").is_file():
        raise CompileError(f"Python's C headers are missing ({include / 'Python.h'}): install the Python "
                           f"development package (e.g. python3-dev)")
    out = tmp / path.name
    cmd = [*tc.cc, *tc.flags, *MODULE_FLAGS, *_extension_flags(), "-I", str(include),
           "-I", str(kernels.kernels_dir()), "-I", ".", wrapper.name, "-o", out.name,
           str(kernel_lib), "-lm", _rpath()]
    result = toolchain.run_compiler(cmd, cwd=str(tmp))
    if result.returncode != 0:
        kept = _keep_failed(model_c, wrapper, log=result.stdout + result.stderr)
        raise CompileError(f"C compilation of module {module_name} failed ({' '.join(tc.cc)}, exit code "
                           f"{result.returncode}).\nC source kept at: {kept}\n"
                           f"Compiler output:\n{toolchain.trim_output(result.stderr or result.stdout)}")
    return {source_path: model_c, path: out}


def _try_load(module_name: str, path: Path):
    """(module, None), or (None, the ImportError) when the library does not load (e.g. a symbol the
    source declares but nothing defines)."""
    key = str(path)
    if key not in _loaded:
        loader = importlib.machinery.ExtensionFileLoader(module_name, key)
        spec = importlib.util.spec_from_file_location(module_name, key, loader=loader)
        try:
            module = importlib.util.module_from_spec(spec)
            loader.exec_module(module)
        except ImportError as exc:
            return None, exc
        _loaded[key] = module
    return _loaded[key], None


def _keep_failed(model_c: Path, *others: Path, log: str = None) -> Path:
    """Copies the C source of a failed build out of the build dir (not into the cache proper)."""
    dest = cache.failed_dir()
    for path in (model_c, *others):
        shutil.copyfile(path, dest / path.name)
    if log is not None:
        (dest / (model_c.stem + ".log")).write_text(log)
    return dest / model_c.name


def _extension_flags() -> list:
    if sys.platform == "darwin":
        return ["-shared", "-undefined", "dynamic_lookup"]
    return ["-shared"]


def _rpath() -> str:
    # The kernels library sits in the same cache dir as every module.
    return "-Wl,-rpath,@loader_path" if sys.platform == "darwin" else "-Wl,-rpath,$ORIGIN"


def _cffi_version() -> str:
    import _cffi_backend  # the generated wrapper is tied to the cffi it was made by
    return _cffi_backend.__version__
