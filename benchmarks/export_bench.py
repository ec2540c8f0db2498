"""Exported C packages: library sizes and workspaces of every seed model, and batch-1 latency of the C
example program against model.predict and ONNX Runtime on the five benchmark models.

    python benchmarks/export_bench.py                     # about 5 minutes on 2 cores
    python benchmarks/export_bench.py --quick --peers graphc
    python benchmarks/export_bench.py --results-md benchmarks/RESULTS.md

Sizes: each seed model is exported with weights="file" and built with CMake (Release, -march=native,
OpenMP); "code" is the shared library (no weights inside), "code, stripped" the same after
`strip --strip-unneeded`, "weights" the .weights file. "workspace" is <name>_workspace_size(1) as the
library reports it (intermediates plus kernel scratch for MAX_THREADS=8 threads), against the arena of the
memory plan and the peak of intermediates alive at once. Latency: example_main's own timing of
<name>_predict (median of many calls after the first; 2 OpenMP threads), model.predict_on_batch's
median from benchmarks/run.py's graphc worker, and ONNX Runtime's from its worker, on the same weights
and input (the C output is checked against graphc's, atol 1e-4).
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

import run as R  # noqa: E402  (sets the thread environment first)

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "examples"))
PEERS = ("graphc", "onnxruntime")
SECTION = "## Exported C packages: sizes, workspaces, batch-1 latency"


def cmake_build(source: Path, build: Path):
    cmake = shutil.which("cmake")
    if cmake is None:
        raise SystemExit("cmake is needed to build the exported packages")
    subprocess.run([cmake, "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"], check=True,
                   capture_output=True, text=True)
    subprocess.run([cmake, "--build", str(build), "--parallel", str(os.cpu_count() or 2)], check=True,
                   capture_output=True, text=True)


def superproject(root: Path, packages) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "CMakeLists.txt").write_text("cmake_minimum_required(VERSION 3.13)\nproject(exports C)\n" + "".join(
        f'add_subdirectory("{p}" "{p.name}")\n' for p in packages))
    return root


def stripped_size(path: Path) -> int:
    strip = shutil.which("strip")
    if strip is None:
        return -1
    copy = path.with_suffix(".stripped")
    shutil.copyfile(path, copy)
    subprocess.run([strip, "--strip-unneeded", str(copy)], check=True)
    return copy.stat().st_size


def seed_sizes(work: Path) -> dict:
    import graphc
    import seed_models
    from graphc.export import export_package
    packages, exports = [], {}
    for name, build in seed_models.SEED_MODELS.items():
        model = build()
        seq = seed_models.SEQ_LEN.get(name, 12)
        shapes = [tuple(seq if d is None else d for d in t.shape[1:]) for t in model.inputs]
        variable = any(None in t.shape[1:] for t in model.inputs)
        ex = export_package(model, work / "seeds" / name, name=name, weights="file",
                            input_shapes=shapes if variable else None)
        packages.append(ex.path)
        exports[name] = (model, ex, seq if variable else None)
    cmake_build(superproject(work / "seeds-project", packages), work / "seeds-build")
    rows = {}
    for name, (model, ex, seq) in exports.items():
        lib = work / "seeds-build" / name / f"lib{name}.so"
        workspace = ctypes.CDLL(str(lib))
        fn = getattr(workspace, f"{name}_workspace_size")
        fn.restype, fn.argtypes = ctypes.c_size_t, [ctypes.c_int]
        rows[name] = {"params": model.count_params(), "code_bytes": lib.stat().st_size,
                      "code_stripped_bytes": stripped_size(lib),
                      "weights_bytes": (ex.path / f"{name}.weights").stat().st_size,
                      "workspace_b1": int(fn(1)), "arena_b1": ex.arena_bytes, "peak_live_b1": ex.peak_live_bytes,
                      "seq_len": seq}
        print(f"  {name}: code {rows[name]['code_bytes']} B, weights {rows[name]['weights_bytes']} B, "
              f"workspace {rows[name]['workspace_b1']} B", flush=True)
    return rows


def example_latency(exe: Path, inputs: Path, quick: bool):
    """(median ms, min ms, calls, outputs) from example_main's own timing of predict."""
    def once(repeat):
        out = subprocess.run([str(exe), "--repeat", str(repeat), str(inputs)], check=True, capture_output=True,
                             text=True, env={**os.environ, "OMP_NUM_THREADS": str(R.THREADS)})
        m = re.search(r"latency_ms min ([\d.e+-]+) median ([\d.e+-]+)", out.stderr)
        return float(m.group(2)), float(m.group(1)), out.stdout
    _, fastest, _ = once(5)  # (the first call is a cold one: size the run by the fastest)
    repeat = 20 if quick else int(min(5000, max(200, 3000.0 / max(fastest, 1e-3))))
    median, fastest, stdout = once(repeat)
    values = np.array([[float(v) for v in line.split()] for line in stdout.splitlines()[1:]])
    return median, fastest, repeat, values


