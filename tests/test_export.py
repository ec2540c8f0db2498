"""graphc.export_c: the package builds with CMake (warning-free, gcc and clang), its example_main gives
model.predict's numbers, the weights file is checked, and bad arguments are refused clearly."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.export import export_package
from graphc.export.weights import read_file
from export_util import (assert_matches, cmake_build, global_symbols, needs_cmake, parse_outputs, run,
                         run_example, write_inputs)

pytestmark = needs_cmake


def dense_model(name="mlp", seed=0):
    graphc.utils.set_random_seed(seed)
    x = graphc.Input((6,), name="features")
    h = layers.Dense(8, activation="relu", name="hidden")(x)
    return graphc.Model(x, layers.Dense(3, activation="softmax", name="probs")(h), name=name)


def every_kernel_model():
    """Convolution, pooling, BatchNorm, LayerNorm, Embedding, LSTM, GRU, concatenation: each kernel file."""
    graphc.utils.set_random_seed(1)
    img = graphc.Input((10, 10, 2), name="image")
    ids = graphc.Input((7,), dtype="int32", name="tokens")
    c = layers.Conv2D(4, 3, padding="same", activation="relu")(img)
    c = layers.BatchNormalization()(c)
    c = layers.MaxPooling2D()(c)
    c = layers.Flatten()(c)
    e = layers.Embedding(20, 5)(ids)
    s = layers.LSTM(6, return_sequences=True)(e)
    s = layers.GRU(4)(layers.LayerNormalization()(s))
    out = layers.Dense(3)(layers.concatenate([c, s]))
    model = graphc.Model([img, ids], out, name="kernels")
    rng = np.random.default_rng(0)  # BatchNorm statistics that are not the identity
    model.set_weights([w + rng.normal(0, 0.1, w.shape).astype("float32") if w.ndim == 1 else w
                       for w in model.get_weights()])
    return model


def kernel_inputs(batch, rng):
    return [rng.normal(size=(batch, 10, 10, 2)).astype("float32"), rng.integers(0, 20, (batch, 7)).astype("int32")]


def test_package_builds_warning_free_and_matches_predict(tmp_path):
    model = dense_model()
    pkg = graphc.export_c(model, tmp_path / "pkg", name="mlp")
    names = sorted(p.name for p in pkg.iterdir())
    assert names == sorted(["CMakeLists.txt", "README.md", "example_main.c", "graphc-export.json", "kernels",
                            "mlp.c", "mlp.h", "mlp_weights.c"])
    log = cmake_build(pkg, tmp_path / "build")
    assert "warning" not in log.lower(), log
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    exe = tmp_path / "build" / "example_main"
    assert_matches(run_example(exe, [x], tmp_path), model.predict(x))
    assert_matches(run_example(exe, [x[:1]], tmp_path, text=True), model.predict(x[:1]))
    # both libraries, and nothing global outside the model's own prefix (two exports link together)
    static, shared = tmp_path / "build" / "libmlp.a", tmp_path / "build" / "libmlp.so"
    assert static.is_file() and shared.is_file()
    symbols = global_symbols(static)
    assert "mlp_predict" in symbols and "mlp_workspace_size" in symbols
    assert all(s.startswith("mlp_") for s in symbols), [s for s in symbols if not s.startswith("mlp_")]
    # A C++ program includes the header and links the C library (the extern "C" guards).
    cxx = shutil.which("g++") or shutil.which("clang++")
    if cxx is None:
        print("no C++ compiler found: the C++ link is not checked")
        return
    (tmp_path / "main.cpp").write_text("""#include <cstdio>
