"""graphc.runtime: generated C -> a cached, loaded cffi module linked against the kernels library."""
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphc import runtime
from graphc.runtime import cache, threads, toolchain

ROOT = Path(__file__).resolve().parent.parent

MATMUL_SOURCE = r"""
#include "graphc_kernels.h"

/* C = A @ B for row-major A (M x K), B (K x N) through the kernels library. */
void matmul(int M, int N, int K, const float *A, const float *B, float *C)
{
    graphc_sgemm_ref(M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
}
"""
MATMUL_CDEF = "void matmul(int M, int N, int K, const float *A, const float *B, float *C);"

THREADS_SOURCE = r"""
#ifdef _OPENMP
#include <omp.h>
#endif
int has_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
int max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
/* y = 2 * x + 1, in a loop OpenMP may split (plain C when built without it). */
void affine(int n, const float *x, float *y)
{
    int i;
#pragma omp parallel for
    for (i = 0; i < n; ++i)
        y[i] = 2.0f * x[i] + 1.0f;
}
"""
THREADS_CDEF = "int has_openmp(void); int max_threads(void); void affine(int n, const float *x, float *y);"


def mlp_source(sizes):
    """A generated-looking MLP forward pass: one GEMM + bias + ReLU function per layer (~200 lines)."""
    lines = ['#include <stddef.h>', '#include "graphc_kernels.h"', ""]
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        relu = i < len(sizes) - 2
        lines += [
            f"/* dense_{i}: Dense({n_out}{', relu' if relu else ''}) on {n_in} features */",
            f"static void dense_{i}(int batch, const float *x, const float *kernel, const float *bias, float *y)",
            "{",
            "    int r;",
            f"    graphc_sgemm_ref(batch, {n_out}, {n_in}, 1.0f, x, {n_in}, kernel, {n_out}, 0.0f, y, {n_out});",
            "#pragma omp parallel for",
            "    for (r = 0; r < batch; ++r) {",
            f"        float *row = y + (size_t)r * {n_out};",
            "        int c;",
            f"        for (c = 0; c < {n_out}; ++c) {{",
            "            float v = row[c] + bias[c];",
            f"            row[c] = {'v > 0.0f ? v : 0.0f' if relu else 'v'};",
            "        }",
            "    }",
            "}",
            "",
        ]
    n = len(sizes) - 1
    lines += ["/* forward: x -> out, params = [kernel_0, bias_0, kernel_1, ...], work holds two activations */",
              "void forward(int batch, const float *x, const float *const *params, float *work, float *out)",
              "{",
              f"    float *bufs[2] = {{work, work + (size_t)batch * {max(sizes)}}};",
              "    const float *cur = x;"]
    for i in range(n):
        dest = "out" if i == n - 1 else f"bufs[{i % 2}]"
        lines += [f"    dense_{i}(batch, cur, params[{2 * i}], params[{2 * i + 1}], {dest});",
                  f"    cur = {dest};"]
    lines += ["    (void)cur;", "}", ""]
    return "\n".join(lines)


MLP_SIZES = [16, 32, 32, 32, 32, 32, 32, 32, 32, 8, 4]
MLP_CDEF = "void forward(int batch, const float *x, const float *const *params, float *work, float *out);"


def fbuf(ffi, array):
    assert array.dtype == np.float32 and array.flags.c_contiguous
    return ffi.from_buffer("float[]", array)


def call_matmul(module, a, b):
    c = np.full((a.shape[0], b.shape[1]), np.nan, dtype=np.float32)
    module.lib.matmul(a.shape[0], b.shape[1], a.shape[1], fbuf(module.ffi, a), fbuf(module.ffi, b),
                      fbuf(module.ffi, c))
    return c


def entries(cache_path, prefix):
    return sorted(p.name for p in Path(cache_path).glob(prefix + "*"))


def no_build_leftovers(cache_path):
    return not list(Path(cache_path).glob(".build-*")) and not list(Path(cache_path).glob(".tmp-*"))


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory):
    """One cache for tests that do not need an empty one, so the kernels library is built once."""
    return tmp_path_factory.mktemp("graphc-cache")


def _set_env(monkeypatch, cache_path):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(cache_path))
    for var in ("CC", "CFLAGS", "GRAPHC_OPENMP"):
        monkeypatch.delenv(var, raising=False)
    return cache_path


@pytest.fixture
def cache_env(shared_cache, monkeypatch):
    return _set_env(monkeypatch, shared_cache)


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    return _set_env(monkeypatch, tmp_path / "cache")


