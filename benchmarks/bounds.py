"""Lower bounds on batch-1 latency set by how fast a core reads weights, against PyTorch eager / 5.

    python benchmarks/bounds.py                      # measures the read rates, times eager if torch is here
    python benchmarks/bounds.py --eager-ms lstm784=2.52,lstm28=0.219,mlp=0.0757

At batch 1 a Dense layer or a recurrent step multiplies one row by its weights: each weight is read once
and used in one multiply-add, so the call cannot finish before its weights have streamed through the
cores. The script measures that stream (a matrix-vector product over packed panels, compiled with
`-O3 -march=native -fopenmp`, both threads at once, each on its own panel) for panels that live in L1,
in L2 and beyond, and divides each model's bytes by it:

- lstm784 / lstm28: every step after the first reads the whole recurrent kernel (units x 4 units floats),
  shared between the two cores; steps are sequential, so no step can start before the one before ends.
- mlp: every call reads all its weights once (a core's half exceeds its L2 on the machines seen so far).

Two bounds per model, each the bytes over the rate measured for them:
- streaming: all the bytes at the rate of the level they live in (what a kernel that streams them takes);
- strict: only the bytes that cannot be in a faster level. A step of an LSTM reads its core's 128 KB share of
  the recurrent kernel, of which L1 can hold at most its size (counted free); the rest crosses from L2 at the
  L2 rate, and steps run one after another. The MLP's bytes beyond L2 come from further out, the rest from
  L2 (less L1).
Where the strict bound exceeds PyTorch eager's latency / 5, the forward-codegen issue's "5x below PyTorch
eager at batch 1" cannot be met on this machine with float32 weights, whatever the kernels do: thread
hand-overs, the gates, the Python call and the other layers only add to it.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import run as R  # noqa: E402  (first: sets the thread variables before numpy loads)

import models as M  # noqa: E402

SOURCE = r"""
/* Each of `threads` threads streams its own packed panels of `bytes` (64 columns of K <= 128 rows each)
 * through a matrix-vector product `reps` times; prints the bytes per second one thread reads, the slowest
 * thread's. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>

typedef float v8 __attribute__((vector_size(32)));

static void matvec(long panels, int K, const float *a, const float *B, float *y)
{
    for (long p = 0; p < panels; p++, y += 64) {
        v8 c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0}, c4 = {0}, c5 = {0}, c6 = {0}, c7 = {0};
        for (int k = 0; k < K; k++, B += 64) {
            const v8 *b = (const v8 *)B;
            const float s = a[k];
            c0 += s * b[0], c1 += s * b[1], c2 += s * b[2], c3 += s * b[3];
            c4 += s * b[4], c5 += s * b[5], c6 += s * b[6], c7 += s * b[7];
        }
        v8 *o = (v8 *)y;
        o[0] = c0, o[1] = c1, o[2] = c2, o[3] = c3, o[4] = c4, o[5] = c5, o[6] = c6, o[7] = c7;
    }
}

int main(int argc, char **argv)
{
    const long bytes = atol(argv[1]), reps = atol(argv[2]);
    const int threads = atoi(argv[3]), K = bytes < 128 * 256 ? (int)(bytes / 256) : 128;
    const long panels = bytes / ((long)K * 256);
    double slowest = 0;
#pragma omp parallel num_threads(threads) reduction(max : slowest)
    {
        float *B = aligned_alloc(64, panels * K * 64 * 4), *a = aligned_alloc(64, K * 4);
        float *y = aligned_alloc(64, panels * 64 * 4);
        for (long i = 0; i < panels * K * 64; i++) B[i] = (float)(i % 7) * 0.125f;
        for (int k = 0; k < K; k++) a[k] = 1.0f / (k + 1);
        for (int w = 0; w < 20; w++) matvec(panels, K, a, B, y);
#pragma omp barrier
        double t = omp_get_wtime();
        for (long r = 0; r < reps; r++) {
            matvec(panels, K, a, B, y);
            a[r % K] = y[r % 64] * 1e-9f; /* the next product depends on this one */
        }
        slowest = omp_get_wtime() - t;
        free(B), free(a), free(y);
    }
    printf("%.6g\n", (double)panels * K * 64 * 4 * reps / slowest);
    return 0;
}
"""

# bytes one thread streams: within L1; in L2, a core's half of an LSTM(128)'s recurrent kernel (128 KB); a
# core's half of the MLP's weights (about 1.1 MB, L2's size); far beyond L2
LEVELS = {"L1": 16 << 10, "L2": 128 << 10, "MLP share": 1088 << 10, "beyond L2": 8 << 20}


def cache_bytes(index: int, default: int) -> int:
    """The data cache size of cpu0's cache `index` (0: L1d, 2: L2) from sysfs, else `default`."""
    try:
        text = Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip()
        return int(text[:-1]) << {"K": 10, "M": 20}[text[-1]] if text[-1] in "KM" else int(text)
    except (OSError, ValueError):
        return default


def build(directory: Path) -> Path:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bounds.py needs a C compiler (cc, gcc or $CC)")
    src, exe = directory / "stream.c", directory / "stream"
    src.write_text(SOURCE)
    subprocess.run([cc, "-O3", "-march=native", "-ffp-contract=fast", "-fopenmp", "-std=gnu11", str(src), "-o",
                    str(exe)], check=True, timeout=60)
    return exe


