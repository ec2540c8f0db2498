"""The ``graphc`` command line, run in-process through ``graphc.cli.main(argv)``."""
import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import graphc
from graphc import layers
from graphc.cli import main

REPO = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_model():
    return graphc.Sequential([graphc.Input((4,)), layers.Dense(3, activation="relu", name="hidden"),
                              layers.Dense(2, name="head")], name="tiny")


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "tiny.keras"
    tiny_model().save(path)
    return str(path)


@pytest.fixture
def embedding_model(tmp_path):
    """A variable-length int input (sequence of ids) into an Embedding table of 10 rows."""
    ids = graphc.Input((None,), dtype="int32", name="ids")
    pooled = layers.GlobalAveragePooling1D()(layers.Embedding(10, 4)(ids))
    path = tmp_path / "emb.keras"
    graphc.Model(ids, layers.Dense(2)(pooled), name="emb").save(path)
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_error(code, out, err, command, expected_code, fragment):
    """One error line naming the command, on stderr, nothing on stdout, no traceback."""
    assert code == expected_code, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"graphc {command}: error: ") if command else lines[0].startswith("graphc: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in err


# --- summary --------------------------------------------------------------------------------------------------
def test_summary_prints_the_table_with_the_models_param_count(capsys, saved):
    code, out, err = run(capsys, "summary", saved)
    assert code == 0, err
    assert 'Model: "tiny"' in out
    assert "hidden (Dense)" in out and "head (Dense)" in out
    assert f"Total params: {4 * 3 + 3 + 3 * 2 + 2}" in out  # kernels and biases of both layers


def test_summary_of_a_model_json_warns_that_weights_are_random(capsys, tmp_path):
    model = tiny_model()
    path = tmp_path / "tiny.json"
    path.write_text(model.to_json())
    code, out, err = run(capsys, "summary", path)
    assert code == 0, err
    assert f"Total params: {model.count_params()}" in out
    assert "weights are random" in err


# --- plot -----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not shutil.which("dot"), reason="Graphviz 'dot' is not installed")
def test_plot_writes_a_png(capsys, saved, tmp_path):
    target = tmp_path / "model.png"
    code, out, err = run(capsys, "plot", saved, "-o", target, "--show-shapes", "--show-dtype", "--rankdir", "LR",
                         "--dpi", "72")
    assert code == 0, err
    assert target.read_bytes()[:8] == PNG_MAGIC
    assert str(target) in out


def test_plot_options_reach_the_graph(capsys, saved, tmp_path):
    target = tmp_path / "model.dot"  # DOT text: no Graphviz needed to read the options back
    code, _, err = run(capsys, "plot", saved, "-o", target, "--show-shapes", "--rankdir", "LR", "--dpi", "50")
    assert code == 0, err
    text = target.read_text()
    assert 'rankdir="LR"' in text and "dpi=50" in text
    assert "{(None, 4)}|{(None, 3)}" in text  # hidden's input and output shapes


def test_plot_without_graphviz_is_a_clear_error(capsys, saved, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no 'dot' on PATH
    code, out, err = run(capsys, "plot", saved, "-o", tmp_path / "model.png")
    assert_error(code, out, err, "plot", 1, "Graphviz")
    assert not (tmp_path / "model.png").exists()


# --- bench ----------------------------------------------------------------------------------------------------
def bench_rows(out):
    return [[float(v) for v in line.split()] for line in out.splitlines() if re.match(r"^\s*\d+\s", line)]


def test_bench_prints_one_row_per_batch(capsys, saved):
    code, out, err = run(capsys, "bench", saved, "--batch", "1,3,8", "--repeat", "3", "--warmup", "1",
                         "--threads", "1")
    assert code == 0, err
    assert "not timing compiled C" not in err  # the compiled program ran, not the NumPy reference
    assert "1 thread(s)" in out
    rows = bench_rows(out)
    assert [r[0] for r in rows] == [1, 3, 8]
    for batch, median_ms, min_ms, per_second in rows:
        assert 0 < min_ms <= median_ms
        assert per_second == pytest.approx(batch / (median_ms / 1e3), rel=1e-2)


def test_bench_feeds_valid_ids_to_an_int_input(capsys, embedding_model):
    code, out, err = run(capsys, "bench", embedding_model, "--batch", "2", "--repeat", "2", "--warmup", "0",
                         "--input-shape", "7")
    assert code == 0, err
    assert [r[0] for r in bench_rows(out)] == [2]


def test_bench_asks_for_the_length_of_a_variable_length_input(capsys, embedding_model):
    code, out, err = run(capsys, "bench", embedding_model, "--batch", "2")
    assert_error(code, out, err, "bench", 1, "--input-shape")


# --- export and build -----------------------------------------------------------------------------------------
def test_export_writes_a_c_package(capsys, saved, tmp_path):
    out_dir = tmp_path / "pkg"  # missing: export creates it
    code, out, err = run(capsys, "export", saved, "-o", out_dir, "--name", "tiny", "--batch-size", "4")
    assert code == 0, err
    header = (out_dir / "tiny.h").read_text()
    assert "tiny_predict(" in header and "TINY_WORKSPACE_SIZE" in header  # fixed batch: a static arena size
    assert str(out_dir) in out


def test_export_replaces_an_earlier_export_only_with_overwrite(capsys, saved, tmp_path):
    out_dir = tmp_path / "pkg"
    assert run(capsys, "export", saved, "-o", out_dir)[0] == 0
    header = out_dir / "model.h"
    header.write_text("stale")
    code, out, err = run(capsys, "export", saved, "-o", out_dir)
    assert_error(code, out, err, "export", 1, str(out_dir))
    assert header.read_text() == "stale"
    code, out, err = run(capsys, "export", saved, "-o", out_dir, "--overwrite")
    assert code == 0, err
    assert "model_predict(" in header.read_text()


def test_export_never_replaces_a_foreign_directory(capsys, saved, tmp_path):
    out_dir = tmp_path / "mine"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    code, out, err = run(capsys, "export", saved, "-o", out_dir, "--overwrite")
    assert_error(code, out, err, "export", 1, str(out_dir))
    assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt"]


def test_export_rejects_a_name_that_is_not_a_c_identifier(capsys, saved, tmp_path):
    code, out, err = run(capsys, "export", saved, "-o", tmp_path / "pkg", "--name", "my-model")
    assert_error(code, out, err, "export", 1, "my-model")


def test_export_input_shape_fixes_a_variable_length_input(capsys, embedding_model, tmp_path):
    code, _, err = run(capsys, "export", embedding_model, "-o", tmp_path / "pkg", "--name", "emb",
                       "--input-shape", "7")
    assert code == 0, err
    assert "#define EMB_INPUT0_SAMPLE_ELEMENTS 7 " in (tmp_path / "pkg" / "emb.h").read_text()


def test_export_input_shape_must_fit_the_model(capsys, embedding_model, tmp_path):
    code, out, err = run(capsys, "export", embedding_model, "-o", tmp_path / "pkg", "--input-shape", "7,2")
    assert_error(code, out, err, "export", 1, "does not fit input 'ids'")
    assert not (tmp_path / "pkg").exists()


def record_calls(monkeypatch, function):
    """Replace graphc.export.<function> by a recorder returning a path: checks the options' mapping alone."""
    import graphc.export
    calls = []

    def recorder(model, output, **kwargs):
        calls.append((model, output, kwargs))
        return Path(output)
    monkeypatch.setattr(graphc.export, function, recorder)
    return calls


def test_export_options_reach_export_c(capsys, monkeypatch, tmp_path):
    model = tiny_model()
    model.compile(optimizer="sgd", loss="mse")
    model.save(tmp_path / "compiled.keras")
    calls = record_calls(monkeypatch, "export_c")
    code, _, err = run(capsys, "export", tmp_path / "compiled.keras", "-o", tmp_path / "pkg", "--name", "net",
                       "--weights", "file", "--batch-size", "3", "--training", "--overwrite", "--max-threads", "2",
                       "--input-shape", "4")
    assert code == 0, err
    (loaded, output, kwargs), = calls
    assert str(output) == str(tmp_path / "pkg")
    assert kwargs == dict(name="net", weights="file", batch_size=3, training=True, overwrite=True,
                          input_shapes=[(4,)], max_threads=2)
    assert loaded.compiled and loaded.optimizer is not None  # a training export needs loss and optimizer


def test_export_and_build_defaults(capsys, monkeypatch, saved, tmp_path):
    exports, builds = record_calls(monkeypatch, "export_c"), record_calls(monkeypatch, "build_library")
    assert run(capsys, "export", saved, "-o", tmp_path / "pkg")[0] == 0
    assert run(capsys, "build", saved, "-o", tmp_path / "libtiny.so")[0] == 0
    assert exports[0][2] == dict(name="model", weights="embedded", batch_size=None, training=False, overwrite=False,
                                 input_shapes=None, max_threads=None)
    assert builds[0][2] == dict(name=None, weights="embedded", batch_size=None, max_threads=None, input_shapes=None)


def call_predict(library, name, x, n_out):
    """``<name>_predict_alloc`` (embedded weights: NULL) on float32 ``x`` -> (batch, n_out) outputs."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.zeros((x.shape[0], n_out), dtype=np.float32)
    predict = getattr(library, f"{name}_predict_alloc")
    predict.restype = ctypes.c_int
    predict.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_void_p),
                        ctypes.POINTER(ctypes.c_void_p)]
    status = predict(None, x.shape[0], (ctypes.c_void_p * 1)(x.ctypes.data), (ctypes.c_void_p * 1)(y.ctypes.data))
    assert status == 0
    return y


def test_build_writes_a_shared_library_with_the_c_api(capsys, saved, tmp_path, rng):
    target = tmp_path / "out" / "libtiny.so"
    code, out, err = run(capsys, "build", saved, "-o", target)
    assert code == 0, err
    assert str(target) in out
    library = ctypes.CDLL(str(target))
    assert hasattr(library, "tiny_predict")  # the name comes from the file name
    x = rng.standard_normal((5, 4)).astype("float32")
    expected = graphc.models.load_model(saved).predict(x)
    np.testing.assert_allclose(call_predict(library, "tiny", x, 2), expected, rtol=1e-5, atol=1e-5)


def test_build_name_option_sets_the_symbol_prefix(capsys, saved, tmp_path):
    target = tmp_path / "libwhatever.so"
    code, _, err = run(capsys, "build", saved, "-o", target, "--name", "net", "--batch-size", "2")
    assert code == 0, err
    library = ctypes.CDLL(str(target))
    assert hasattr(library, "net_predict") and not hasattr(library, "whatever_predict")


def test_build_into_a_directory_is_an_error(capsys, saved, tmp_path, monkeypatch):
    code, out, err = run(capsys, "build", saved, "-o", tmp_path)
    assert_error(code, out, err, "build", 1, "is a directory")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "build", saved, "-o", ".")  # (it said: name '' is not usable)
    assert_error(code, out, err, "build", 1, "is a directory")


def test_build_replaces_its_own_files_but_not_the_users(capsys, saved, tmp_path):
    target = tmp_path / "libutil.so"
    for _ in range(2):  # a second build replaces the first one's library, header and weights
        code, _, err = run(capsys, "build", saved, "-o", target, "--weights", "file")
        assert code == 0, err
    library = target.read_bytes()
    (tmp_path / "util.weights").unlink()
    (tmp_path / "util.h").write_text("/* the user's own util.h */\n")  # not graphc's: it stays
    code, out, err = run(capsys, "build", saved, "-o", target)
    assert_error(code, out, err, "build", 1, "util.h exists and was not written by graphc")
    (tmp_path / "util.h").unlink()
    (tmp_path / "util.weights").write_bytes(b"user data")
    code, out, err = run(capsys, "build", saved, "-o", target, "--weights", "file")
    assert_error(code, out, err, "build", 1, "util.weights exists and was not written by graphc")
    assert (tmp_path / "util.weights").read_bytes() == b"user data" and target.read_bytes() == library


# --- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, content, fragment", [
    ("missing.keras", None, "does not exist"),
    ("model.onnx", b"\0", "unknown model file extension .onnx"),
    ("model.h5", b"\x89HDF\r\n\x1a\n", "legacy HDF5"),
    ("model.weights.h5", b"\x89HDF\r\n\x1a\n", "weights only"),
    ("broken.keras", b"not a zip file", "not a valid .keras file"),
    ("broken.json", b'{"class_name": ', "not a valid JSON"),
    ("binary.json", b"\xff\xfe\x00", "cannot load"),
    ("layer.json", b'{"class_name": "Dense", "config": {"units": 2}}', "cannot load"),
])
def test_unusable_model_files_are_one_line_errors(capsys, tmp_path, name, content, fragment):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = run(capsys, "summary", path)
    assert_error(code, out, err, "summary", 1, fragment)


def test_a_directory_is_not_a_model(capsys, tmp_path):
    code, out, err = run(capsys, "summary", tmp_path)
    assert_error(code, out, err, "summary", 1, "is a directory")


@pytest.mark.parametrize("batch", ["1,x", "0", "", "1,,2", "-3", "2.5"])
def test_bad_batch_lists_are_usage_errors(capsys, saved, batch):
    code, out, err = run(capsys, "bench", saved, "--batch", batch)
    assert_error(code, out, err, "bench", 2, "argument --batch")


@pytest.mark.parametrize("argv, fragment", [
    (["--input-shape", "4,x"], "argument --input-shape"),
    (["--input-shape", ""], "argument --input-shape"),
    (["--input-shape", "0"], "argument --input-shape"),
    (["--repeat", "0"], "argument --repeat"),
    (["--warmup", "-1"], "argument --warmup"),
    (["--threads", "many"], "argument --threads"),
])
def test_bad_option_values_are_usage_errors(capsys, saved, argv, fragment):
    code, out, err = run(capsys, "bench", saved, *argv)
    assert_error(code, out, err, "bench", 2, fragment)


@pytest.mark.parametrize("shapes, fragment", [
    (["4", "4"], "has 1 input(s)"),
    (["4,1"], "does not fit input"),
    (["5"], "does not fit input"),
])
def test_input_shapes_that_do_not_fit_the_model_are_errors(capsys, saved, shapes, fragment):
    argv = [a for s in shapes for a in ("--input-shape", s)]
    code, out, err = run(capsys, "bench", saved, "--batch", "1", *argv)
    assert_error(code, out, err, "bench", 1, fragment)


@pytest.mark.parametrize("argv, command, fragment", [
    ([], None, "required: COMMAND"),
    (["compile", "x.keras"], None, "invalid choice: 'compile'"),
    (["plot", "x.keras"], "plot", "-o/--output"),
    (["plot", "x.keras", "-o", "x.png", "--rankdir", "XY"], "plot", "argument --rankdir"),
    (["plot", "x.keras", "-o", "x.png", "--dpi", "0"], "plot", "argument --dpi"),
    (["export", "x.keras"], "export", "-o/--output"),
    (["export", "x.keras", "-o", "d", "--weights", "flash"], "export", "argument --weights"),
    (["build", "x.keras", "-o", "libx.so", "--batch-size", "0"], "build", "argument --batch-size"),
    (["summary"], "summary", "MODEL"),
])
def test_usage_errors(capsys, argv, command, fragment):
    code, out, err = run(capsys, *argv)
    assert_error(code, out, err, command, 2, fragment)


def test_plot_into_a_missing_directory_is_an_error(capsys, saved, tmp_path):
    code, out, err = run(capsys, "plot", saved, "-o", tmp_path / "nowhere" / "model.png")
    assert_error(code, out, err, "plot", 1, "does not exist")


def test_plot_to_an_unknown_image_format_is_an_error(capsys, saved, tmp_path):
    code, out, err = run(capsys, "plot", saved, "-o", tmp_path / "model.bmp")
    assert_error(code, out, err, "plot", 1, "unsupported file format 'bmp'")


@pytest.mark.parametrize("command", ["summary", "plot", "export", "build", "bench"])
def test_every_command_has_help(capsys, command):
    code, out, err = run(capsys, command, "--help")
    assert code == 0 and err == ""
    assert out.startswith(f"usage: graphc {command}")
    assert "MODEL" in out


def test_python_dash_m_graphc_help():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-m", "graphc", "--help"], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: graphc")
    for command in ("summary", "plot", "export", "build", "bench"):
        assert command in result.stdout
