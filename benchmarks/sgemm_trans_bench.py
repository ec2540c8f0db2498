"""GFLOP/s of graphc_sgemm_ex in its four layouts (transa, transb) on training-like shapes.

Usage: python3 benchmarks/sgemm_trans_bench.py [--threads 2] [--rounds 5]

Builds kernels/sgemm.c with `cc -O3 -march=native -fopenmp` in a temporary directory and calls it
through ctypes. For each shape M x N x K the four layouts compute the same-sized product; they
alternate within every round (so a busy moment on a shared machine hits all of them) and each keeps
its best time. "vs NN" is the speed relative to the plain (0, 0) layout of the same shape.
"""
import argparse
import ctypes
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

from sgemm_bench import Scratch, scratch_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "kernels")
LAYOUTS = ((0, 0), (1, 0), (0, 1), (1, 1))

# (M, N, K, what): a Dense 784 -> 512 layer at batch 128/64 and its gradients, a square product, batch 1.
SHAPES = (
    (128, 512, 784, "forward  X @ W, batch 128"),
    (784, 512, 128, "dW = X^T @ dY, batch 128"),
    (784, 512, 64, "dW = X^T @ dY, batch 64"),
    (128, 784, 512, "dX = dY @ W^T, batch 128"),
    (64, 784, 512, "dX = dY @ W^T, batch 64"),
    (1024, 1024, 1024, "square"),
    (1, 784, 512, "dX at batch 1 (few rows)"),
)


def operands(ta, tb, M, N, K, rng):
    a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
    b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
    return a, b, np.zeros((M, N), dtype=np.float32)


def best_seconds(fn, repeats):
    fn()  # warm up (threads, caches, packing buffers)
    t0 = time.perf_counter()
    fn()
    reps = max(1, min(200, int(0.05 / max(time.perf_counter() - t0, 1e-7))))  # ~50 ms per timing
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        best = min(best, (time.perf_counter() - t0) / reps)
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5, help="alternate the layouts this many times; keep the best")
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before libgomp loads with our library
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    tmp = tempfile.mkdtemp(prefix="graphc_sgemm_trans_")
    try:
        lib_path = os.path.join(tmp, "libgraphc_sgemm.so")
        subprocess.run([cc, "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-I", KERNELS,
                        os.path.join(KERNELS, "sgemm.c"), "-lm", "-o", lib_path], check=True)
        lib = ctypes.CDLL(lib_path)
        measure(lib, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(lib, args):
    fp = ctypes.POINTER(ctypes.c_float)
    lib.graphc_sgemm_ex.argtypes = [ctypes.c_int] * 5 + [ctypes.c_float, fp, ctypes.c_int, fp, ctypes.c_int,
                                                         ctypes.c_float, fp, ctypes.c_int, ctypes.POINTER(Scratch)]
    lib.graphc_sgemm_ex.restype = None
    lib.graphc_sgemm_kernel_name.restype = ctypes.c_char_p
    rng = np.random.default_rng(0)
    calls, best = {}, {}
    for M, N, K, _ in SHAPES:
        for ta, tb in LAYOUTS:
            a, b, c = operands(ta, tb, M, N, K, rng)
            pa, pb, pc = (x.ctypes.data_as(fp) for x in (a, b, c))
            lda, ldb = a.shape[1], b.shape[1]
            scratch, keep = scratch_for(lib, M, N, K, args.threads)
            call = (lambda ta=ta, tb=tb, M=M, N=N, K=K, pa=pa, pb=pb, pc=pc, lda=lda, ldb=ldb, s=scratch:  # noqa: E731
                    lib.graphc_sgemm_ex(ta, tb, M, N, K, 1.0, pa, lda, pb, ldb, 0.0, pc, N, s))
            call()
            ref = (a.T if ta else a).astype(np.float64) @ (b.T if tb else b)
            np.testing.assert_allclose(c, ref, rtol=1e-3, atol=1e-3 * np.sqrt(K))
            calls[M, N, K, ta, tb] = (call, (a, b, c, keep))  # keep the arrays alive
            best[M, N, K, ta, tb] = float("inf")
    for _ in range(args.rounds):
        for key, (call, _) in calls.items():
            best[key] = min(best[key], best_seconds(call, 3))

    print(f"# graphc_sgemm_ex, {args.threads} threads, micro-kernel {lib.graphc_sgemm_kernel_name().decode()}, "
          f"best of {args.rounds} alternating rounds; GFLOP/s (vs NN)")
    print("| M x N x K | case | NN | TN (transa) | NT (transb) | TT |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for M, N, K, what in SHAPES:
        gf = [2.0 * M * N * K / best[M, N, K, ta, tb] / 1e9 for ta, tb in LAYOUTS]
        cells = [f"{gf[0]:.1f}"] + [f"{g:.1f} ({g / gf[0]:.2f})" for g in gf[1:]]
        print(f"| {M} x {N} x {K} | {what} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
