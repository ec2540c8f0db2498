"""Whether the two CPUs the benchmarks use share a cache right now: a cache-line ping-pong between two threads.

On the VMs these benchmarks ran on, the hypervisor sometimes runs the two vCPUs on cores that do not share an
L3 (two CCDs of the EPYC). A cache line that one thread writes and the other reads then takes 310-630 ns to
travel instead of 60-230 ns (several levels seen: 60-70, about 145 and about 225 ns, all with graphc at full
speed; 27 ns when the vCPUs are the two hardware threads of one core). A two-thread FMA loop does not notice; a program whose threads hand data to each
other does: graphc's MLP training step took 2.4-2.9 ms in that state against 1.2 ms otherwise (and 2.0 ms on
one thread), switching back and forth every few minutes. The benchmark scripts probe before each worker
process starts and after each model's timings, report what they saw, and with --wait-shared-cache wait for
the shared state before timing, so that every peer is timed on the same machine.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

SHARED_NS = 280  # round trips at or below this: the two threads' cores are near (see above)

SOURCE = r"""
/* Two threads pass one cache line back and forth n times; prints the mean round trip in ns. */
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static _Alignas(64) atomic_long turn;

int main(int argc, char **argv)
{
    const long n = argc > 1 ? atol(argv[1]) : 50000;
    double t0 = 0, t1 = 0;
    int team = 0;
#pragma omp parallel num_threads(2)
    {
        const long me = omp_get_thread_num();
#pragma omp single
        team = omp_get_num_threads();
        if (team == 2) {
#pragma omp barrier
            if (me == 0) t0 = now();
            for (long i = 0; i < n; i++) {
                while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + me) __builtin_ia32_pause();
                atomic_store_explicit(&turn, 2 * i + me + 1, memory_order_release);
            }
#pragma omp barrier
            if (me == 0) t1 = now();
        }
    }
    if (team != 2) return 1;
    printf("%.1f\n", (t1 - t0) / n * 1e9);
    return 0;
}
"""


def build(directory: Path) -> Path | None:
    """Compiles the probe into `directory`; None where it cannot (no C compiler with OpenMP, not x86)."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if not cc or cpus < 2:  # on one CPU every hand-over would wait for a time slice
        return None
    src, exe = directory / "core_pair.c", directory / "core_pair"
    src.write_text(SOURCE)
    try:
        subprocess.run([cc, "-O2", "-std=gnu11", "-fopenmp", str(src), "-o", str(exe)], check=True,
                       capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    ns = round_trip_ns(exe)
    return exe if ns == ns else None  # nan: it does not run here (one CPU, ...)


def round_trip_ns(exe) -> float:
    """The least of three probes' mean round trips (ns); nan if the probe fails."""
    probes = []
    for _ in range(3):
        try:
            out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=10,
                                 env={**os.environ, "OMP_NUM_THREADS": "2", "OMP_PROC_BIND": "false"})
            ns = float(out.stdout) if out.returncode == 0 else float("nan")
        except (OSError, ValueError, subprocess.SubprocessError):
            ns = float("nan")
        if ns == ns:
            probes.append(ns)
    return min(probes, default=float("nan"))


def wait_shared(exe, limit_s: float, poll_s: float = 2.0) -> tuple[float, float]:
    """Probes until the round trip is at most SHARED_NS or `limit_s` have passed; (last round trip, seconds
    waited)."""
    start = time.perf_counter()
    while True:
        ns = round_trip_ns(exe)
        waited = time.perf_counter() - start
        if not ns > SHARED_NS or waited >= limit_s:  # nan: no probe, no wait
            return ns, waited
        time.sleep(poll_s)


# --- what the benchmark scripts use ----------------------------------------------------------------------
CONFIG = "core_pair.json"


def configure(data_dir: Path, wait_s: float) -> str | None:
    """In the main process: builds the probe into the work directory and leaves the workers its path and the
    wait; returns why there is no probe, or None."""
    exe = build(data_dir)
    (data_dir / CONFIG).write_text(json.dumps({"exe": str(exe) if exe else None, "wait_s": wait_s}))
    return None if exe else "no core-pair probe (it needs a C compiler with OpenMP and two CPUs)"


def _config(data_dir: Path) -> dict:
    path = data_dir / CONFIG
    return json.loads(path.read_text()) if path.exists() else {"exe": None}


BEFORE = "GRAPHC_BENCH_CORE_PAIR_NS"  # the main process's probe, for a worker's first model


def before_worker(data_dir: Path) -> dict:
    """In the main process, before starting a worker: waits for the shared state (as configured) and returns
    the environment that hands the worker the last probe. (A probe inside the worker just before its first
    model coincided with slow first calls of graphc there, the cached load; see RESULTS.md.)"""
    config = _config(data_dir)
    if not config["exe"]:
        return {}
    ns, waited = wait_shared(config["exe"], config["wait_s"])
    return {BEFORE: json.dumps([ns, waited])}


_last = {}  # in a worker: the probe after its last model ("after")


def around(data_dir: Path, timed):
    """In a worker: runs timed() -> dict and adds the round trips before and after it ("core_pair_ns") and the
    wait for the shared state ("core_pair_wait_s") to that dict. Before the first model, the main process
    probed (before_worker); before the others, the probe after the model before counts, unless it found the
    CPUs apart and a wait is configured: then the worker waits here."""
    config = _config(data_dir)
    if not config["exe"]:
        return timed()
    if "after" in _last:
        before, waited = _last["after"], 0.0
        if before > SHARED_NS and config["wait_s"] > 0:
            before, waited = wait_shared(config["exe"], config["wait_s"])
    else:
        before, waited = json.loads(os.environ.get(BEFORE, "[NaN, 0]"))
    res = timed()
    _last["after"] = round_trip_ns(config["exe"])
    if res.get("status") == "ok":
        res.update(core_pair_ns=[before, _last["after"]], core_pair_wait_s=waited)
    return res


def rounds_of(result: dict) -> list:
    """A model's probes ([before, after] per round it was timed in)."""
    return result.get("core_pair_rounds") or ([result["core_pair_ns"]] if "core_pair_ns" in result else [])


def merge(kept: dict, new: dict):
    """Keeps every round's probes of a model (--rounds), in `kept`, whichever round its figures come from."""
    if new is not kept and "core_pair_ns" in new:
        kept["core_pair_rounds"] = rounds_of(kept) + [new["core_pair_ns"]]


def summary(peers: dict, titles: dict) -> str | None:
    """One line for the report: per peer, the round trips seen around its timings, and how many of them ended
    with the CPUs apart."""
    parts = []
    for p, r in peers.items():
        probes = [probe for group in ("models", "epoch") for m in r.get(group, {}).values()
                  for probe in rounds_of(m)]
        if not probes:
            continue
        values = [ns for probe in probes for ns in probe if ns == ns]
        if not values:
            continue
        apart = sum(1 for probe in probes if any(ns > SHARED_NS for ns in probe))
        parts.append(f"{titles[p]} {min(values):.0f}-{max(values):.0f}"
                     + (f" ({apart} of {len(probes)} timings began or ended apart)" if apart else ""))
    if not parts:
        return None
    return ("Cache-line round trip between the two threads' CPUs before and after each timing, ns (at most "
            f"{SHARED_NS}: near; more: they sit apart, on chips that share no cache, and data one thread hands "
            "the other crosses the fabric, which slows a two-thread program that does so; see "
            "benchmarks/core_pair.py): "
            + ", ".join(parts) + ".")