#include <vector>
#include "mlp.h"
int main() {
    std::vector<float> x(2 * MLP_INPUT0_SAMPLE_ELEMENTS, 1.0f), y(2 * MLP_OUTPUT0_SAMPLE_ELEMENTS);
    const void *in[] = {x.data()};
    void *out[] = {y.data()};
    if (mlp_predict_alloc(nullptr, 2, in, out) != MLP_OK) return 1;
    std::printf("%.9g\\n", static_cast<double>(y[4]));
    return 0;
}
""")
    run([cxx, "-std=c++11", "-Wall", "-Wextra", "-pedantic", "-Werror", "-I", pkg, tmp_path / "main.cpp", static,
         "-fopenmp", "-lm", "-o", tmp_path / "cpp_main"])
    assert float(run([tmp_path / "cpp_main"]).stdout) == pytest.approx(float(model.predict(np.ones((2, 6), "float32"))[1, 1]),
                                                                      abs=1e-6)


def test_header_is_cxx_compatible_and_describes_the_model(tmp_path):
    model = dense_model()
    pkg = graphc.export_c(model, tmp_path / "pkg", name="mlp", batch_size=4)
    header = (pkg / "mlp.h").read_text()
    assert 'extern "C"' in header and "#define MLP_WORKSPACE_SIZE" in header and "#define MLP_BATCH_SIZE 4" in header
    program = tmp_path / "info.c"
    program.write_text(r"""
#include <stdio.h>
#include <string.h>
#include "mlp.h"
/* an embedded user's static arena: the macro size, aligned as the header says */
static unsigned char arena[MLP_WORKSPACE_SIZE + MLP_WORKSPACE_ALIGN];
int main(void) {
    float x[MLP_BATCH_SIZE * MLP_INPUT0_SAMPLE_ELEMENTS] = {0}, y[(MLP_BATCH_SIZE + 1) * MLP_OUTPUT0_SAMPLE_ELEMENTS];
    const void *in[] = {x};
    void *out[] = {y};
    unsigned char *ws = arena + (MLP_WORKSPACE_ALIGN - (size_t)arena % MLP_WORKSPACE_ALIGN) % MLP_WORKSPACE_ALIGN;
    printf("%s %d %d %lld %lld %lu\n", mlp_input_name(0), mlp_input_dtype(0), mlp_input_rank(0),
           (long long)mlp_input_dim(0, 0), (long long)mlp_input_dim(0, 1), (unsigned long)mlp_output_sample_elements(0));
    printf("%s %d\n", mlp_output_name(0), mlp_output_name(1) == NULL);
    printf("%d\n", mlp_workspace_size(MLP_BATCH_SIZE) == MLP_WORKSPACE_SIZE);
    printf("%d\n", mlp_predict(NULL, MLP_BATCH_SIZE, in, out, ws, MLP_WORKSPACE_SIZE));
    printf("%d\n", mlp_predict(NULL, MLP_BATCH_SIZE + 1, in, out, ws, MLP_WORKSPACE_SIZE) == MLP_ERR_BATCH);
    printf("%d\n", mlp_predict(NULL, 2, in, out, ws + 1, MLP_WORKSPACE_SIZE) == MLP_ERR_WORKSPACE);
    printf("%d\n", mlp_predict(NULL, 2, in, out, ws, 1) == MLP_ERR_WORKSPACE);
    printf("%d\n", mlp_predict(NULL, 2, NULL, out, ws, MLP_WORKSPACE_SIZE) == MLP_ERR_NULL_ARGUMENT);
    printf("%d\n", mlp_predict(NULL, 0, in, out, ws, MLP_WORKSPACE_SIZE) == MLP_ERR_BATCH);
    printf("%d\n", mlp_predict_alloc(NULL, 3, in, out) == MLP_OK);
    printf("%s|%s\n", mlp_status_message(MLP_ERR_BATCH), mlp_status_message(999));
    return 0;
}
""")
    readme = (pkg / "README.md").read_text()
    (tmp_path / "readme.c").write_text(readme.split("## Embedding")[1].split("```c\n")[1].split("```")[0])
    (tmp_path / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(info C)
add_subdirectory("{pkg}" mlp)
foreach(program info readme)
  add_executable(${{program}} ${{program}}.c)
  set_target_properties(${{program}} PROPERTIES C_STANDARD 99 C_EXTENSIONS OFF)
  target_compile_options(${{program}} PRIVATE -Wall -Wextra -pedantic)
  target_link_libraries(${{program}} PRIVATE mlp_static)
endforeach()
""")
    log = cmake_build(tmp_path, tmp_path / "build")
    assert "warning" not in log.lower(), log
    # the README's embedding example builds and prints the first output of a zero input
    first = float(run([tmp_path / "build" / "readme"]).stdout)
    x0 = np.zeros((2, 6), "float32")
    assert first == pytest.approx(float(model.predict(x0)[0, 0]), abs=1e-6)
    lines = run([tmp_path / "build" / "info"]).stdout.splitlines()
    assert lines[0] == "features 1 2 -1 6 3"
    assert lines[1] == "probs 1"
    assert lines[2:10] == ["1", "0", "1", "1", "1", "1", "1", "1"]
    assert lines[10].startswith("the batch size is below 1") and lines[10].endswith("|unknown status code")


