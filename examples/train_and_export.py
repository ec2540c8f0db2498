"""Train the seed MLP on real digits, export it as a standalone C package, build that with CMake and check
that the C program classifies the test set exactly as model.predict does.

    python examples/train_and_export.py [--out DIR] [--epochs N]

The package (DIR/digits_mlp: header, sources, weights, CMakeLists.txt, example_main.c) builds without
Python; DIR/digits_test.bin holds the test images and labels for examples/c/embed_digits.c, which the
top-level CMake project builds and runs as a ctest when given -DGRAPHC_EXAMPLE_MODEL_DIR=DIR/digits_mlp.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import graphc

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_digits import load, seed_mlp  # noqa: E402


def build_and_run(package, x_test):
    """cmake-build the package and run its example_main on x_test; returns the C outputs (or None)."""
    cmake = shutil.which("cmake")
    if cmake is None:
        print("cmake not found: the package is written but not built")
        return None
    build = package / "build"
    for cmd in ([cmake, "-S", str(package), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                [cmake, "--build", str(build), "--parallel"]):
        subprocess.run(cmd, check=True, capture_output=True, text=True)
    inputs = package.parent / "x_test.bin"
    inputs.write_bytes(np.ascontiguousarray(x_test, dtype="<f4").tobytes())
    run = subprocess.run([str(build / "example_main"), "--repeat", "20", str(inputs)], check=True,
                         capture_output=True, text=True)
    print(f"C example_main on {len(x_test)} samples: {run.stderr.strip()}")
    rows = [line.split() for line in run.stdout.splitlines()[1:]]
    return np.array(rows, dtype=np.float64)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="where to write the package (default: a temporary dir)")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args(argv)
    from pathlib import Path
    out = Path(args.out or tempfile.mkdtemp(prefix="graphc-digits-"))

    graphc.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load(mnist=False)
    model = seed_mlp(x_train.shape[1:])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    model.fit(x_train, y_train, batch_size=32, epochs=args.epochs, verbose=2)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"trained in {time.perf_counter() - t0:.1f} s; test accuracy {accuracy:.4f}")

    package = graphc.export_c(model, out / "digits_mlp", name="digits_mlp", overwrite=True)
    with open(out / "digits_test.bin", "wb") as f:  # for examples/c/embed_digits.c
        f.write(np.int32(len(x_test)).tobytes())
        f.write(np.ascontiguousarray(x_test, dtype="<f4").tobytes())
        f.write(np.ascontiguousarray(y_test, dtype="<i4").tobytes())
    print(f"C package written to {package}: {', '.join(sorted(p.name for p in package.iterdir()))}")

    c_out = build_and_run(package, x_test)
    if c_out is not None:
        expected = model.predict(x_test, verbose=0)
        diff = float(np.max(np.abs(c_out - expected)))
        c_accuracy = float(np.mean(np.argmax(c_out, axis=1) == y_test))
        print(f"C package: test accuracy {c_accuracy:.4f}, max |C - model.predict| = {diff:.2e}")
        if diff > 1e-5 or np.any(np.argmax(c_out, axis=1) != np.argmax(expected, axis=1)):
            print("the C package disagrees with model.predict")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