@pytest.fixture
def compiler_calls(monkeypatch):
    """Every compiler command the runtime runs from now on."""
    calls = []
    real = toolchain.run_compiler

    def counting(cmd, cwd=None):
        calls.append(list(cmd))
        return real(cmd, cwd)

    monkeypatch.setattr(toolchain, "run_compiler", counting)
    return calls


@pytest.fixture
def restore_threads():
    yield
    threads.set_num_threads(threads.default_num_threads())
    threads._requested = None


def run_python(code, cache_path, **env):
    """Runs `code` in a fresh interpreter on this source tree with the given cache dir."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("CC", "CFLAGS", "GRAPHC_OPENMP")}
    full_env.update(PYTHONPATH=str(ROOT), GRAPHC_CACHE_DIR=str(cache_path), **env)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fake_compiler(tmp_path, name, body):
    """A shell script standing in for CC that ends by running the real compiler."""
    real = shutil.which("gcc") or shutil.which("cc")
    script = tmp_path / name
    script.write_text(f"#!/bin/sh\n{body}\nexec {real} \"$@\"\n")
    script.chmod(0o755)
    return script


def test_kernels_dir_holds_the_kernel_sources():
    kdir = runtime.kernels_dir()
    package = Path(runtime.__file__).resolve().parent.parent
    assert kdir in (package / "kernels", package.parent / "kernels")  # installed copy, else the source tree
    for source in (ROOT / "kernels").glob("*.[ch]"):
        assert (kdir / source.name).read_bytes() == source.read_bytes()


def test_module_calls_the_kernels_on_numpy_arrays_without_copies(cache_env, rng):
    module = runtime.compile_module(MATMUL_SOURCE, MATMUL_CDEF, name="matmul")
    a = rng.standard_normal((5, 7)).astype(np.float32)
    b = rng.standard_normal((7, 3)).astype(np.float32)
    np.testing.assert_allclose(call_matmul(module, a, b), a @ b, rtol=1e-5, atol=1e-5)

    # from_buffer hands C the array's own memory: what C writes is in the numpy array.
    c = np.zeros((5, 3), dtype=np.float32)
    buf = fbuf(module.ffi, c)
    assert int(module.ffi.cast("uintptr_t", buf)) == c.ctypes.data
    module.lib.matmul(5, 3, 7, fbuf(module.ffi, a), fbuf(module.ffi, b), buf)
    np.testing.assert_allclose(c, a @ b, rtol=1e-5, atol=1e-5)

    assert module.path.parent == cache_env and module.path.suffix == ".so"
    assert module.source_path.read_text() == MATMUL_SOURCE
    manifest = json.loads(cache.manifest_path(module.path).read_text())
    assert manifest["sha256"] == cache.file_sha256(module.path)
    assert manifest["key"] == module.key
    # The kernels are one shared library in the cache, linked by the module, not compiled into it.
    kernel_libs = entries(cache_env, "libgraphc_kernels-")
    assert any(name.endswith(".so") for name in kernel_libs)
    assert no_build_leftovers(cache_env)


def test_second_call_loads_from_the_cache_without_compiling(cache_env, compiler_calls, rng):
    source = mlp_source(MLP_SIZES)
    assert 150 <= source.count("\n") <= 260
    start = time.perf_counter()
    first = runtime.compile_module(source, MLP_CDEF, name="mlp")
    first_seconds = time.perf_counter() - start
    # The kernels library already exists: a new model compiles only its own file, in one command.
    assert first.built and len(compiler_calls) == 1

    start = time.perf_counter()
    second = runtime.compile_module(source, MLP_CDEF, name="mlp")
    cached_seconds = time.perf_counter() - start
    assert not second.built and len(compiler_calls) == 1
    assert second.path == first.path
    print(f"\n~200-line module: first compile {first_seconds:.2f} s, cached load {cached_seconds * 1e3:.1f} ms")
    assert cached_seconds < 1.0

    sizes = MLP_SIZES
    params = [rng.standard_normal(shape).astype(np.float32) * 0.5
              for n_in, n_out in zip(sizes[:-1], sizes[1:]) for shape in ((n_in, n_out), (n_out,))]
    x = rng.standard_normal((6, 16)).astype(np.float32)
    ffi = second.ffi
    keep = [fbuf(ffi, p) for p in params]
    work = np.empty(2 * 6 * max(sizes), dtype=np.float32)
    out = np.empty((6, 4), dtype=np.float32)
    second.lib.forward(6, fbuf(ffi, x), ffi.new("float *[]", keep), fbuf(ffi, work), fbuf(ffi, out))
    expected = x
    for i in range(0, len(params), 2):
        expected = expected @ params[i] + params[i + 1]
        if i < len(params) - 2:
            expected = np.maximum(expected, 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    # A different source is a different entry.
    other = runtime.compile_module(source + "\n/* v2 */\n", MLP_CDEF, name="mlp")
    assert other.built and other.path != first.path and len(compiler_calls) == 2


def test_cached_module_loads_in_a_fresh_process_without_any_compiler(cache_env):
    runtime.compile_module(MATMUL_SOURCE, MATMUL_CDEF, name="matmul")
    code = f"""
