"""Inference benchmark: graphc against PyTorch, torch.compile, Keras and ONNX Runtime, 2 threads each.

    python benchmarks/run.py            # full run (about 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # smoke run: every model and peer, few repetitions
    python benchmarks/run.py --models mlp,cnn --peers graphc,torch --json out.json

The main process builds the five models of shared/BENCHMARK_MODELS.md in graphc with random weights,
compiles them in an empty graphc cache (timing the first compile), and saves weights, inputs and
graphc's outputs. Each peer then runs in a process of its own (a framework's idle OpenMP threads
never compete with another's, and Keras's torch backend gets KERAS_BACKEND=torch): it loads the same
weights, checks its output against graphc's on the same input (atol 1e-4, batch 1 and 128) and only
then times latency at batch 1 (median of many calls after a warm-up) and throughput at batch 128.
"""
from __future__ import annotations

import os

THREADS = 2
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
    os.environ[_var] = str(THREADS)  # before numpy (OpenBLAS) or any framework reads them
os.environ["TF_NUM_INTEROP_THREADS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # models.py; graphc from this checkout if not installed
import core_pair as C  # noqa: E402
import models as M  # noqa: E402

ATOL = 1e-4
BUSY = 0.05  # share of the CPUs used by other processes above which a peer's timings are suspect
BATCH = 128
SEED = 2024
PEERS = ("graphc", "torch", "torch.compile", "keras-tf", "keras-torch", "onnxruntime")
TITLES = {"graphc": "graphc", "torch": "PyTorch eager", "torch.compile": "torch.compile",
          "keras-tf": "Keras (TF)", "keras-torch": "Keras (torch)", "onnxruntime": "ONNX Runtime"}
# (warm-up runs, seconds measured, least runs) per case
BUDGETS = {False: {"latency": (10, 3.0, 20), "throughput": (3, 4.0, 5)},
           True: {"latency": (2, 0.2, 3), "throughput": (1, 0.2, 2)}}


# --- timing ----------------------------------------------------------------------------------------------
def measure(fn, warmup: int, seconds: float, least: int, most: int = 20000):
    """Median and least wall time of one call (s), and the number of timed calls; GC paused while timing.

    `warmup` calls first (fewer when they take over seconds/2: one slow call warms up as well as ten),
    then calls for `seconds`, at least `least` of them unless that takes over 5 × seconds (then 3)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
        if time.perf_counter() - start > seconds / 2:
            break
    gc.collect()
    gc.disable()
    try:
        times, start = [], time.perf_counter()
        while True:
            t0 = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            times.append(t1 - t0)
            n, elapsed = len(times), t1 - start
            if n >= most or elapsed >= seconds and (n >= least or n >= 3 and elapsed >= 5 * seconds):
                break
    finally:
        gc.enable()
    return statistics.median(times), min(times), len(times)


def max_diff(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    d = float(np.max(np.abs(a - b))) if a.size else 0.0
    return d if np.isfinite(d) else float("inf")


# --- the peers (each used only inside its own worker process) -------------------------------------------
class GraphcPeer:
    def __init__(self):
        import graphc
        self.graphc = graphc
        graphc.set_num_threads(THREADS)
        self.version = _graphc_version()

    def load(self, key, weights):
        self.model = M.build(key, self.graphc, weights)

    def convert(self, key, x):
        return x

    def call(self, x):
        return self.model.predict_on_batch(x)

    def info(self):
        programs = [p for p in getattr(self.model, "_programs", {}).values() if p is not None]
        # a cache miss here means graphc's sources changed since the main process compiled the model
        return {"backend": backend_of(self.model), "rebuilt": any(p.module.built for p in programs)}


class TorchPeer:
    compiled = False

    def __init__(self):
        import torch
        self.torch = torch
        torch.set_num_threads(THREADS)
        self._no_autograd = torch.inference_mode()  # held for the whole worker: no autograd in any call
        self._no_autograd.__enter__()
        self.version = f"torch {torch.__version__}"

    def load(self, key, weights):
        self.module = M.torch_model(key, weights)
        if self.compiled:
            self.torch._dynamo.reset()
            self.torch._dynamo.utils.counters.clear()
            # inductor (the default backend); static shapes: each batch size gets its own specialised
            # kernels, torch.compile's fastest setting (the compile time for batch 128 is reported apart)
            self.module = self.torch.compile(self.module, dynamic=False)

    def convert(self, key, x):
        return M.torch_input(key, x)

    def call(self, x):
        return self.module(x)

    def info(self):
        if not self.compiled:
            return {}
        counters = self.torch._dynamo.utils.counters
        graphs = counters["stats"].get("unique_graphs", 0)
        breaks = sorted({reason.split("\n")[0] for reason in list(counters["unimplemented"])
                         + list(counters["graph_break"])})
        note = f"{graphs} compiled graph(s)" + (f"; graph break: {'; '.join(breaks)}" if breaks else "")
        return {"note": note}


class TorchCompilePeer(TorchPeer):
    compiled = True


class KerasPeer:
    def __init__(self):
        backend = os.environ.get("KERAS_BACKEND", "tensorflow")
        if backend == "tensorflow":
            import tensorflow as tf
            tf.config.threading.set_intra_op_parallelism_threads(THREADS)
            tf.config.threading.set_inter_op_parallelism_threads(1)
            extra = f"tensorflow {tf.__version__}"
        else:
            import torch
            torch.set_num_threads(THREADS)
            extra = f"torch {torch.__version__}"
        import keras
        self.keras = keras
        self.version = f"keras {keras.__version__} on {extra}"

    def load(self, key, weights):
        self.model = M.build(key, self.keras, weights)

    def convert(self, key, x):
        return x

    def call(self, x):
        return self.model.predict_on_batch(x)

    def info(self):
        return {}


class OnnxRuntimePeer:
    def __init__(self, data_dir):
        import onnxruntime as ort
        self.ort, self.data_dir = ort, data_dir
        self.version = f"onnxruntime {ort.__version__}"

    def load(self, key, weights):
        options = self.ort.SessionOptions()
        options.intra_op_num_threads = THREADS
        options.inter_op_num_threads = 1
        options.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = self.ort.InferenceSession(str(self.data_dir / f"{key}.onnx"), options,
                                                 providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def convert(self, key, x):
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if key in M.IMAGE_MODELS else x)

    def call(self, x):
        return self.session.run(None, {self.input_name: x})[0]

    def info(self):
        return {}


def backend_of(model) -> str:
    programs = list(getattr(model, "_programs", {}).values())
    if programs and all(p is not None for p in programs):
        return "C"
    return "NumPy reference"


def _graphc_version() -> str:
    try:
        head = subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(HERE.parent), "status", "--porcelain", "--", "graphc", "kernels"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "graphc (version unknown)"
    return f"graphc {head}" + (" + uncommitted changes to graphc/kernels" if dirty else "")


# --- data shared between the main process and the workers -----------------------------------------------
def save_arrays(path: Path, weights, **arrays):
    """`arrays` and the weights ({layer: [arrays]}) in one .npz file."""
    for layer, ws in weights.items():
        arrays.update({f"w:{layer}:{i}": w for i, w in enumerate(ws)})
    np.savez(path, **arrays)


def load_arrays(path: Path):
    """({name: array} of the other arrays, weights) from a file save_arrays wrote."""
    data = np.load(path)
    weights, arrays = {}, {}
    for name in data.files:
        if name.startswith("w:"):
            _, layer, i = name.split(":")
            weights.setdefault(layer, {})[int(i)] = data[name]
        else:
            arrays[name] = data[name]
    return arrays, {layer: [ws[i] for i in sorted(ws)] for layer, ws in weights.items()}


def save_case(path: Path, x, y1, y128, weights):
    save_arrays(path, weights, x=x, y1=y1, y128=y128)


def load_case(path: Path):
    arrays, weights = load_arrays(path)
    return arrays["x"], arrays["y1"], arrays["y128"], weights


# --- a worker: one peer, some models ---------------------------------------------------------------------
def worker(peer_name: str, data_dir: Path, keys, quick: bool) -> dict:
    if peer_name == "onnx-export":
        return onnx_export_worker(data_dir, keys)
    peer = {"graphc": GraphcPeer, "torch": TorchPeer, "torch.compile": TorchCompilePeer,
            "keras-tf": KerasPeer, "keras-torch": KerasPeer,
            "onnxruntime": lambda: OnnxRuntimePeer(data_dir)}[peer_name]()
    out = {"peer": peer_name, "version": peer.version, "models": {}}
    for key in keys:
        try:
            out["models"][key] = C.around(data_dir, lambda: run_model(peer, key, data_dir, quick))
        except Exception as e:  # one model's failure (an unsupported op, ...) must not hide the others
            out["models"][key] = {"status": "error", "reason": f"{type(e).__name__}: {gist(e)}"}
        print(f"  {peer_name} {key}: {summary_line(out['models'][key])}", flush=True)
    return out


def run_model(peer, key, data_dir, quick) -> dict:
    x, y1, y128, weights = load_case(data_dir / f"{key}.npz")
    peer.load(key, weights)
    in1, in128 = peer.convert(key, x[:1]), peer.convert(key, x)
    t0 = time.perf_counter()
    out1 = np.asarray(peer.call(in1))
    t1 = time.perf_counter()
    out128 = np.asarray(peer.call(in128))
    t2 = time.perf_counter()
    res = {"first_call_b1_s": t1 - t0, "first_call_b128_s": t2 - t1,
           "diff_b1": max_diff(out1, y1), "diff_b128": max_diff(out128, y128), **peer.info()}
    if max(res["diff_b1"], res["diff_b128"]) > ATOL:
        worst = max(res["diff_b1"], res["diff_b128"])
        res.update(status="mismatch", reason=f"output differs from graphc's: max |diff| {worst:.2e} > {ATOL:g}")
        return res
    budgets = BUDGETS[quick]
    latency, fastest, runs1 = measure(lambda: peer.call(in1), *budgets["latency"])
    per_batch, fastest_batch, runs128 = measure(lambda: peer.call(in128), *budgets["throughput"])
    res.update(status="ok", latency_ms=latency * 1e3, latency_min_ms=fastest * 1e3, latency_runs=runs1,
               throughput=BATCH / per_batch, throughput_best=BATCH / fastest_batch, throughput_runs=runs128)
    return res


def onnx_export_worker(data_dir: Path, keys) -> dict:
    """torch.onnx.export (the torch.export-based exporter, dynamic batch); the TorchScript exporter only
    where that one fails, with the reason kept."""
    import torch
    torch.set_num_threads(THREADS)
    out = {"peer": "onnx-export", "version": f"torch {torch.__version__}", "models": {}}
    for key in keys:
        x, _, _, weights = load_case(data_dir / f"{key}.npz")
        module, sample = M.torch_model(key, weights), M.torch_input(key, x[:2])
        path = data_dir / f"{key}.onnx"
        res, t0 = {}, time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(module, (sample,), str(path), dynamo=True, input_names=["x"], output_names=["y"],
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
            res.update(status="ok", exporter="torch.export")
        except Exception as e:
            res["dynamo_error"] = f"{type(e).__name__}: {gist(e)}"
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    torch.onnx.export(module, (sample,), str(path), dynamo=False, input_names=["x"],
                                      output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
                res.update(status="ok", exporter="TorchScript")
            except Exception as e2:
                res.update(status="error", reason=f"ONNX export failed: torch.export: {res['dynamo_error']}; "
                                                  f"TorchScript exporter: {type(e2).__name__}: {gist(e2)}")
        res["export_s"] = time.perf_counter() - t0
        out["models"][key] = res
        print(f"  onnx-export {key}: {res['status']} {res.get('exporter', res.get('reason', ''))}", flush=True)
    return out


def gist(e) -> str:
    """The gist of an exception's message: ANSI colours removed, whitespace folded, cut at 300 chars."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(e)).split())
    return text if len(text) <= 300 else text[:297] + "..."


def summary_line(r) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('reason', '')}"
    return (f"latency {r['latency_ms']:.3f} ms ({r['latency_runs']} runs), "
            f"{r['throughput']:.0f} samples/s ({r['throughput_runs']} runs), "
            f"max |diff| {max(r['diff_b1'], r['diff_b128']):.1e}")


