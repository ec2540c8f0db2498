"""Exported C at run time: two models in one program (and from two threads at once), no heap allocation on
the predict path, clean under AddressSanitizer/UBSan and valgrind."""
from __future__ import annotations

import re
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import layers
from export_util import assert_matches, cmake_build, needs_cmake, parse_outputs, run, run_example, write_inputs
from test_export import every_kernel_model, kernel_inputs

pytestmark = needs_cmake
C_TESTS = Path(__file__).resolve().parent / "c" / "export"


def conv_model():
    graphc.utils.set_random_seed(4)
    x = graphc.Input((8, 8, 3), name="image")
    h = layers.Conv2D(5, 3, activation="relu")(x)
    h = layers.GlobalAveragePooling2D()(h)
    return graphc.Model(x, layers.Dense(4, activation="softmax")(h), name="conv")


def lstm_model():
    graphc.utils.set_random_seed(5)
    x = graphc.Input((6, 4), name="series")
    return graphc.Model(x, layers.Dense(2)(layers.LSTM(5)(x)), name="lstm")


def c_inputs(model, batch=3):
    """The inputs tests/c/export/*.c make: ((i * 37) % 101) / 101 - 0.5 in float32."""
    n = batch * int(np.prod(model.inputs[0].shape[1:]))
    return ((np.arange(n) * 37) % 101).astype("float32") / np.float32(101) - np.float32(0.5)