import time, numpy as np
from graphc.runtime import toolchain
def forbidden(cmd, cwd=None):
    raise AssertionError("compiler called: " + " ".join(cmd))
toolchain.run_compiler = forbidden
import graphc.runtime as rt
start = time.perf_counter()
m = rt.compile_module({MATMUL_SOURCE!r}, {MATMUL_CDEF!r}, name="matmul")
seconds = time.perf_counter() - start
a = np.arange(6, dtype=np.float32).reshape(2, 3); b = np.ones((3, 2), np.float32); c = np.zeros((2, 2), np.float32)
m.lib.matmul(2, 2, 3, m.ffi.from_buffer("float[]", a), m.ffi.from_buffer("float[]", b), m.ffi.from_buffer("float[]", c))
print(json.dumps([m.built, c.ravel().tolist(), seconds]))
"""
    built, values, seconds = json.loads(run_python("import json\n" + code, cache_env))
    assert built is False
    assert values == [3.0, 3.0, 12.0, 12.0]
    print(f"\ncached load in a fresh process: {seconds * 1e3:.1f} ms")
    assert seconds < 1.0


def test_cc_and_cflags_from_the_environment_are_used(fresh_cache, tmp_path, monkeypatch):
    log = tmp_path / "cc.log"
    cc = fake_compiler(tmp_path, "logging-cc", f'echo "$@" >> "{log}"')
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("CFLAGS", "-DGRAPHC_TEST_VALUE=7")
    tc = runtime.current_toolchain()
    assert tc.cc == (str(cc),)
    assert tc.flags[-1] == "-DGRAPHC_TEST_VALUE=7"
    assert {"-O3", "-std=c99", "-fPIC"} <= set(tc.flags)
    module = runtime.compile_module("int value(void) { return GRAPHC_TEST_VALUE; }\n", "int value(void);",
                                    name="value")
    assert module.lib.value() == 7  # CFLAGS reached the module build
    commands = log.read_text().splitlines()
    assert any("sgemm_ref.c" in c for c in commands)  # the kernels too were built by CC
    assert any("_cffi.c" in c and "-DGRAPHC_TEST_VALUE=7" in c for c in commands)
    assert json.loads(cache.manifest_path(module.path).read_text())["compiler"] == [str(cc)]


def test_compiler_without_openmp_builds_single_threaded(fresh_cache, tmp_path, monkeypatch, restore_threads):
    cc = fake_compiler(tmp_path, "no-openmp-cc", 'for a in "$@"; do if [ "$a" = -fopenmp ]; then '
                       'echo "error: unrecognized command-line option -fopenmp" >&2; exit 1; fi; done')
    monkeypatch.setenv("CC", str(cc))
    tc = runtime.current_toolchain()
    assert not tc.openmp and "-fopenmp" not in tc.flags and "-O3" in tc.flags
    module = runtime.compile_module(THREADS_SOURCE, THREADS_CDEF, name="threads")
    assert module.lib.has_openmp() == 0
    x = np.arange(10, dtype=np.float32)
    y = np.empty_like(x)
    module.lib.affine(10, fbuf(module.ffi, x), fbuf(module.ffi, y))
    np.testing.assert_allclose(y, 2 * x + 1)
    kernel_lib = cache_path_kernel_lib(fresh_cache)
    assert threads._libraries[str(kernel_lib)].graphc_runtime_has_openmp() == 0
    runtime.set_num_threads(3)  # nothing to forward to, but recorded
    assert runtime.get_num_threads() == 3
    # The answer of the probe is kept: a new process does not ask the compiler again.
    record = json.loads(next((fresh_cache / "toolchains").glob("*.json")).read_text())
    assert record["accepted"]["-fopenmp"] is False


def cache_path_kernel_lib(cache_path):
    (lib,) = Path(cache_path).glob("libgraphc_kernels-*.so")
    return lib


def test_graphc_openmp_0_turns_openmp_off(cache_env, monkeypatch):
    assert "-fopenmp" in runtime.current_toolchain().flags  # gcc and clang with libomp have it
    monkeypatch.setenv("GRAPHC_OPENMP", "0")
    tc = runtime.current_toolchain()
    assert not tc.openmp and "-fopenmp" not in tc.flags and "-march=native" in tc.flags


def test_set_num_threads_reaches_openmp(cache_env, restore_threads):
    module = runtime.compile_module(THREADS_SOURCE, THREADS_CDEF, name="threads")
    assert module.lib.has_openmp() == 1 and runtime.openmp_enabled()
    runtime.set_num_threads(2)
    assert runtime.get_num_threads() == 2 and module.lib.max_threads() == 2
    runtime.set_num_threads(1)
    assert runtime.get_num_threads() == 1 and module.lib.max_threads() == 1
    with pytest.raises(ValueError, match="positive int"):
        runtime.set_num_threads(0)


def test_omp_num_threads_is_the_default(cache_env):
    runtime.compile_module(THREADS_SOURCE, THREADS_CDEF, name="threads")
    code = f"""