# --- the main process: graphc builds, then the workers ---------------------------------------------------
def prepare(keys, data_dir: Path) -> dict:
    """Builds every model in graphc, compiles it in the (empty) cache and saves the data for the workers."""
    import graphc
    from graphc.runtime import current_toolchain, kernels
    graphc.set_num_threads(THREADS)
    tc = current_toolchain()
    t0 = time.perf_counter()
    kernels.kernel_library(tc)
    info = {"kernels_build_s": time.perf_counter() - t0, "compiler": tc.version, "flags": " ".join(tc.flags),
            "models": {}}
    for key in keys:
        model = M.build(key, graphc)
        weights = M.random_weights(model, SEED)
        model = M.build(key, graphc, weights)
        x = M.random_input(key, BATCH, SEED + 1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            y1 = model.predict_on_batch(x[:1])
            compile_s = time.perf_counter() - t0
        y128 = model.predict_on_batch(x)
        backend = backend_of(model)
        r = {"backend": backend, "params": model.count_params()}
        if backend == "C":
            r["compile_s"] = compile_s
            os.environ["GRAPHC_BACKEND"] = "reference"
            try:
                r["diff_reference"] = max(max_diff(y1, model.predict_on_batch(x[:1])),
                                          max_diff(y128, model.predict_on_batch(x)))
            finally:
                del os.environ["GRAPHC_BACKEND"]
        else:
            r["fallback"] = "; ".join(str(w.message) for w in caught) or "no compiled program"
        if r["params"] != M.PARAMS[key]:
            raise SystemExit(f"{key}: {r['params']} parameters, BENCHMARK_MODELS.md says {M.PARAMS[key]}")
        save_case(data_dir / f"{key}.npz", x, y1, y128, weights)
        info["models"][key] = r
        print(f"  graphc {key}: backend {backend}"
              + (f", first compile {r['compile_s']:.2f} s, C vs NumPy reference {r['diff_reference']:.1e}"
                 if backend == "C" else f" ({r['fallback']})"), flush=True)
    return info


class ForeignLoad:
    """The share of the machine's CPU time that processes other than ours used between start() and
    stop(): /proc/stat's busy time minus our children's CPU time. Other jobs on a 2-core machine make
    2-thread timings unreliable; this says how much there was."""

    def __init__(self):
        self.samples = []

    @staticmethod
    def _read():
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        except (OSError, ValueError):
            return None
        busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle and iowait
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = resource.getrusage(resource.RUSAGE_SELF)
        ticks = os.sysconf("SC_CLK_TCK")
        return time.perf_counter(), busy / ticks, children.ru_utime + children.ru_stime + own.ru_utime + own.ru_stime

    def start(self):
        self._start = self._read()

    def stop(self) -> float:
        end = self._read()
        if self._start is None or end is None or end[0] <= self._start[0]:
            return float("nan")
        wall = end[0] - self._start[0]
        foreign = (end[1] - self._start[1]) - (end[2] - self._start[2])
        share = max(0.0, foreign / (wall * (os.cpu_count() or 1)))
        self.samples.append(share)
        return share


FOREIGN = ForeignLoad()


def spawn(peer, keys, data_dir: Path, quick: bool, env_extra=None, script=None) -> dict:
    """Runs one worker process (`script --worker peer`, this file by default); its own output goes to a
    log that is shown when it fails."""
    tag = peer if len(keys) > 1 else f"{peer}-{keys[0]}"
    result, log = data_dir / f"result-{tag}.json", data_dir / f"log-{tag}.txt"
    cmd = [sys.executable, str(script or Path(__file__).resolve()), "--worker", peer, "--data", str(data_dir),
           "--models", ",".join(keys), "--result", str(result)] + (["--quick"] if quick else [])
    env = {**os.environ, **(env_extra or {}), **(C.before_worker(data_dir) if peer != "onnx-export" else {})}
    FOREIGN.start()
    try:
        with open(log, "w") as f:
            proc = subprocess.run(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, timeout=3600)
        failed = proc.returncode != 0 or not result.exists()
        reason = f"worker exited with code {proc.returncode}"
    except subprocess.TimeoutExpired:
        failed, reason = True, "worker timed out after 3600 s"
    foreign = FOREIGN.stop()
    text = log.read_text(errors="replace")
    print("\n".join(line for line in text.splitlines() if line.startswith(f"  {peer} ")), flush=True)
    if failed:
        tail = "\n".join(text.splitlines()[-15:])
        print(f"  {peer}: {reason}; last lines of its log:\n{tail}", flush=True)
        return {"peer": peer, "version": "?", "models": {k: {"status": "error", "reason": reason} for k in keys}}
    out = json.loads(result.read_text())
    out["foreign_cpu"] = foreign
    return out


def wait_quiet(limit_s: float, threshold=None):
    """Waits (up to limit_s) until other processes use under `threshold` of the CPUs for 5 s running."""
    threshold = BUSY if threshold is None else threshold
    end = time.perf_counter() + limit_s
    while True:
        FOREIGN.start()
        time.sleep(5)
        share = FOREIGN.stop()
        if not share > threshold or time.perf_counter() > end:  # nan (no /proc/stat): do not wait
            print(f"other processes use {share:.0%} of the CPUs" + (", starting anyway" if share > threshold else ""),
                  flush=True)
            return
        print(f"waiting for a quiet machine: other processes use {share:.0%} of the CPUs", flush=True)


def spawn_best(peer, keys, data_dir: Path, quick: bool, retries: int, env_extra=None, script=None) -> dict:
    """spawn(), run again (up to `retries` times, after waiting for a quiet machine) while other
    processes used more than BUSY of the CPUs; keeps the run that saw the least of them."""
    best = None
    for attempt in range(retries + 1):
        env = dict(env_extra or {})
        if attempt:
            print(f"  {peer}: other processes used {best['foreign_cpu']:.0%} of the CPUs; running it again", flush=True)
            wait_quiet(300)
            if "TORCHINDUCTOR_CACHE_DIR" in env:  # a cold inductor cache again, for its compile time
                env["TORCHINDUCTOR_CACHE_DIR"] += f"-{attempt}"
        out = spawn(peer, keys, data_dir, quick, env, script)
        if best is None or out.get("foreign_cpu", 1.0) < best.get("foreign_cpu", 1.0):
            best = out
        if not best.get("foreign_cpu", 0.0) > BUSY:
            break
    return best


# A figure, whether lower is better, and the fields measured with it (kept or replaced together).
ROUND_FIGURES = (("latency_ms", True, ("latency_ms", "latency_min_ms", "latency_runs")),
                 ("throughput", False, ("throughput", "throughput_best", "throughput_runs")),
                 ("step_ms", True, ("step_ms", "step_min_ms", "step_runs")),
                 ("raw_step_ms", True, ("raw_step_ms", "raw_step_min_ms", "raw_step_runs")),
                 ("epoch_s", True, ("epoch_s", "epoch_min_s", "epochs")))


def keep_best(kept: dict, new: dict) -> dict:
    """A peer's results over rounds (--rounds): per model (and per epoch entry), each figure from the round
    where it was best, with the fields measured alongside it; everything else from the first round."""
    for group in ("models", "epoch"):
        for key, n in new.get(group, {}).items():
            k = kept.setdefault(group, {}).setdefault(key, n)
            C.merge(k, n)
            if k is n or n.get("status") != "ok" or k.get("status") != "ok":
                continue
            for figure, lower, fields in ROUND_FIGURES:
                if figure in n and figure in k and (n[figure] < k[figure] if lower else n[figure] > k[figure]):
                    k.update({f: n[f] for f in fields if f in n})
    kept["foreign_cpu"] = max(kept.get("foreign_cpu", 0.0), new.get("foreign_cpu", 0.0))
    return kept


def peer_order(peers, rounds: int):
    """(round, peer) in running order: odd rounds reversed, so a machine that speeds up or slows down
    during the run favours no peer."""
    return [(r, p) for r in range(rounds) for p in (peers if r % 2 == 0 else list(reversed(peers)))]


def peer_env(peer, data_dir: Path):
    """The environment variables a peer's worker gets on top of ours."""
    return {"keras-tf": {"KERAS_BACKEND": "tensorflow"}, "keras-torch": {"KERAS_BACKEND": "torch"},
            # an empty inductor cache, so its compile time compares with graphc's first compile
            "torch.compile": {"TORCHINDUCTOR_CACHE_DIR": str(data_dir / "inductor-cache")}}.get(peer)


def run_all(keys, peers, quick, data_dir: Path, retries: int = 0, rounds: int = 1) -> dict:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"graphc: building and compiling {', '.join(keys)} (empty cache {os.environ['GRAPHC_CACHE_DIR']})",
          flush=True)
    report = {"graphc_build": prepare(keys, data_dir), "peers": {}, "quick": quick, "keys": keys,
              "started": started, "machine": machine(), "rounds": rounds}
    for rnd, peer in peer_order(peers, rounds):
        print(f"{peer}:" + (f" (round {rnd + 1} of {rounds})" if rounds > 1 else ""), flush=True)
        if peer == "graphc":  # one process per model: its first call is the cached load
            parts = [spawn_best(peer, [k], data_dir, quick, retries) for k in keys]
            result = {"version": parts[0]["version"], "models": {k: p["models"][k] for k, p in zip(keys, parts)},
                      "foreign_cpu": max(p.get("foreign_cpu", float("nan")) for p in parts)}
        elif peer == "onnxruntime":
            if "onnx_export" not in report:
                report["onnx_export"] = spawn("onnx-export", keys, data_dir, quick)
            exported = report["onnx_export"]
            ok = [k for k in keys if exported["models"][k]["status"] == "ok"]
            result = spawn_best(peer, ok, data_dir, quick, retries) if ok else \
                {"version": "", "models": {}, "foreign_cpu": float("nan")}
            for k in keys:
                if k not in ok:
                    result["models"][k] = dict(exported["models"][k])
        else:
            result = spawn_best(peer, keys, data_dir, quick, retries, peer_env(peer, data_dir))
        report["peers"][peer] = keep_best(report["peers"][peer], result) if peer in report["peers"] else result
    report["peers"] = {p: report["peers"][p] for p in peers}
    report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return report


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python {platform.python_version()}"


