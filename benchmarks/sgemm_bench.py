"""GFLOP/s of graphc_sgemm (kernels/sgemm.c) against NumPy's OpenBLAS and the machine's FMA peak.

Usage: python3 benchmarks/sgemm_bench.py [--threads 2] [--sizes 256 512 1024 2048]

Builds kernels/sgemm.c as a shared library with `cc -O3 -march=native -fopenmp` in a temporary
directory and calls it through ctypes. NumPy runs in a child process whose environment has
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed, so OpenBLAS picks its own kernel for this CPU (some
machines set them to force a Haswell kernel); our own GEMM never sees those variables anyway.
Every figure is the best of several timed repetitions of square row-major C = A @ B; graphc and
NumPy alternate size by size for --rounds rounds and each keeps its best.
"""
import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KERNELS = os.path.join(ROOT, "kernels")
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Peak: independent FMA chains (more than pipes x latency) on the widest vectors the compiler targets,
# summed over the threads, each timed by its own CPU clock (so other processes do not lower it).
PEAK_C = r"""
#define _POSIX_C_SOURCE 199309L
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <time.h>
#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#define STORE _mm512_storeu_ps
#else
typedef __m256 vec;
#define LANES 8
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#define STORE _mm256_storeu_ps
#endif
#define CHAINS 12
static double thread_seconds(void) { /* CPU time of this thread: time spent descheduled does not count */
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
int main(void) {
    const long iters = 50000000L;
    double best = 0.0, sink = 0.0;
    int rep;
    for (rep = 0; rep < 3; ++rep) {
        double total = 0.0, s = 0.0;
#pragma omp parallel reduction(+ : total, s)
        {
            vec acc[CHAINS], a = SET1(1.0000001f), b = SET1(-1e-7f);
            float out[LANES];
            double t0 = thread_seconds();
            long it;
            int i;
            for (i = 0; i < CHAINS; ++i) acc[i] = SET1((float)i);
            for (it = 0; it < iters; ++it) {
#pragma GCC unroll 12 /* keeps acc[] in registers */
                for (i = 0; i < CHAINS; ++i) acc[i] = FMA(acc[i], a, b);
            }
            for (i = 1; i < CHAINS; ++i) acc[0] = ADD(acc[0], acc[i]);
            STORE(out, acc[0]);
            s += out[0];
            total += 2.0 * LANES * CHAINS * iters / (thread_seconds() - t0) / 1e9; /* this core's rate */
        }
        if (total > best) best = total;
        sink += s;
    }
    printf("{\"peak_gflops\": %.1f, \"bits\": %d, \"sink\": %g}\n", best, LANES * 32, sink);
    return 0;
}
"""


class Scratch(ctypes.Structure):
    """graphc_scratch (kernels/graphc_kernels.h)."""
    _fields_ = [("base", ctypes.POINTER(ctypes.c_float)), ("floats_per_thread", ctypes.c_size_t),
                ("nthreads", ctypes.c_int)]


def scratch_for(lib, M, N, K, threads):
    """(pointer to a graphc_scratch, the array behind it) sized by graphc_sgemm_scratch_floats for a product
    on up to ``threads`` threads: what a caller of graphc_sgemm provides."""
    lib.graphc_sgemm_scratch_floats.argtypes = [ctypes.c_int64] * 3
    lib.graphc_sgemm_scratch_floats.restype = ctypes.c_size_t
    per = lib.graphc_sgemm_scratch_floats(M, N, K)
    buf = np.empty(per * threads + 16, np.float32)
    start = (-buf.ctypes.data % 64) // 4  # 64-byte aligned
    s = Scratch(buf[start:].ctypes.data_as(ctypes.POINTER(ctypes.c_float)), per, threads)
    return ctypes.pointer(s), buf


def reps_for(n):
    return max(3, min(50, int(4e9 / (2.0 * n ** 3))))


def best_gflops(fn, n, clock="wall", threads=1, repeats=3):
    """GFLOP/s of the fastest of `repeats` timings. clock="cpu" divides the process CPU time by the
    thread count instead of using wall time: on a shared machine, time spent descheduled by other
    processes does not count (spinning OpenMP/OpenBLAS threads still do, on both sides)."""
    timer = time.perf_counter if clock == "wall" else time.process_time
    fn()  # warm up (threads, caches, packing buffers)
    reps, best = reps_for(n), float("inf")
    for _ in range(repeats):
        t0 = timer()
        for _ in range(reps):
            fn()
        best = min(best, (timer() - t0) / reps / (threads if clock == "cpu" else 1))
    return 2.0 * n ** 3 / best / 1e9


def openblas_core():
    """Which OpenBLAS kernel NumPy's wheel picked (NumPy >= 2 ships scipy-openblas), or ''."""
    libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
    try:
        names = os.listdir(libdir)
    except OSError:
        return ""
    for name in names:
        if "openblas" in name:
            lib = ctypes.CDLL(os.path.join(libdir, name))
            for sym in ("scipy_openblas_get_corename64_", "openblas_get_corename64_", "openblas_get_corename"):
                if hasattr(lib, sym):
                    getattr(lib, sym).restype = ctypes.c_char_p
                    return getattr(lib, sym)().decode()
    return ""