import graphc.runtime as rt
before = rt.get_num_threads()
m = rt.compile_module({THREADS_SOURCE!r}, {THREADS_CDEF!r}, name="threads")
print(before, rt.get_num_threads(), m.lib.max_threads())
"""
    assert run_python(code, cache_env, OMP_NUM_THREADS="3").split() == ["3", "3", "3"]
    # A count set before anything is compiled applies to the library loaded later.
    code = f"""
import graphc.runtime as rt
rt.set_num_threads(2)
m = rt.compile_module({THREADS_SOURCE!r}, {THREADS_CDEF!r}, name="threads")
print(m.lib.max_threads())
"""
    assert run_python(code, cache_env, OMP_NUM_THREADS="3").split() == ["2"]


def test_two_processes_build_the_same_new_module_at_once(fresh_cache, tmp_path):
    code = f"""
import os, sys, time, numpy as np
import graphc.runtime as rt
open(sys.argv[1] + ".ready", "w").close()
while not os.path.exists({str(tmp_path / "go")!r}):
    time.sleep(0.005)
m = rt.compile_module({MATMUL_SOURCE!r}, {MATMUL_CDEF!r}, name="race")
a = np.full((2, 2), 2, np.float32); c = np.zeros((2, 2), np.float32)
m.lib.matmul(2, 2, 2, m.ffi.from_buffer("float[]", a), m.ffi.from_buffer("float[]", a), m.ffi.from_buffer("float[]", c))
print(m.built, c.ravel().tolist())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "CFLAGS", "GRAPHC_OPENMP")}
    env.update(PYTHONPATH=str(ROOT), GRAPHC_CACHE_DIR=str(fresh_cache))
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"p{i}")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.time() + 60
    while not all((tmp_path / f"p{i}.ready").exists() for i in range(2)) and time.time() < deadline:
        time.sleep(0.01)
    (tmp_path / "go").touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, out + err
    results = sorted(out.strip() for out, _ in outputs)
    # Both got a working module; the second waited for the first's build instead of repeating it.
    assert results == ["False [8.0, 8.0, 8.0, 8.0]", "True [8.0, 8.0, 8.0, 8.0]"]
    modules = [Path(fresh_cache, n) for n in entries(fresh_cache, "_graphc_race_") if n.endswith(".so")]
    assert len(modules) == 1 and cache.is_valid(modules[0])
    assert cache.is_valid(cache_path_kernel_lib(fresh_cache))
    assert no_build_leftovers(fresh_cache)


