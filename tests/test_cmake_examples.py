"""The main example (train on digits, export, build with CMake, compare with model.predict) and the
top-level CMake project's C examples: kernels_demo and embed_digits, run by ctest."""
import os
import re
import shutil
import sys

import pytest

from export_util import cmake_build, needs_cmake, run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@needs_cmake
def test_train_and_export_then_ctest_runs_the_c_examples(tmp_path):
    out = run([sys.executable, os.path.join(ROOT, "examples", "train_and_export.py"), "--out", tmp_path / "out",
               "--epochs", "3"], env={"PYTHONPATH": ROOT}).stdout
    assert "C package: test accuracy" in out and "disagrees" not in out, out
    accuracy = float(out.split("C package: test accuracy ")[1].split(",")[0])
    assert accuracy >= 0.9, out
    log = cmake_build(ROOT, tmp_path / "build",
                      options={"GRAPHC_EXAMPLE_MODEL_DIR": tmp_path / "out" / "digits_mlp", "GRAPHC_BUILD_TESTS": "OFF"})
    assert "warning" not in log.lower(), log
    ctest = run([shutil.which("ctest") or "ctest", "--output-on-failure", "-V"], cwd=tmp_path / "build").stdout
    assert "100% tests passed" in ctest and "out of 2" in ctest, ctest
    assert "dense 37x300 -> 129" in ctest and "max error vs reference" in ctest, ctest
    right, total = map(int, re.search(r"embed_digits: (\d+) of (\d+) test digits right", ctest).groups())
    assert right / total == pytest.approx(accuracy, abs=6e-5), ctest  # the C program classifies as Python did
