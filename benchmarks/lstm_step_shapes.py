"""NumPy/OpenBLAS on one thread, timed on the products of one thread's share of an LSTM training step (the
LSTM-28 benchmark model at batch 64 on two threads: 32 samples, 28 steps, 28 features, 128 units), for the
bound on that step in RESULTS.md:

    OPENBLAS_NUM_THREADS=1 python benchmarks/lstm_step_shapes.py

  forward   per step [x_t | h] @ [kernel; recurrent]   (32 x 156) @ (156 x 512), 28 steps
  backward  per step dz @ recurrent^T                  (32 x 512) @ (512 x 128), 27 steps (not the first)
  weights   [x | h_prev]^T @ dz over the thread's rows (156 x 896) @ (896 x 512)
Prints the minimum and median of each over the runs, and its GFLOP/s at the minimum.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

SAMPLES, STEPS, FEATURES, UNITS = 32, 28, 28, 128


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=300)
    runs = ap.parse_args(argv).runs
    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.random(shape, dtype=np.float32)  # noqa: E731
    k, g = FEATURES + UNITS, 4 * UNITS
    xh, w, z = f32(SAMPLES, k), f32(k, g), np.empty((SAMPLES, g), np.float32)
    dz, r, dh = f32(SAMPLES, g), f32(UNITS, g), np.empty((SAMPLES, UNITS), np.float32)
    rows, dzs, dw = f32(SAMPLES * STEPS, k), f32(SAMPLES * STEPS, g), np.empty((k, g), np.float32)

    def forward():
        for _ in range(STEPS):
            np.matmul(xh, w, out=z)

    def backward():
        for _ in range(STEPS - 1):
            np.matmul(dz, r.T, out=dh)

    cases = [("forward", forward, STEPS * 2 * SAMPLES * k * g),
             ("backward", backward, (STEPS - 1) * 2 * SAMPLES * g * UNITS),
             ("weights", lambda: np.matmul(rows.T, dzs, out=dw), 2 * k * SAMPLES * STEPS * g)]
    total = 0.0
    for name, fn, flops in cases:
        best, median = timed(fn, runs)
        total += best
        print(f"{name:9s} min {best * 1e3:6.3f} ms  median {median * 1e3:6.3f} ms  {flops / best / 1e9:6.1f} GFLOP/s")
    print(f"sum of minimums {total * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