def test_corrupted_cache_entries_are_rebuilt_not_loaded(cache_env, compiler_calls, rng):
    source = MATMUL_SOURCE + "\n/* corruption test */\n"
    # Built by another process, so this one has not loaded it yet.
    run_python(f"import graphc.runtime as rt; rt.compile_module({source!r}, {MATMUL_CDEF!r}, name='corrupt')",
               cache_env)
    (path,) = [Path(cache_env, n) for n in entries(cache_env, "_graphc_corrupt_") if n.endswith(".so")]
    good = path.read_bytes()

    path.write_bytes(good[: len(good) // 3])  # truncated, as by a crash or a full disk
    assert not cache.is_valid(path)
    module = runtime.compile_module(source, MATMUL_CDEF, name="corrupt")
    assert module.built and len(compiler_calls) == 1
    assert cache.is_valid(path)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal((4, 2)).astype(np.float32)
    np.testing.assert_allclose(call_matmul(module, a, b), a @ b, rtol=1e-5, atol=1e-5)

    manifest = cache.manifest_path(path)
    manifest.write_text(manifest.read_text().replace(cache.file_sha256(path), "0" * 64))  # sha mismatch
    assert runtime.compile_module(source, MATMUL_CDEF, name="corrupt").built and len(compiler_calls) == 2
    assert cache.is_valid(path)

    # Garbage whose manifest was rewritten to match: it fails to load, so it is rebuilt (fresh process).
    path.unlink()  # this process maps the old file: write a new one rather than overwrite it
    path.write_bytes(b"\x7fELF garbage" * 100)
    manifest.write_text(json.dumps({"file": path.name, "sha256": cache.file_sha256(path)}))
    code = f"""
import numpy as np, graphc.runtime as rt
m = rt.compile_module({source!r}, {MATMUL_CDEF!r}, name='corrupt')
a = np.ones((1, 1), np.float32); c = np.zeros((1, 1), np.float32)
m.lib.matmul(1, 1, 1, m.ffi.from_buffer("float[]", a), m.ffi.from_buffer("float[]", a), m.ffi.from_buffer("float[]", c))
print(m.built, c[0, 0])
"""
    assert run_python(code, cache_env).split() == ["True", "1.0"]
    assert cache.is_valid(path)

    # A corrupted kernels library is rebuilt too (the modules linked to it stay valid).
    kernel_lib = cache_path_kernel_lib(cache_env)
    kernel_bytes = kernel_lib.read_bytes()
    kernel_lib.unlink()
    kernel_lib.write_bytes(kernel_bytes[:100])
    runtime.compile_module(source, MATMUL_CDEF, name="corrupt")
    assert cache.is_valid(kernel_lib) and any("sgemm_ref.c" in " ".join(c) for c in compiler_calls)
    assert no_build_leftovers(cache_env)


def test_compile_error_message_and_nothing_left_in_the_cache(cache_env):
    source = "int broken(int x)\n{\n    return x + undeclared_name;\n}\n"
    with pytest.raises(runtime.CompileError) as info:
        runtime.compile_module(source, "int broken(int x);", name="broken")
    assert isinstance(info.value, RuntimeError)
    message = str(info.value)
    assert "undeclared_name" in message and "error" in message
    assert ".c:3:" in message  # the compiler's position in the generated file itself
    kept = Path(message.split("C source kept at: ")[1].splitlines()[0])
    assert kept.read_text() == source
    assert not entries(cache_env, "_graphc_broken_")  # no library, manifest or source entry
    assert no_build_leftovers(cache_env)


def test_cdef_and_source_must_agree(cache_env):
    # A declared function the source does not define is a compile error, not an import-time surprise.
    with pytest.raises(runtime.CompileError, match="missing_fn"):
        runtime.compile_module("int present(void) { return 1; }\n", "int present(void); int missing_fn(int);",
                               name="mismatch")
    with pytest.raises(runtime.CompileError, match="cdef"):
        runtime.compile_module("int f(void) { return 1; }\n", "int f(void", name="badcdef")
    # Declared in the source too but defined nowhere: links, then fails to load; reported, then dropped.
    with pytest.raises(runtime.CompileError, match="undefined symbol: nowhere_fn"):
        runtime.compile_module("int nowhere_fn(int);\nint g(int x) { return nowhere_fn(x); }\n", "int g(int);",
                               name="undefined")
    for prefix in ("_graphc_mismatch_", "_graphc_badcdef_", "_graphc_undefined_"):
        assert not entries(cache_env, prefix)
    assert no_build_leftovers(cache_env)


def test_kernels_ship_in_the_wheel(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "graphc", src / "graphc", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "kernels", src / "kernels")
    dist = tmp_path / "dist"
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = dist.glob("graphc-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    kernel_files = sorted(p.name for p in (ROOT / "kernels").iterdir() if p.suffix in (".c", ".h"))
    assert {f"graphc/kernels/{n}" for n in kernel_files} <= names
    assert "graphc/runtime/build.py" in names
    # Installed, kernels_dir() is the package's own copy.
    result = subprocess.run([sys.executable, "-c", "import graphc.runtime as r; print(r.kernels_dir())"],
                            capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == tmp_path / "site" / "graphc" / "kernels"


def test_given_outputs_and_params_are_reused_only_while_they_are_the_same_arrays(cache_env, rng):
    """CompiledGraph.run points to the params and outputs a caller gives once, then reuses those pointers
    while the same arrays come back (the same tuple, or a list holding the same arrays): a list changed in
    place, a call without outputs in between and another batch size still write where they should."""
    from graphc.ir import GraphBuilder, TensorType

    class Weight:
        value = np.zeros(3, "float32")

    b = GraphBuilder()
    x = b.input("x", TensorType((None, 3)))
    w = b.param(Weight(), "w", TensorType((3,)))
    program = runtime.compile_graph(b.finish([b.emit("add", [x, w]), b.emit("neg", [x])]))
    v = rng.normal(size=(4, 3)).astype("float32")
    params = (np.ones(3, "float32"),)
    first, second = np.zeros((4, 3), "float32"), np.zeros((4, 3), "float32")
    given = (None, first)
    for value in (v, v + 1):
        out = program.run([value], params, outputs=given)
        assert out[1] is first and out[0] is not given[0]
        np.testing.assert_allclose(first, -value, rtol=1e-6)
        np.testing.assert_allclose(out[0], value + 1, rtol=1e-6)
    listed = [None, first]
    program.run([v], params, outputs=listed)
    listed[1] = second  # changed in place: the next call must see it
    program.run([v - 1], params, outputs=listed)
    np.testing.assert_allclose(second, -(v - 1), rtol=1e-6)
    np.testing.assert_allclose(first, -v, rtol=1e-6)
    assert program.run([v[:2]], params)[1].shape == (2, 3)  # new arrays, another batch, in between
    params[0][...] = 2.0  # the same arrays, changed values: read again
    out = program.run([v], params, outputs=given)
    np.testing.assert_allclose(out[0], v + 2, rtol=1e-6)
    np.testing.assert_allclose(first, -v, rtol=1e-6)
    np.testing.assert_allclose(program.run([v], [np.full(3, 3.0, "float32")], outputs=given)[0], v + 3, rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected 2 outputs \(None for a new array\), received 1"):
        program.run([v], params, outputs=[first])


def test_program_checks_and_converts_its_inputs(rng):
    """CompiledGraph.run's input handling, on the one-input path every predict call takes and on the general
    path: other dtypes and layouts are converted (not rejected), and a wrong rank or per-sample shape is a
    ValueError naming the input, before any C runs."""
    from graphc.ir import GraphBuilder, TensorType

    b = GraphBuilder()
    x = b.input("pixels", TensorType((None, 3)))
    one = runtime.compile_graph(b.finish([b.emit("neg", [x])]))
    b = GraphBuilder()
    x, y = b.input("a", TensorType((None, 3))), b.input("b", TensorType((None, 3)))
    two = runtime.compile_graph(b.finish([b.emit("add", [x, y])]))
    v = rng.normal(size=(3, 5)).astype("float64").T  # float64, not C-contiguous
    np.testing.assert_allclose(one.run([v])[0], -v, rtol=1e-6)
    np.testing.assert_allclose(one.run([v.tolist()])[0], -v, rtol=1e-6)
    np.testing.assert_allclose(two.run([v, v])[0], 2 * v, rtol=1e-6)
    for bad in (np.zeros((5, 4), "float32"), np.zeros(3, "float32"), np.zeros((5, 3, 1), "float32"),
                np.float32(1.0)):
        with pytest.raises(ValueError, match=r"input 'pixels': expected shape \(None, 3\)"):
            one.run([bad])
        with pytest.raises(ValueError, match=r"input 'b': expected shape \(None, 3\)"):
            two.run([v, bad])
    with pytest.raises(ValueError, match=r"input 'b': expected shape \(None, 3\) with batch 5, got \(4, 3\)"):
        two.run([v, v[:4]])


def test_builds_on_several_threads_at_once_leave_sys_stdout_alone(cache_env, capsys):
    """cffi prints a line while writing its wrapper; silencing it must not swap the process's sys.stdout, which
    builds on other threads would then restore to one another's dead buffers (every later print lost)."""
    import threading
    stdout, n = sys.stdout, 8
    start, modules = threading.Barrier(n), [None] * n

    def build(k):
        start.wait()
        modules[k] = runtime.compile_module(MATMUL_SOURCE + f"/* {time.time_ns()} {k} */\n", MATMUL_CDEF,
                                            name=f"matmul_thread{k}")

    workers = [threading.Thread(target=build, args=(k,)) for k in range(n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert all(modules) and sys.stdout is stdout
    print("visible")
    assert capsys.readouterr().out == "visible\n"