def c_latency(keys, data_dir: Path, quick: bool) -> dict:
    import graphc
    import models as M
    packages = {}
    for key in keys:
        x, y1, _, weights = R.load_case(data_dir / f"{key}.npz")
        model = M.build(key, graphc, weights)
        packages[key] = (graphc.export_c(model, data_dir / "bench" / f"{key}_c", name=f"{key}_c"), x[:1], y1)
    cmake_build(superproject(data_dir / "bench-project", [p for p, _, _ in packages.values()]),
                data_dir / "bench-build")
    out = {}
    for key, (pkg, x1, y1) in packages.items():
        inputs = data_dir / f"{key}_x1.bin"
        inputs.write_bytes(np.ascontiguousarray(x1, dtype="<f4").tobytes())
        exe = data_dir / "bench-build" / pkg.name / "example_main"
        median, fastest, calls, values = example_latency(exe, inputs, quick)
        diff = float(np.max(np.abs(values.reshape(-1) - np.asarray(y1, np.float64).reshape(-1))))
        out[key] = {"latency_ms": median, "latency_min_ms": fastest, "calls": calls, "diff_b1": diff,
                    "status": "ok" if diff <= R.ATOL else "mismatch"}
        print(f"  C example {key}: {median:.4f} ms (min {fastest:.4f}, {calls} calls), |C - graphc| {diff:.1e}",
              flush=True)
    return out


def run_all(keys, peers, quick, data_dir: Path, retries: int = 0, rounds: int = 1) -> dict:
    report = R.run_all(keys, peers, quick, data_dir, retries, rounds)
    print("C example programs:", flush=True)
    report["c_example"] = c_latency(keys, data_dir, quick)
    print("seed model packages:", flush=True)
    report["seed_sizes"] = seed_sizes(data_dir)
    return report


def _kb(n):
    return f"{n / 1024:,.1f}"


def render(report) -> str:
    lines = [f"Run {report['started']} on {report['machine']}, {R.THREADS} threads"
             + (" (quick run: few repetitions)" if report["quick"] else "") + ".", ""]
    peers = report["peers"]
    rows = []
    for key in report["keys"]:
        c = report["c_example"][key]
        py = peers.get("graphc", {}).get("models", {}).get(key, {})
        ort = peers.get("onnxruntime", {}).get("models", {}).get(key, {})
        cell = (lambda r: R.fmt(r["latency_ms"], 4) if r.get("status") == "ok" else r.get("status", "-"))
        ratio = (lambda r: R.fmt(r["latency_ms"] / c["latency_ms"], 2) + "x"
                 if r.get("status") == "ok" and c["status"] == "ok" else "-")
        rows.append([key, cell(c), cell(py), ratio(py), cell(ort), ratio(ort)])
    lines += ["Batch-1 latency (ms, median); a ratio above 1 means the C example is faster:", "",
              R.table(["model", "C example_main", "model.predict_on_batch", "predict / C", "ONNX Runtime",
                       "ORT / C"], rows), ""]
    rows = []
    for name, r in report["seed_sizes"].items():
        one_thread = r["arena_b1"] + (r["workspace_b1"] - r["arena_b1"]) // 8  # arena + one thread's scratch
        rows.append([name + (f" (T={r['seq_len']})" if r["seq_len"] else ""), f"{r['params']:,}", _kb(r["code_bytes"]),
                     _kb(r["code_stripped_bytes"]) if r["code_stripped_bytes"] >= 0 else "-", _kb(r["weights_bytes"]),
                     _kb(r["workspace_b1"]), _kb(one_thread), _kb(r["arena_b1"]), _kb(r["peak_live_b1"])])
    lines += ["Seed model packages (KiB; batch 1): shared library without weights, weights file, workspace "
              "(intermediates + kernel scratch for the default max_threads=8, and for max_threads=1) against the "
              "planned arena of intermediates and the peak of intermediates alive at once:", "",
              R.table(["model", "params", "code", "code, stripped", "weights", "workspace (8 threads)",
                       "workspace (1 thread)", "arena", "peak live"], rows)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    R.common_arguments(ap, peers=PEERS)
    return R.bench_main(ap, argv, "benchmarks/export_bench.py", R.worker, run_all, render, peers=PEERS,
                        section=SECTION, prefix="graphc-export-bench-")


if __name__ == "__main__":
    sys.exit(main())