def square_operands(n):
    rng = np.random.default_rng(n)
    return (rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32),
            np.zeros((n, n), dtype=np.float32))


def numpy_worker(clock, threads):
    """Child process: answers each size read on stdin with NumPy/OpenBLAS GFLOP/s (JSON lines)."""
    print(json.dumps({"core": openblas_core()}), flush=True)
    for line in sys.stdin:
        n = int(line)
        a, b, c = square_operands(n)
        print(json.dumps({"gflops": best_gflops(lambda: np.matmul(a, b, out=c), n, clock, threads)}), flush=True)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(tmp, cc):
    lib = os.path.join(tmp, "libgraphc_sgemm.so")
    subprocess.run([cc, "-O3", "-march=native", "-fopenmp", "-fPIC", "-shared", "-I", KERNELS,
                    os.path.join(KERNELS, "sgemm.c"), os.path.join(KERNELS, "sgemm_ref.c"), "-lm", "-o", lib],
                   check=True)
    peak = os.path.join(tmp, "peak")
    with open(peak + ".c", "w") as f:
        f.write(PEAK_C)
    subprocess.run([cc, "-O2", "-march=native", "-fopenmp", peak + ".c", "-o", peak], check=True)
    return lib, peak


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--rounds", type=int, default=3, help="alternate graphc/NumPy this many times; keep the best")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall time, or process CPU time / threads (steadier on a busy machine)")
    ap.add_argument("--numpy-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.numpy_worker:
        numpy_worker(args.clock, args.threads)
        return

    threads = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = threads  # before libgomp loads with our library
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    tmp = tempfile.mkdtemp(prefix="graphc_sgemm_bench_")
    try:
        lib_path, peak_exe = build(tmp, cc)
        lib = ctypes.CDLL(lib_path)
        measure(args, threads, lib, peak_exe)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def measure(args, threads, lib, peak_exe):
    fp = ctypes.POINTER(ctypes.c_float)
    lib.graphc_sgemm.argtypes = [ctypes.c_int] * 3 + [ctypes.c_float, fp, ctypes.c_int, fp, ctypes.c_int,
                                                      ctypes.c_float, fp, ctypes.c_int, ctypes.POINTER(Scratch)]
    lib.graphc_sgemm.restype = None
    lib.graphc_sgemm_kernel_name.restype = ctypes.c_char_p

    # NumPy in a child without the OpenBLAS overrides; the two sides alternate so a busy moment on
    # the machine hits both, and each keeps its best round.
    env = {k: v for k, v in os.environ.items() if k not in OPENBLAS_OVERRIDES}
    env["OPENBLAS_NUM_THREADS"] = threads
    child = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--numpy-worker", "--clock", args.clock,
                              "--threads", threads], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    core = json.loads(child.stdout.readline())["core"]
    ours, blas = {n: 0.0 for n in args.sizes}, {n: 0.0 for n in args.sizes}
    peak = {"peak_gflops": 0.0}
    for _ in range(args.rounds):
        for n in args.sizes:
            a, b, c = square_operands(n)
            pa, pb, pc = (x.ctypes.data_as(fp) for x in (a, b, c))
            scratch, _keep = scratch_for(lib, n, n, n, args.threads)
            call = lambda: lib.graphc_sgemm(n, n, n, 1.0, pa, n, pb, n, 0.0, pc, n, scratch)  # noqa: E731
            call()
            np.testing.assert_allclose(c, a.astype(np.float64) @ b, rtol=1e-3, atol=1e-3 * np.sqrt(n))
            ours[n] = max(ours[n], best_gflops(call, n, args.clock, args.threads))
            child.stdin.write(f"{n}\n")
            child.stdin.flush()
            blas[n] = max(blas[n], json.loads(child.stdout.readline())["gflops"])
        run = subprocess.run([peak_exe], check=True, capture_output=True, text=True)
        peak = max(peak, json.loads(run.stdout), key=lambda p: p["peak_gflops"])
    child.stdin.close()
    child.wait()

    print(f"# SGEMM, square row-major, {threads} threads, {cpu_name()}, {args.clock} clock")
    print(f"graphc micro-kernel: {lib.graphc_sgemm_kernel_name().decode()}; "
          f"OpenBLAS kernel: {core or 'unknown'}; "
          f"FMA peak ({peak['bits']}-bit, {threads} threads): {peak['peak_gflops']:.0f} GFLOP/s")
    print("| n | graphc GFLOP/s | OpenBLAS GFLOP/s | graphc / OpenBLAS | graphc / peak |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        g, o = ours[n], blas[n]
        print(f"| {n} | {g:.1f} | {o:.1f} | {g / o:.2f} | {g / peak['peak_gflops']:.2f} |")


if __name__ == "__main__":
    main()