def read_rate(exe: Path, nbytes: int, threads: int, rounds: int) -> float:
    """Bytes per second one thread reads (slowest thread), best of `rounds` runs of about 0.2 s each."""
    reps = max(50, int(0.2 * 50e9 / nbytes))  # about 0.2 s at 50 GB/s
    best = 0.0
    for _ in range(rounds):
        out = subprocess.run([str(exe), str(nbytes), str(reps), str(threads)], capture_output=True, text=True,
                             check=True, timeout=120, env={**os.environ, "OMP_PROC_BIND": "false"})
        best = max(best, float(out.stdout))
    return best


def streamed_bytes(key: str) -> tuple[int, int]:
    """(bytes each step reads, steps) of a batch-1 call: the recurrent kernel per step for the LSTMs (the
    first step's product with the zero state is skipped), all the weights once for the MLP."""
    if key == "mlp":
        return 4 * (784 * 512 + 512 + 512 * 216 + 216 + 216 * 128 + 128 + 128 * 10 + 10), 1
    units, steps = 128, {"lstm784": 784, "lstm28": 28}[key]
    return 4 * units * 4 * units, steps - 1


def eager_latency_ms(keys) -> dict:
    """PyTorch eager's batch-1 latency (median ms) on the benchmark models, timed as run.py times it: in a
    process of its own that loads the weights, never graphc (with graphc's models built in the same process,
    eager's lstm784 took 5.5-6.0 ms against 2.5 ms in run.py's worker)."""
    import graphc
    with tempfile.TemporaryDirectory() as tmp:
        for key in keys:
            R.save_arrays(Path(tmp) / f"{key}.npz", M.random_weights(M.build(key, graphc), R.SEED))
        out = subprocess.run([sys.executable, __file__, "--eager-worker", tmp, ",".join(keys)], check=True,
                             capture_output=True, text=True, timeout=600)
    return parse_ms(out.stdout.strip().splitlines()[-1])


def eager_worker(directory: str, keys: str):
    peer = R.TorchPeer()
    times = {}
    for key in keys.split(","):
        peer.load(key, R.load_arrays(Path(directory) / f"{key}.npz")[1])
        x = peer.convert(key, M.random_input(key, 1, R.SEED + 1))
        times[key] = R.measure(lambda: peer.call(x), *R.BUDGETS[False]["latency"])[0] * 1e3
    print(",".join(f"{k}={v:.6g}" for k, v in times.items()))


def parse_ms(text: str) -> dict:
    pairs = (item.split("=") for item in text.split(",") if item)
    return {k.strip(): float(v) for k, v in pairs}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eager-ms", default=None, help="PyTorch eager's batch-1 ms per model instead of timing "
                    "it, e.g. lstm784=2.52,mlp=0.0757")
    ap.add_argument("--rounds", type=int, default=5, help="runs per read rate, best kept (default 5)")
    ap.add_argument("--eager-worker", nargs=2, help=argparse.SUPPRESS)  # (the child that times eager)
    args = ap.parse_args(argv)
    if args.eager_worker:
        return eager_worker(*args.eager_worker)
    keys = ("mlp", "lstm28", "lstm784")

    with tempfile.TemporaryDirectory() as tmp:
        exe = build(Path(tmp))
        rates = {name: read_rate(exe, n, R.THREADS, args.rounds) for name, n in LEVELS.items()}
    print(f"Read rate per core, {R.THREADS} threads at once (best of {args.rounds}):")
    for name, n in LEVELS.items():
        print(f"  {name:<11} ({n >> 10:>5} KB per thread): {rates[name] / 1e9:6.1f} GB/s")

    if args.eager_ms:
        eager, source = parse_ms(args.eager_ms), "given"
    elif importlib.util.find_spec("torch") is None:
        eager, source = {}, "torch not installed: pass --eager-ms"
    else:
        eager, source = eager_latency_ms(keys), "timed now, in a process of its own"
    print(f"\nPyTorch eager: {source}\n")
    l1, l2 = cache_bytes(0, 32 << 10), cache_bytes(2, 1 << 20)
    print(f"L1d {l1 >> 10} KB, L2 {l2 >> 10} KB per core (sysfs)\n")
    print("| model | bytes a core reads per step x steps | streaming bound (ms) | strict bound (ms) "
          "| PyTorch eager (ms) | eager / 5 (ms) | 5x below eager possible |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for key in keys:
        per_step, steps = streamed_bytes(key)
        share = per_step / R.THREADS
        if key == "mlp":  # each call streams the core's share: from L2, and what L2 cannot hold from beyond
            stream = share / rates["MLP share"]
            strict = (max(0.0, share - l2) / rates["beyond L2"] +
                      max(0.0, min(share, l2) - l1) / rates["L2"])
        else:  # every step streams the core's share through L1, which holds only l1 bytes of it
            stream = share / rates["L2"]
            strict = max(0.0, share - l1) / rates["L2"]
        stream, strict = stream * steps * 1e3, strict * steps * 1e3
        e = eager.get(key)
        budget = e / 5 if e else None
        verdict = "-" if budget is None else "no" if strict > budget else "not ruled out by this bound"
        cells = [key, f"{share / 1024:,.0f} KB x {steps}", f"{stream:.4f}", f"{strict:.4f}",
                 f"{e:.4f}" if e else "-", f"{budget:.4f}" if budget else "-", verdict]
        print("| " + " | ".join(cells) + " |")
    print(f"\n(measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