def project(tmp_path, packages, program, extra=""):
    """A CMake project building tests/c/export/<program> against the exported packages."""
    subdirs = "\n".join(f'add_subdirectory("{p}" {p.name})' for p in packages)
    libs = " ".join(f"{p.name}_static" for p in packages)
    (tmp_path / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(check C)
{subdirs}
add_executable(check "{C_TESTS / program}")
set_target_properties(check PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
target_compile_options(check PRIVATE -Wall -Wextra -pedantic)
target_link_libraries(check PRIVATE {libs})
{extra}
""")
    return tmp_path


def test_two_models_link_into_one_program_and_run_concurrently(tmp_path):
    alpha, beta = conv_model(), lstm_model()
    packages = [graphc.export_c(alpha, tmp_path / "alpha", name="alpha"),
                graphc.export_c(beta, tmp_path / "beta", name="beta")]
    project(tmp_path, packages, "two_models.c",
            "find_package(Threads REQUIRED)\ntarget_link_libraries(check PRIVATE Threads::Threads)")
    log = cmake_build(tmp_path, tmp_path / "build")
    assert "warning" not in log.lower(), log
    lines = run([tmp_path / "build" / "check"]).stdout.splitlines()
    assert lines[0] == "concurrent calls: 0 mismatches, 0 failures"
    got = {line.split()[0]: np.array([float(v) for v in line.split()[1:]]) for line in lines[1:]}
    for name, model in (("alpha", alpha), ("beta", beta)):
        x = c_inputs(model).reshape((3,) + model.inputs[0].shape[1:])
        np.testing.assert_allclose(got[name], model.predict(x).reshape(-1), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("openmp", ["ON", "OFF"])
def test_predict_makes_no_heap_allocation(tmp_path, openmp):
    if shutil.which("ld") is None:
        pytest.skip("GNU ld (--wrap) not found")
    model = conv_model()
    pkg = graphc.export_c(model, tmp_path / "alpha", name="alpha")
    wrap = ",".join(f"--wrap={f}" for f in ("malloc", "calloc", "realloc", "aligned_alloc", "posix_memalign"))
    project(tmp_path, [pkg], "alloc_count.c", f'target_link_options(check PRIVATE "-Wl,{wrap}")')
    cmake_build(tmp_path, tmp_path / "build", options={"ALPHA_OPENMP": openmp})
    out = run([tmp_path / "build" / "check"]).stdout
    assert "setup allocations: 1" in out, out            # the counter sees the program's own malloc
    assert "predict allocations: 0 (status 0)" in out, out
    assert "predict_alloc allocations: 1" in out, out     # the convenience call's one workspace


SANITIZE = "-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"


def _sanitizers_work(cc, tmp_path) -> bool:
    src = tmp_path / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    return run([cc, *SANITIZE.split(), src, "-o", tmp_path / "probe"], check=False).returncode == 0


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_clean_under_address_and_undefined_sanitizers(tmp_path, cc):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not found (.ci/run installs clang)")
    if not _sanitizers_work(cc, tmp_path):
        pytest.skip(f"{cc} cannot link -fsanitize=address,undefined here (sanitizer runtime not installed)")
    model = every_kernel_model()
    pkg = graphc.export_c(model, tmp_path / "pkg", name="kern", weights="file")
    cmake_build(pkg, tmp_path / "build", cc=cc, cflags=SANITIZE, ldflags=SANITIZE, options={"KERN_NATIVE": "ON"})
    xs = kernel_inputs(3, np.random.default_rng(6))
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}
    result = run_example(tmp_path / "build" / "example_main", xs, tmp_path, env=env, check=False,
                         args=["--repeat", "2"])
    assert result.returncode == 0 and "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, \
        result.stderr[-4000:]
    assert_matches(parse_outputs(result.stdout), model.predict(xs))
    # prepared weights (example_main prepares them): a 3x3 convolution on Winograd's prepared path at batch 1
    graphc.utils.set_random_seed(2)
    img = graphc.Input((8, 8, 16))  # 16 tiles of 2x2 outputs
    wino = graphc.Model(img, layers.Conv2D(16, 3, padding="same", activation="relu")(img))
    pkg = graphc.export_c(wino, tmp_path / "wino", name="wino")
    cmake_build(pkg, tmp_path / "wino_build", cc=cc, cflags=SANITIZE, ldflags=SANITIZE, options={"WINO_NATIVE": "ON"})
    x = np.random.default_rng(7).normal(size=(1, 8, 8, 16)).astype("float32")
    result = run_example(tmp_path / "wino_build" / "example_main", [x], tmp_path, env=env, check=False)
    assert result.returncode == 0 and "runtime error" not in result.stderr and "Sanitizer" not in result.stderr, \
        result.stderr[-4000:]
    assert_matches(parse_outputs(result.stdout), wino.predict(x))


def test_clean_under_valgrind_and_allocation_count_does_not_grow(tmp_path):
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        pytest.skip("valgrind not found (.ci/run installs it)")
    model = every_kernel_model()
    pkg = graphc.export_c(model, tmp_path / "pkg", name="kern")
    # valgrind runs threads serially anyway, and decodes no AVX-512: on x86 the AVX2 kernels stand in for it
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    cmake_build(pkg, tmp_path / "build", cflags="-mno-avx512f" if x86 else "", options={"KERN_OPENMP": "OFF"})
    exe = tmp_path / "build" / "example_main"
    xs = kernel_inputs(2, np.random.default_rng(7))
    inputs = write_inputs(tmp_path / "in.bin", xs)
    allocs = {}
    for repeat in (1, 6):
        result = run([valgrind, "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
                      exe, "--repeat", str(repeat), inputs], check=False)
        assert result.returncode == 0, result.stderr[-4000:]
        assert "ERROR SUMMARY: 0 errors" in result.stderr, result.stderr[-4000:]
        allocs[repeat] = int(re.search(r"total heap usage: ([\d,]+) allocs", result.stderr).group(1).replace(",", ""))
    # five more predict calls, not one more allocation
    assert allocs[1] == allocs[6], allocs
    # the example's error exits free what it allocated too: a program built from it copies its pattern
    (tmp_path / "bad.weights").write_bytes(b"hello" * 40)
    for args in (["--batch", "5", inputs], ["--weights", tmp_path / "bad.weights", inputs]):
        result = run([valgrind, "--leak-check=full", exe, *args], check=False)
        assert result.returncode == 1, result.stderr[-4000:]
        assert "All heap blocks were freed" in result.stderr, (args, result.stderr[-4000:])
