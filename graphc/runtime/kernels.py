"""The kernels library: every kernels/*.c compiled once per (sources, toolchain) into
`libgraphc_kernels-<hash>.so` in the cache dir, which model modules link against."""
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import cache, threads, toolchain

HEADER = "graphc_kernels.h"
# Compiled into the kernels library beside the kernels: lets Python set the OpenMP thread count
# (and know whether OpenMP is there) without depending on the OpenMP runtime's file name.
THREADS_SHIM = r"""/* graphc runtime: thread control, compiled into the kernels library. */
#ifdef _OPENMP
#include <omp.h>
#endif

int graphc_runtime_has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

void graphc_runtime_set_num_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

int graphc_runtime_get_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
"""
SHIM_NAME = "graphc_runtime_threads.c"


def kernels_dir() -> Path:
    """The kernel sources: installed package data (graphc/kernels/), else the repository's kernels/."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "kernels", package.parent / "kernels"):
        if (candidate / HEADER).is_file():
            return candidate
    raise FileNotFoundError(f"graphc's C kernels ({HEADER}) are neither in {package / 'kernels'} nor in "
                            f"{package.parent / 'kernels'}: the installation is incomplete")


def library_name(tc: toolchain.Toolchain, kdir: Path = None) -> str:
    kdir = kdir or kernels_dir()
    parts = ["kernels-v1", tc.key, THREADS_SHIM]
    for source in sorted(kdir.glob("*.[ch]")):
        parts += [source.name, source.read_bytes()]
    return f"libgraphc_kernels-{cache.digest(*parts)[:20]}.so"


def kernel_library(tc: toolchain.Toolchain) -> Path:
    """Path of the built kernels library for `tc` (built now if missing or corrupt); also loads it
    for thread control."""
    kdir = kernels_dir()
    path = cache.cache_dir() / library_name(tc, kdir)
    info = {"kind": "kernels", "compiler": list(tc.cc), "version": tc.version, "flags": list(tc.flags),
            "sources": sorted(p.name for p in kdir.glob("*.c"))}
    cache.fetch_or_build(path, lambda tmp: _build(tmp, path, tc, kdir), info)
    threads.attach(path)
    return path


def _build(tmp: Path, path: Path, tc: toolchain.Toolchain, kdir: Path) -> dict:
    shim = tmp / SHIM_NAME
    shim.write_text(THREADS_SHIM)
    sources = sorted(kdir.glob("*.c")) + [shim]

    def compile_one(index_source):
        index, source = index_source
        obj = tmp / f"{index:03d}_{source.stem}.o"
        result = toolchain.run_compiler([*tc.cc, *tc.flags, "-I", str(kdir), "-c", str(source), "-o", str(obj)])
        return source, obj, result

    # Kernel files compile independently: use the cores (the first build is the slow one).
    with ThreadPoolExecutor(max_workers=max(1, min(len(sources), os.cpu_count() or 1))) as pool:
        compiled = list(pool.map(compile_one, enumerate(sources)))
    failed = [(source, result) for source, _, result in compiled if result.returncode != 0]
    if failed:
        raise toolchain.CompileError("\n".join(
            f"compiling the kernel {source} failed ({' '.join(tc.cc)}, exit code {result.returncode}):\n"
            f"{toolchain.trim_output(result.stderr)}" for source, result in failed))
    name = path.name
    out = tmp / name
    result = toolchain.run_compiler([*tc.cc, *tc.flags, *shared_library_flags(name),
                                     *(str(obj) for _, obj, _ in compiled), "-o", str(out), "-lm"])
    if result.returncode != 0:
        raise toolchain.CompileError(f"linking the kernels library {name} failed ({' '.join(tc.cc)}, exit code "
                                     f"{result.returncode}):\n{toolchain.trim_output(result.stderr)}")
    return {path: out}


def shared_library_flags(name: str) -> list:
    """Flags making a shared library found by its bare name next to the module that needs it."""
    if sys.platform == "darwin":
        return ["-dynamiclib", f"-Wl,-install_name,@rpath/{name}"]
    return ["-shared", f"-Wl,-soname,{name}"]