# --- the report ------------------------------------------------------------------------------------------
class Notes:
    """Footnotes: a cell shows 'n/a [k]', the reason is printed once below the tables."""

    def __init__(self):
        self.items = []

    def ref(self, text) -> str:
        if text not in self.items:
            self.items.append(text)
        return f"[{self.items.index(text) + 1}]"


def rounds_text(report) -> str:
    rounds = report.get("rounds", 1)
    return (f" Every peer ran {rounds} times, in alternating order; each figure is the best of its {rounds} "
            "medians." if rounds > 1 else "")


def fmt(v, digits=3):
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if v < 1 else f"{v:.{digits - 1}f}" if v < 10 else f"{v:.1f}"


def table(header, rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def cached_load_cell(g, key, notes) -> str:
    if "first_call_b1_s" not in g:
        return "—"
    text = f"{g['first_call_b1_s'] * 1e3:.1f} ms"
    if g.get("rebuilt"):
        text += " " + notes.ref(f"graphc, {key}: the worker found no cached build (graphc's C sources changed "
                                "during the run), so this figure is a compile, not a cached load")
    return text


def export_cell(ex, key, notes) -> str:
    if "export_s" not in ex:
        return "—"
    if ex.get("status") != "ok":
        return "failed " + notes.ref(f"{TITLES['onnxruntime']}, {key}: {ex.get('reason')}")  # the ORT cell's note
    text = f"{ex['export_s']:.1f} s, {ex['exporter']}"
    if "dynamo_error" in ex:
        text += " " + notes.ref(f"ONNX export of {key}: torch.export failed ({ex['dynamo_error']}); "
                                "the TorchScript exporter was used")
    return text


def render(report) -> str:
    keys, peers, notes = report["keys"], report["peers"], Notes()
    build = report["graphc_build"]

    def cell(peer, key, field):
        r = peers[peer]["models"].get(key, {"status": "error", "reason": "not run"})
        if r["status"] != "ok":
            return "n/a " + notes.ref(f"{TITLES[peer]}, {key}: {r.get('reason', r['status'])}")
        return fmt(r[field])

    def speedups(field, higher_is_better):
        rows = []
        for key in keys:
            g = peers.get("graphc", {}).get("models", {}).get(key, {})
            row = [key]
            for peer in [p for p in peers if p != "graphc"]:
                r = peers[peer]["models"].get(key, {})
                if g.get("status") == "ok" and r.get("status") == "ok":
                    ratio = g[field] / r[field] if higher_is_better else r[field] / g[field]
                    row.append(f"{ratio:.2f}×")
                else:
                    row.append("—")
            rows.append(row)
        return table(["model"] + [f"vs {TITLES[p]}" for p in peers if p != "graphc"], rows)

    out = [f"Run {report['started']} – {report['finished']}{' (--quick)' if report['quick'] else ''} on "
           f"{report['machine']}; {THREADS} threads for every framework.{rounds_text(report)}", "",
           "Versions: " + "; ".join(dict.fromkeys(p["version"] for p in peers.values() if p.get("version")))
           + f"; C compiler: {build['compiler']} ({build['flags']}).", ""]
    names = list(peers)
    out += ["Backend graphc used, compile times (graphc's kernels library, built once per toolchain: "
            f"{build['kernels_build_s']:.1f} s, not counted below):", ""]
    rows = []
    for key in keys:
        b = build["models"][key]
        g = peers.get("graphc", {}).get("models", {}).get(key, {})
        tc = peers.get("torch.compile", {}).get("models", {}).get(key, {})
        ex = report.get("onnx_export", {}).get("models", {}).get(key, {})
        backend = b["backend"] if b["backend"] == "C" else f"NumPy reference {notes.ref(b['fallback'])}"
        rows.append([key, backend,
                     f"{b['compile_s']:.2f} s" if "compile_s" in b else "—",
                     cached_load_cell(g, key, notes),
                     f"{b['diff_reference']:.1e}" if "diff_reference" in b else "—",
                     f"{tc['first_call_b1_s']:.1f} s / {tc['first_call_b128_s']:.1f} s"
                     if "first_call_b1_s" in tc else "—",
                     export_cell(ex, key, notes)])
    out += [table(["model", "graphc backend", "graphc first compile", "graphc cached load (1st call, new process)",
                   "graphc C vs NumPy ref max abs diff", "torch.compile 1st call b1 / b128", "ONNX export"], rows), ""]
    out += ["Latency, batch 1 (median ms per call; lower is better):", "",
            table(["model"] + [TITLES[p] for p in names],
                  [[k] + [cell(p, k, "latency_ms") for p in names] for k in keys]), ""]
    if "graphc" in peers and len(peers) > 1:
        out += ["graphc speed-up at batch 1 (peer's latency / graphc's; >1 = graphc faster):", "",
                speedups("latency_ms", False), ""]
    out += [f"Throughput, batch {BATCH} (samples/s; higher is better):", "",
            table(["model"] + [TITLES[p] for p in names],
                  [[k] + [cell(p, k, "throughput") for p in names] for k in keys]), ""]
    if "graphc" in peers and len(peers) > 1:
        out += [f"graphc speed-up at batch {BATCH} (graphc's samples/s / peer's; >1 = graphc faster):", "",
                speedups("throughput", True), ""]
    loads = [f"{TITLES[p]} {r['foreign_cpu']:.0%}" for p, r in peers.items()
             if r.get("foreign_cpu") == r.get("foreign_cpu")]  # not nan
    if loads:
        busy = any(r.get("foreign_cpu", 0) > BUSY for r in peers.values())
        out += ["Share of the machine's CPU time used by other processes while each peer ran (its timings "
                "are unreliable when this is not near 0%): " + ", ".join(loads)
                + (". WARNING: the machine was not quiet." if busy else "."), ""]
    pair = C.summary(peers, TITLES)
    if pair:
        out += [pair, ""]
    checks = []
    for k in keys:
        row = [k]
        for p in names:
            r = peers[p]["models"].get(k, {})
            row.append(f"{max(r['diff_b1'], r['diff_b128']):.1e}" if "diff_b1" in r else "—")
        checks.append(row)
    out += [f"Output check before timing: max |peer − graphc| over batch 1 and batch {BATCH} "
            f"(must be ≤ {ATOL:g}):", "",
            table(["model"] + [TITLES[p] for p in names], checks), ""]
    tc_notes = [f"{k}: {r['note']}" for k, r in peers.get("torch.compile", {}).get("models", {}).items()
                if r.get("note")]
    if tc_notes:
        out += ["torch.compile: " + "; ".join(tc_notes), ""]
    if notes.items:
        out += ["Notes:", ""] + [f"[{i + 1}] {text}" for i, text in enumerate(notes.items)]
    return "\n".join(out).rstrip() + "\n"


SECTION = "## Inference: graphc vs PyTorch, torch.compile, Keras, ONNX Runtime"


def write_section(path: Path, body: str, title: str = SECTION):
    """Puts a benchmark's section (`title`, this one's by default) into a Markdown file, replacing its
    previous version and leaving every other section (other benchmarks write theirs there) as it was."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = text.splitlines()
    section = [title, ""] + body.rstrip().splitlines()
    if title in lines:
        start = lines.index(title)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines[start:end] = section + ([""] if end < len(lines) else [])
    else:
        lines += [""] + section if lines and lines[-1].strip() else section
    path.write_text("\n".join(lines).rstrip() + "\n")


def common_arguments(ap, peers=PEERS, keep_what="data, ONNX files, logs"):
    """The options every benchmark script here takes (run.py, train_bench.py)."""
    ap.add_argument("--quick", action="store_true", help="smoke run: few repetitions")
    ap.add_argument("--models", default=",".join(M.MODEL_KEYS),
                    help="comma-separated subset of " + ",".join(M.MODEL_KEYS))
    ap.add_argument("--peers", default=",".join(peers), help="comma-separated subset of " + ",".join(peers))
    ap.add_argument("--json", help="also write the raw figures to this file")
    ap.add_argument("--results-md", metavar="PATH",
                    help="also write the report as a section of this Markdown file (e.g. benchmarks/RESULTS.md)")
    ap.add_argument("--keep", action="store_true", help=f"keep the work directory ({keep_what})")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                    help="first wait up to SECONDS for other processes to leave the CPUs idle")
    ap.add_argument("--wait-shared-cache", type=float, default=0, metavar="SECONDS",
                    help="wait up to SECONDS for the two CPUs to share a cache before each worker, and before a "
                         "model whose worker found them apart after the model before (benchmarks/core_pair.py; "
                         "they are probed before each worker and after each model either way)")
    ap.add_argument("--retries", type=int, default=0, metavar="N",
                    help="run a peer again, up to N times, while other processes used over 5%% of the CPUs")
    ap.add_argument("--rounds", type=int, default=1, metavar="N",
                    help="run every peer N times, in alternating order, keeping each figure's best median "
                         "(a machine whose speed drifts then favours no peer)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)


def bench_main(ap, argv, script, worker, run_all, render, peers=PEERS, section=SECTION, prefix="graphc-bench-"):
    """The main of every benchmark script here: in a worker process run one peer; otherwise run every peer
    (each in its own process), print the report and write it where asked."""
    args = ap.parse_args(argv)
    keys = [k for k in args.models.split(",") if k]
    if args.worker:
        Path(args.result).write_text(json.dumps(worker(args.worker, Path(args.data), keys, args.quick)))
        return 0
    chosen = [p for p in args.peers.split(",") if p]
    unknown = [k for k in keys if k not in M.MODEL_KEYS] + [p for p in chosen if p not in peers]
    if unknown:
        ap.error(f"unknown model or peer: {', '.join(unknown)}")
    if args.wait_quiet > 0:
        wait_quiet(args.wait_quiet)
    work = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["GRAPHC_CACHE_DIR"] = str(work / "graphc-cache")  # empty: the first compile is a real one
    try:
        missing = C.configure(work, args.wait_shared_cache)
        if missing:
            print(missing, flush=True)
        report = run_all(keys, chosen, args.quick, work, args.retries, max(1, args.rounds))
    finally:
        if args.keep:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = render(report)
    print("\n" + text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    if args.results_md:
        command = " ".join([sys.executable, script] + sys.argv[1:])
        write_section(Path(args.results_md), f"Command (from the repository root):\n\n```sh\n{command}\n```\n\n{text}",
                      section)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    common_arguments(ap)
    return bench_main(ap, argv, "benchmarks/run.py", worker, run_all, render)


if __name__ == "__main__":
    sys.exit(main())
