"""Whole models on the AVX-512 SGEMM micro-kernel. The default build leaves it out on AMD Zen (kernels/sgemm.c:
512-bit FMAs at the 256-bit rate there), while CPUs with full-rate 512-bit FMAs run it by default; the C tests
(ctest's sgemm_avx512) check the kernel alone. A separate process compiles with -DGRAPHC_GEMM_AVX512, so its
kernels library never meets this process's."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_cmake import cpu_flags

ROOT = Path(__file__).resolve().parent.parent


SCRIPT = r"""
import ctypes, os, sys
import numpy as np
sys.path.insert(0, os.path.join(sys.argv[1], "examples"))
import graphc, seed_models
from graphc.runtime import kernels, toolchain

lib = ctypes.CDLL(str(kernels.kernel_library(toolchain.current())))
lib.graphc_sgemm_kernel_name.restype = ctypes.c_char_p
print("kernel:", lib.graphc_sgemm_kernel_name().decode())


def both(fn):
    got = fn()
    os.environ["GRAPHC_BACKEND"] = "reference"
    try:
        return got, fn()
    finally:
        del os.environ["GRAPHC_BACKEND"]


graphc.utils.set_random_seed(0)  # a fresh process: without a seed, each run would draw other weights

# Inference: batch 1 and 3 take the few-rows products over prepacked weights, 64 the packed GEMM.
for name in ("mlp_003", "toy_resnet_002", "mnist_model_002"):
    model = seed_models.SEED_MODELS[name]()
    for batch in (1, 3, 64):
        x = seed_models.random_inputs(model, batch=batch, seq_len=7, rng=np.random.default_rng(batch))
        x = x if len(x) > 1 else x[0]
        got, want = both(lambda: model.predict(x, verbose=0))
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5, err_msg=f"{name} at batch {batch}")

# Training: one SGD step of the seed MLP, compiled against the reference executor from the same weights.
graphc.utils.set_random_seed(6)
model = seed_models.SEED_MODELS["mlp_003"]()
start = model.get_weights()
x = np.random.default_rng(0).uniform(0, 1, (37, 784)).astype("float32")
y = np.random.default_rng(1).integers(0, 10, 37)
# A pre-activation within rounding of ReLU's kink may fall on either side in C and in NumPy, and the two gradients
# then rightly differ in a whole column. The seed above keeps every one well away from it, checked here.
h = x.astype(np.float64)
for kernel, bias in zip(start[0:6:2], start[1:6:2]):
    pre = h @ kernel + bias
    assert np.abs(pre).min() > 1e-4, f"a pre-activation at {np.abs(pre).min():.1e}: choose another seed"
    h = np.maximum(pre, 0)
weights = []
for backend in ("C", "reference"):
    if backend == "reference":
        os.environ["GRAPHC_BACKEND"] = "reference"
    model.set_weights(start)
    model.compile(optimizer=graphc.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model.train_on_batch(x, y)
    weights.append(model.get_weights())
for got, want in zip(*weights):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
print("ok")
"""


@pytest.mark.skipif("avx512f" not in cpu_flags(), reason="this CPU has no AVX-512")
def test_models_on_the_avx512_kernel_match_the_reference(tmp_path):
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(tmp_path / "cache"),
               CFLAGS=(os.environ.get("CFLAGS", "") + " -DGRAPHC_GEMM_AVX512").strip())
    env.pop("GRAPHC_BACKEND", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kernel: AVX-512 14x32" in result.stdout, result.stdout
    assert result.stdout.rstrip().endswith("ok"), result.stdout