def test_prepared_weights_are_made_once_and_read_by_every_call(tmp_path):
    """<name>_prepare derives the kernels' copies of the weights (the Dense kernel packed for the GEMM, the 3x3
    kernel transformed for Winograd) once; <name>_predict_prepared gives predict's numbers with them, refuses a
    misaligned or short buffer, and follows changed weights once they are prepared again. A model with
    nothing to prepare reports 0 bytes and takes any buffer."""
    graphc.utils.set_random_seed(3)
    x = graphc.Input((6, 6, 16), name="image")
    h = layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(x)
    model = graphc.Model(x, layers.Dense(5, name="head")(layers.Flatten()(h)), name="prep")
    plain = graphc.Model(x, layers.Activation("tanh")(x), name="plain")
    prep = graphc.export_c(model, tmp_path / "prep", name="prep", weights="file")
    graphc.export_c(plain, tmp_path / "plain", name="plain")
    (tmp_path / "check.c").write_text(r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "prep.h"
#include "plain.h"
#define N 3
static float x[N * PREP_INPUT0_SAMPLE_ELEMENTS], y[N * PREP_OUTPUT0_SAMPLE_ELEMENTS], z[N * PREP_OUTPUT0_SAMPLE_ELEMENTS];
static void print(const float *v) { int i; for (i = 0; i < N * PREP_OUTPUT0_SAMPLE_ELEMENTS; i++) printf("%.9g ", v[i]); printf("\n"); }
static void *aligned(size_t bytes) { return aligned_alloc(64, (bytes + 63) / 64 * 64); }
int main(int argc, char **argv) {
    const void *in[] = {x};
    void *out_y[] = {y}, *out_z[] = {z};
    size_t ws_bytes = prep_workspace_size(N), p_bytes = prep_prepared_size(), k;
    unsigned char *ws = aligned(ws_bytes), *weights = aligned(prep_weights_size()), *p = aligned(p_bytes);
    float *kernel = malloc(prep_weight_bytes(0));
    int i;
    (void)argc;
    for (i = 0; i < N * PREP_INPUT0_SAMPLE_ELEMENTS; i++) x[i] = (float)((i * 37) % 19) / 19.0f - 0.4f;
    if (prep_load_weights(argv[1], weights, prep_weights_size()) != PREP_OK) return 1;
    printf("%d\n", p_bytes > 0);
    printf("%d %d %d\n", prep_prepare(weights, NULL, p_bytes) == PREP_ERR_NULL_ARGUMENT,
           prep_prepare(weights, p + 4, p_bytes) == PREP_ERR_PREPARED, prep_prepare(weights, p, p_bytes - 1) == PREP_ERR_PREPARED);
    printf("%d\n", prep_prepare(weights, p, p_bytes));
    printf("%d %d\n", prep_predict(weights, N, in, out_y, ws, ws_bytes), prep_predict_prepared(weights, p, N, in, out_z, ws, ws_bytes));
    print(y); print(z);
    printf("%d\n", prep_predict_prepared(weights, p + 4, N, in, out_z, ws, ws_bytes) == PREP_ERR_PREPARED);
    /* new weights: the conv kernel doubled, prepared again */
    prep_read_weight(weights, 0, kernel);
    for (k = 0; k < prep_weight_bytes(0) / sizeof(float); k++) kernel[k] *= 2.0f;
    prep_write_weight(weights, 0, kernel);
    prep_predict_prepared(weights, p, N, in, out_z, ws, ws_bytes); /* not prepared again: the old kernel's copy */
    print(z);
    printf("%d\n", prep_prepare(weights, p, p_bytes));
    printf("%d %d\n", prep_predict(weights, N, in, out_y, ws, ws_bytes), prep_predict_prepared(weights, p, N, in, out_z, ws, ws_bytes));
    print(y); print(z);
    {   /* nothing to prepare */
        float a[2 * PLAIN_INPUT0_SAMPLE_ELEMENTS] = {0.5f}, b[2 * PLAIN_OUTPUT0_SAMPLE_ELEMENTS];
        const void *pin[] = {a};
        void *pout[] = {b};
        int rc = plain_predict_prepared(NULL, (void *)1, 2, pin, pout, ws, plain_workspace_size(2));
        printf("%lu %d %d %.9g\n", (unsigned long)plain_prepared_size(), plain_prepare(NULL, NULL, 0), rc, b[0]);
    }
    printf("%d %d\n", prep_read_weight(weights, -1, kernel) == PREP_ERR_WEIGHT_INDEX,  /* (it said: mismatch) */
           prep_write_weight(weights, PREP_NUM_WEIGHTS, kernel) == PREP_ERR_WEIGHT_INDEX);
    free(ws); free(weights); free(p); free(kernel);
    return 0;
}
""")
    (tmp_path / "CMakeLists.txt").write_text(f"""cmake_minimum_required(VERSION 3.13)
project(check C)
add_subdirectory("{prep}" prep)
add_subdirectory("{tmp_path / 'plain'}" plain)
add_executable(check check.c)
set_target_properties(check PROPERTIES C_STANDARD 11 C_EXTENSIONS OFF)
target_compile_options(check PRIVATE -Wall -Wextra -pedantic)
target_link_libraries(check PRIVATE prep_static plain_static m)
""")
    log = cmake_build(tmp_path, tmp_path / "build")
    assert "warning" not in log.lower(), log
    lines = run([tmp_path / "build" / "check", prep / "prep.weights"]).stdout.splitlines()
    assert lines[:3] == ["1", "1 1 1", "0"]
    xs = (np.arange(3 * 6 * 6 * 16) * 37 % 19 / 19.0 - 0.4).astype("float32").reshape(3, 6, 6, 16)
    assert lines[3] == "0 0"
    y, z = (np.array(line.split(), dtype=np.float64) for line in lines[4:6])
    np.testing.assert_allclose(y, model.predict(xs).reshape(-1), atol=1e-5)
    np.testing.assert_allclose(z, y, atol=1e-5)
    assert lines[6] == "1"
    stale = np.array(lines[7].split(), dtype=np.float64)  # the prepared copy is what the call reads
    np.testing.assert_allclose(stale, z, atol=1e-5)
    assert lines[8] == "0" and lines[9] == "0 0"
    kernel, *rest = model.get_weights()
    model.set_weights([kernel * 2, *rest])
    y, z = (np.array(line.split(), dtype=np.float64) for line in lines[10:12])
    np.testing.assert_allclose(y, model.predict(xs).reshape(-1), atol=1e-5)
    np.testing.assert_allclose(z, y, atol=1e-5)
    size, prepare_rc, predict_rc, first = lines[12].split()
    assert (size, prepare_rc, predict_rc) == ("0", "0", "0") and float(first) == pytest.approx(np.tanh(0.5), abs=1e-6)
    assert lines[13] == "1 1"  # a weight index out of range has its own code


def test_weights_file_is_checked(tmp_path):
    model = dense_model()
    export = export_package(model, tmp_path / "pkg", name="mlp", weights="file")
    pkg = export.path
    assert not (pkg / "mlp_weights.c").exists()
    payload = read_file(pkg / "mlp.weights")
    kernel = np.frombuffer(payload[:6 * 8 * 4], dtype="<f4").reshape(6, 8)
    np.testing.assert_array_equal(kernel, model.get_weights()[0])
    cmake_build(pkg, tmp_path / "build")
    exe = tmp_path / "build" / "example_main"
    x = np.random.default_rng(1).normal(size=(3, 6)).astype("float32")
    assert_matches(run_example(exe, [x], tmp_path), model.predict(x))

    good = (tmp_path / "build" / "mlp.weights").read_bytes()
    cases = {"corrupt": good[:100] + bytes([good[100] ^ 1]) + good[101:],     # a payload bit flipped
             "truncated": good[:-10], "longer": good + b"\0", "not_weights": b"hello" * 40,
             "header_size": good[:16] + (999).to_bytes(8, "little") + good[24:]}
    other = export_package(dense_model("other", seed=3), tmp_path / "other", name="mlp", weights="file")
    assert (other.path / "mlp.weights").read_bytes() != good
    x1 = x[:1]
    messages = {}
    for label, data in cases.items():
        (tmp_path / f"{label}.weights").write_bytes(data)
        result = run_example(exe, [x1], tmp_path, args=["--weights", tmp_path / f"{label}.weights"], check=False)
        assert result.returncode != 0, label
        messages[label] = result.stderr
    assert "corrupt" in messages["corrupt"]
    assert "cannot be opened or read" in messages["truncated"]
    assert "different model" in messages["longer"] and "different model" in messages["header_size"]
    assert "not a graphc weights file" in messages["not_weights"]
    missing = run_example(exe, [x1], tmp_path, args=["--weights", tmp_path / "absent.weights"], check=False)
    assert missing.returncode != 0 and "cannot be opened" in missing.stderr
    # The same architecture with other weights is accepted (same layout) and gives that model's numbers.
    shutil.copyfile(other.path / "mlp.weights", tmp_path / "other.weights")
    out = run_example(exe, [x1], tmp_path, args=["--weights", tmp_path / "other.weights"])
    assert_matches(out, dense_model("other", seed=3).predict(x1))


def test_every_kernel_family_gcc_and_clang(tmp_path):
    """Inference and the training step of a model using every kernel file build warning-free."""
    model = every_kernel_model()
    model.compile(optimizer="adam", loss="mse")
    inference = graphc.export_c(model, tmp_path / "inference", name="kern")
    shipped = sorted(p.name for p in (inference / "kernels").glob("*.c"))
    # what the model calls (conv.c calls winograd.c), not the training kernels (conv_grad, norm_grad,
    # rnn_grad) nor unused nn.c
    assert shipped == ["kern_gc_conv.c", "kern_gc_norm.c", "kern_gc_rnn.c", "kern_gc_sgemm.c", "kern_gc_winograd.c"]
    pkg = graphc.export_c(model, tmp_path / "pkg", name="kern", training=True)
    with_training = sorted(p.name for p in (pkg / "kernels").glob("*.c"))
    assert set(shipped) < set(with_training) and {"kern_gc_conv_grad.c", "kern_gc_rnn_grad.c"} <= set(with_training)
    xs = kernel_inputs(3, np.random.default_rng(2))
    expected = model.predict(xs)
    compilers = ["gcc"] + (["clang"] if shutil.which("clang") else [])
    if len(compilers) == 1:
        print("clang not found: the clang build is not checked here (.ci/run installs it)")
    for cc in compilers:
        log = cmake_build(pkg, tmp_path / f"build-{cc}", cc=cc)
        assert "warning" not in log.lower(), log
        assert_matches(run_example(tmp_path / f"build-{cc}" / "example_main", xs, tmp_path), expected)
    bad = [xs[0], np.full((3, 7), 20, "int32")]  # an id past the Embedding's input_dim
    result = run_example(tmp_path / "build-gcc" / "example_main", bad, tmp_path, check=False)
    assert result.returncode != 0 and "Embedding" in result.stderr


def test_serial_build_without_openmp(tmp_path):
    model = every_kernel_model()
    pkg = graphc.export_c(model, tmp_path / "pkg", name="kern")
    log = cmake_build(pkg, tmp_path / "build", options={"KERN_OPENMP": "OFF", "KERN_NATIVE": "OFF"})
    assert "warning" not in log.lower()
    xs = kernel_inputs(2, np.random.default_rng(3))
    assert_matches(run_example(tmp_path / "build" / "example_main", xs, tmp_path), model.predict(xs))


def test_user_names_never_reach_c_raw(tmp_path):
    evil = 'x"); system("rm -rf /"); /* \\ ??/'
    x = graphc.Input((3,), name=evil)
    h = layers.Dense(4, name="h*\\ int injected; /\\*")(x)  # ("*\\" once became "*/" in comments)
    h = layers.Activation("softmax", name="safe_gc")(h)  # (its buffer would be the kernel safe_gc_softmax)
    h = layers.Dense(3, name="batch" + "." * 40)(h)  # (cut to 40 characters, it once was the variable batch)
    model = graphc.Model(x, layers.Dense(2, name="out*/ #define")(h), name="m */ evil")
    pkg = graphc.export_c(model, tmp_path / "pkg", name="safe")
    for path in pkg.rglob("*.[ch]"):
        text = path.read_text()
        # (comments show the names with "*/" and "/*" broken up, string literals escape them)
        assert evil not in text and "out*/" not in text, path
        assert "int injected;" not in re.sub(r"/\*.*?\*/", "", text, flags=re.S), path
    log = cmake_build(pkg, tmp_path / "build")
    assert "warning" not in log.lower(), log
    v = np.ones((1, 3), "float32")
    out = run_example(tmp_path / "build" / "example_main", [v], tmp_path)
    assert_matches(out, model.predict(v))
    stdout = run([tmp_path / "build" / "example_main", write_inputs(tmp_path / "i.bin", [v])]).stdout
    assert stdout.splitlines()[0] == "output 0 out*/ #define: 1 x 2"


def test_destination_rules(tmp_path):
    model = dense_model()
    nested = tmp_path / "a" / "b" / "pkg"
    assert graphc.export_c(model, nested, name="mlp") == nested and (nested / "mlp.h").is_file()
    with pytest.raises(ValueError, match="not empty; pass overwrite=True"):
        graphc.export_c(model, nested, name="mlp")
    graphc.export_c(model, nested, name="net", overwrite=True)  # replaces the earlier export
    assert (nested / "net.h").is_file() and not (nested / "mlp.h").exists()
    assert json.loads((nested / "graphc-export.json").read_text())["name"] == "net"
    user = tmp_path / "user"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a graphc export"):
        graphc.export_c(model, user, name="mlp", overwrite=True)
    assert (user / "notes.txt").read_text() == "mine"
    empty = tmp_path / "empty"
    empty.mkdir()
    graphc.export_c(model, empty, name="mlp")
    with pytest.raises(ValueError, match="not a directory"):
        graphc.export_c(model, user / "notes.txt", name="mlp")
    assert not [p for p in tmp_path.rglob(".*") if p.name.startswith(".pkg")]  # no staging left behind


def test_destinations_that_are_links_the_working_directory_or_have_their_own_mode(tmp_path, monkeypatch):
    model = dense_model()
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    graphc.export_c(model, ".", name="mlp")  # (an empty working directory: it raised "Device or resource busy")
    assert (here / "mlp.h").is_file()
    with pytest.raises(ValueError, match="holds the current working directory"):
        graphc.export_c(model, ".", name="mlp", overwrite=True)
    assert (here / "mlp.h").is_file()
    monkeypatch.chdir(tmp_path)
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir(mode=0o750)
    real.chmod(0o750)
    link.symlink_to(real, target_is_directory=True)
    graphc.export_c(model, link, name="one")
    graphc.export_c(model, link, name="two", overwrite=True)  # (it replaced the link by a directory)
    assert link.is_symlink() and (real / "two.h").is_file() and not (real / "one.h").exists()
    graphc.export_c(model, tmp_path / "mode", name="m")
    (tmp_path / "own").mkdir(mode=0o750)
    (tmp_path / "own").chmod(0o750)
    graphc.export_c(model, tmp_path / "own", name="m")  # an empty directory keeps its mode (it became 0755)
    assert (tmp_path / "own").stat().st_mode & 0o777 == 0o750 and (tmp_path / "own" / "m.h").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "link", "mode", "own", "real"]  # nothing aside


def test_an_earlier_export_that_cannot_be_removed_is_reported(tmp_path, monkeypatch):
    model = dense_model()
    graphc.export_c(model, tmp_path / "pkg", name="one")
    monkeypatch.setattr(shutil, "rmtree", lambda path, *a, **k: (_ for _ in ()).throw(PermissionError(13, "denied")))
    with pytest.warns(UserWarning, match=r"the earlier one, moved aside to .*\.pkg\.old\..*could not be removed"):
        graphc.export_c(model, tmp_path / "pkg", name="two", overwrite=True)
    assert (tmp_path / "pkg" / "two.h").is_file()


def test_a_nul_byte_in_an_input_name_is_refused(tmp_path):
    x = graphc.Input((3,), name="in\0put")
    with pytest.raises(ValueError, match=r"names \['in\\x00put'\] contain a NUL byte"):
        graphc.export_c(graphc.Model(x, layers.Dense(2)(x)), tmp_path / "pkg", name="nul")
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("name,why", [("stdio", "hides the system header <stdio.h>"),
                                      ("Time", "hides the system header <time.h>"),
                                      ("omp", "hides the system header <omp.h>"),
                                      ("example_main", "the package's example program")])
def test_names_whose_files_would_clash_are_refused(tmp_path, name, why):
    # stdio.h in the package broke every #include <stdio.h> of the build; example_main.c replaced the model's C
    with pytest.raises(ValueError, match=re.escape(why)):
        graphc.export_c(dense_model(), tmp_path / "pkg", name=name)
    assert not (tmp_path / "pkg").exists()


@pytest.mark.parametrize("name", ["1model", "my-model", "int", "a__b", "", "x" * 41, "_m", "mödel"])
def test_invalid_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="C identifier"):
        graphc.export_c(dense_model(), tmp_path / "pkg", name=name)
    assert not (tmp_path / "pkg").exists()


def test_bad_arguments(tmp_path):
    model = dense_model()
    with pytest.raises(TypeError, match="name must be a str"):
        graphc.export_c(model, tmp_path / "p", name=3)
    with pytest.raises(TypeError, match="expects a graphc Model"):
        graphc.export_c("model.keras", tmp_path / "p")
    with pytest.raises(ValueError, match="'embedded' or 'file'"):
        graphc.export_c(model, tmp_path / "p", weights="rom")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        graphc.export_c(model, tmp_path / "p", batch_size=0)
    seq = graphc.Input((None,), dtype="int32", name="ids")
    rnn = graphc.Model(seq, layers.LSTM(3)(layers.Embedding(10, 4)(seq)))
    with pytest.raises(ValueError, match=r"variable-length inputs \('ids' \(None, None\)\).*input_shapes"):
        graphc.export_c(rnn, tmp_path / "p")
    with pytest.raises(ValueError, match="input_shapes for input 'ids'"):
        graphc.export_c(rnn, tmp_path / "p", input_shapes=[(0,)])
    with pytest.raises(ValueError, match="input_shapes has 2 shape"):
        graphc.export_c(rnn, tmp_path / "p", input_shapes=[(5,), (5,)])
    assert not (tmp_path / "p").exists()
    pkg = graphc.export_c(rnn, tmp_path / "p", input_shapes=[(5,)])
    assert "#define MODEL_INPUT0_SAMPLE_ELEMENTS 5 " in (pkg / "model.h").read_text()
