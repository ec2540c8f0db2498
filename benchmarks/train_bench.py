"""Training benchmark: one Adam step at batch 64 (forward, loss, backward, update), graphc against PyTorch
eager, torch.compile and Keras train_on_batch; and one epoch over 60,000 MNIST-shaped samples (MLP).

    python benchmarks/train_bench.py            # full run
    python benchmarks/train_bench.py --quick    # smoke run: every model and peer, few repetitions
    python benchmarks/train_bench.py --models mlp,cnn --peers graphc,torch.compile --json out.json

Same machinery as run.py (its models, weights, timing, worker processes, options). The main process
builds each model in graphc with random weights and runs two training steps on one batch, compiled
(the first compile, in an empty cache) and on graphc's NumPy reference. Each peer then runs in a
process of its own: from the same weights it takes the same two steps on the same batch; the losses
(step 1: forward and loss; step 2: also the backward pass and the Adam update) must match graphc's
(atol 1e-4) before the peer is timed. Losses: sparse categorical cross-entropy, on probabilities for
the models that end in softmax, on logits (from_logits=True) for cnn and resnet.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]
import run as R  # noqa: E402  (first: sets the thread variables before numpy or a framework loads)

import argparse  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

import numpy as np  # noqa: E402

import core_pair as C  # noqa: E402
import models as M  # noqa: E402

BATCH = 64
EPOCH_SAMPLES, EPOCH_MODELS = 60_000, ("mlp",)
LR, BETA_2, EPSILON = 1e-3, 0.999, 1e-7  # Adam; Keras's defaults
LOGITS = ("cnn", "resnet")  # models without a final softmax: the loss takes logits
DROPOUT = {"resnet": "dropout"}  # model -> its Dropout layer (masks differ between frameworks)
ATOL = 1e-4
SEED = 2024
PEERS = ("graphc", "torch", "torch.compile", "keras-tf", "keras-torch")
TITLES = R.TITLES
# (warm-up steps, seconds measured, least steps); timed epochs
BUDGETS = {False: {"step": (5, 5.0, 20), "epochs": 3}, True: {"step": (2, 0.3, 3), "epochs": 1}}
SLOW_S = 10.0  # a peer whose checked second step took longer is timed on that step alone
SECTION = "## Training: graphc vs PyTorch, torch.compile, Keras"


def epoch_data(key):
    """Random data of MNIST's shape (not MNIST): inputs uniform in [0, 1), labels uniform over 10 classes."""
    rng = np.random.default_rng(SEED + 7)
    return (rng.random((EPOCH_SAMPLES,) + M.INPUT_SHAPES[key], dtype=np.float32),
            rng.integers(0, 10, EPOCH_SAMPLES).astype(np.int64))


# --- the peers (each used only inside its own worker process) -------------------------------------------
class KerasAPIPeer:
    """graphc and Keras: the same builder, compile() and train_on_batch / fit."""

    def __init__(self, framework):
        self.k = framework

    def load(self, key, weights, dropout=None):
        self.model = M.build(key, self.k, weights)
        if dropout is not None:
            self.model.get_layer(DROPOUT[key]).rate = dropout
        self.model.compile(optimizer=self.k.optimizers.Adam(learning_rate=LR, epsilon=EPSILON),
                           loss=self.k.losses.SparseCategoricalCrossentropy(from_logits=key in LOGITS))

    def convert(self, key, x, y):
        return x, y

    def step(self, x, y):
        return float(self.model.train_on_batch(x, y))

    def epoch(self, x, y):
        self.model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)

    def info(self):
        return {}


class GraphcPeer(KerasAPIPeer):
    def __init__(self):
        import graphc
        graphc.set_num_threads(R.THREADS)
        super().__init__(graphc)
        self.version = R._graphc_version()

    def raw_step(self, x, y):
        """The compiled train step alone (what train_on_batch calls after preparing feeds and before
        updating its logs); the optimizer's scalars stay those of the next step."""
        model = self.model
        step = next(s for key, s in model._steps.items() if key[0])  # key[0]: a train step
        feeds = {("x", 0): x, ("y", 0): y, ("rng",): np.int32(0)}
        feeds.update({("hyper", n): np.float32(v) for n, v in model.optimizer.hyperparameters().items()})
        args = [np.asarray(feeds[f], dtype=v.type.dtype, order="C") for f, v in zip(step.feeds, step.graph.inputs)]
        from graphc.training.step import run_step  # (the call into C, with the packed kernels the step keeps)
        return lambda: run_step(step, model, args, "train step")

    def info(self):
        programs = [s.program for s in self.model._steps.values()]
        return {"backend": "C" if programs and all(programs) else "NumPy reference"}


class KerasPeer(KerasAPIPeer):
    def __init__(self):
        self.version = R.KerasPeer().version  # sets the backend's threads
        import keras
        super().__init__(keras)


class TorchPeer:
    """PyTorch, eager: zero_grad, forward + loss, backward, Adam (fused, PyTorch's fastest on CPU)."""
    compiled = False

    def __init__(self):
        import torch
        self.torch = torch
        torch.set_num_threads(R.THREADS)
        self.version = f"torch {torch.__version__}"

    def load(self, key, weights, dropout=None):
        torch, F = self.torch, self.torch.nn.functional
        module = M.torch_model(key, weights).train()
        if dropout is not None:
            getattr(module, DROPOUT[key]).p = dropout
        if key.startswith("lstm"):  # Keras's LSTM has one bias: bias_hh stays zero, as in Keras
            module.lstm.bias_hh_l0.requires_grad_(False)
        logits = key in LOGITS

        def forward_loss(x, y):  # Keras's loss: cross-entropy on logits, or on probabilities clipped to eps
            out = module(x)
            return F.cross_entropy(out, y) if logits else F.nll_loss(torch.log(out.clamp(EPSILON, 1 - EPSILON)), y)

        # Keras adds epsilon to sqrt(v), PyTorch to sqrt(v / (1 - beta_2^t)): this epsilon makes step 1's
        # update Keras's exactly (later steps differ in epsilon's weight only), so step 2's loss checks it
        opt = torch.optim.Adam([p for p in module.parameters() if p.requires_grad], lr=LR, fused=not self.compiled,
                               eps=EPSILON / (1 - BETA_2) ** 0.5)
        self.forward_loss, self.update = forward_loss, opt.step
        if self.compiled:
            torch._dynamo.reset()
            torch._dynamo.utils.counters.clear()
            # inductor compiles the forward + loss and (through AOTAutograd) its backward; the optimizer's
            # step is compiled apart (Dynamo does not trace backward(), so one function cannot hold both)
            self.forward_loss = torch.compile(forward_loss, dynamic=False)
            self.update = torch.compile(opt.step)
        self.opt = opt

    def convert(self, key, x, y):
        return M.torch_input(key, x), self.torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))

    def _step(self, x, y):
        self.opt.zero_grad(set_to_none=True)
        loss = self.forward_loss(x, y)
        loss.backward()
        self.update()
        return loss

    def step(self, x, y):
        return float(self._step(x, y).detach())

    def epoch(self, x, y):
        for i in range(0, len(x), BATCH):
            self._step(x[i:i + BATCH], y[i:i + BATCH])

    def info(self):
        return R.TorchPeer.info(self)


class TorchCompilePeer(TorchPeer):
    compiled = True


# --- a worker: one peer, some models ---------------------------------------------------------------------
def worker(peer_name, data_dir: Path, keys, quick: bool) -> dict:
    peer = {"graphc": GraphcPeer, "torch": TorchPeer, "torch.compile": TorchCompilePeer,
            "keras-tf": KerasPeer, "keras-torch": KerasPeer}[peer_name]()
    out = {"peer": peer_name, "version": peer.version, "models": {}, "epoch": {}}
    for key in keys:
        try:
            out["models"][key] = C.around(data_dir, lambda: run_model(peer, key, data_dir, quick))
        except Exception as e:  # one model's failure must not hide the others
            out["models"][key] = {"status": "error", "reason": f"{type(e).__name__}: {R.gist(e)}"}
        print(f"  {peer_name} {key}: {summary_line(out['models'][key])}", flush=True)
        if key in EPOCH_MODELS and out["models"][key]["status"] == "ok":
            try:
                out["epoch"][key] = C.around(data_dir, lambda: run_epoch(peer, key, data_dir, quick))
            except Exception as e:
                out["epoch"][key] = {"status": "error", "reason": f"{type(e).__name__}: {R.gist(e)}"}
            e = out["epoch"][key]
            print(f"  {peer_name} {key} epoch: " + (f"{e['epoch_s']:.2f} s" if e["status"] == "ok"
                                                    else f"{e['status']}: {e['reason']}"), flush=True)
    return out


def run_model(peer, key, data_dir, quick) -> dict:
    arrays, weights = R.load_arrays(data_dir / f"{key}.npz")
    x, y = peer.convert(key, arrays["x"], arrays["y"])
    peer.load(key, weights, dropout=0.0 if key in DROPOUT else None)
    t0 = time.perf_counter()
    loss1 = peer.step(x, y)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    loss2 = peer.step(x, y)
    second = time.perf_counter() - t0
    res = {"first_step_s": first, "losses": [loss1, loss2],
           "loss_diffs": [R.max_diff(loss1, arrays["losses"][0]), R.max_diff(loss2, arrays["losses"][1])]}
    if max(res["loss_diffs"]) > ATOL:
        res.update(status="mismatch", reason=f"losses {loss1:.6f}, {loss2:.6f} differ from graphc's "
                                             f"{arrays['losses'][0]:.6f}, {arrays['losses'][1]:.6f} (atol {ATOL:g})")
        return res
    if second > SLOW_S:  # e.g. Keras's torch backend on lstm784 (a Python loop over 784 timesteps): minutes more
        res.update(status="ok", step_ms=second * 1e3, step_min_ms=second * 1e3, step_runs=1, **peer.info())
        return res
    if key in DROPOUT:  # the checked model had Dropout(0); the timed one has the benchmark's rate
        peer.load(key, weights)
        peer.step(x, y)
    budget, load = BUDGETS[quick]["step"], R.ForeignLoad()
    load.start()
    median, best, runs = R.measure(lambda: peer.step(x, y), *budget)
    res.update(status="ok", step_ms=median * 1e3, step_min_ms=best * 1e3, step_runs=runs, **peer.info())
    if hasattr(peer, "raw_step"):
        median, best, runs = R.measure(peer.raw_step(x, y), *budget)
        res.update(raw_step_ms=median * 1e3, raw_step_min_ms=best * 1e3, raw_step_runs=runs)
    res["foreign_cpu"] = load.stop()
    return res


def run_epoch(peer, key, data_dir, quick) -> dict:
    _, weights = R.load_arrays(data_dir / f"{key}.npz")
    peer.load(key, weights)
    x, y = peer.convert(key, *epoch_data(key))
    tail = EPOCH_SAMPLES % BATCH or BATCH
    peer.epoch(x[:BATCH + tail], y[:BATCH + tail])  # warm-up: both batch sizes of the epoch (64, 32)
    times, load = [], R.ForeignLoad()
    load.start()
    for _ in range(BUDGETS[quick]["epochs"]):
        t0 = time.perf_counter()
        peer.epoch(x, y)
        times.append(time.perf_counter() - t0)
    return {"status": "ok", "epoch_s": float(np.median(times)), "epoch_min_s": min(times), "epochs": len(times),
            "foreign_cpu": load.stop()}


def summary_line(r) -> str:
    if r["status"] != "ok":
        return f"{r['status']}: {r.get('reason', '')}"
    raw = f", raw step {r['raw_step_ms']:.2f} ms" if "raw_step_ms" in r else ""
    return f"step {r['step_ms']:.2f} ms ({r['step_runs']} runs){raw}, loss |diff| {max(r['loss_diffs']):.1e}"


# --- the main process ------------------------------------------------------------------------------------
def two_steps(model, x, y):
    t0 = time.perf_counter()
    loss1 = float(model.train_on_batch(x, y))
    first = time.perf_counter() - t0
    return [loss1, float(model.train_on_batch(x, y))], first


def prepare(keys, data_dir: Path) -> dict:
    """graphc: two checked steps per model, compiled (first compile timed, empty cache) and on the NumPy
    reference; saves weights, the batch and the compiled losses for the workers."""
    import graphc
    from graphc.runtime import current_toolchain, kernels
    graphc.set_num_threads(R.THREADS)
    tc = current_toolchain()
    t0 = time.perf_counter()
    kernels.kernel_library(tc)
    info = {"kernels_build_s": time.perf_counter() - t0, "compiler": tc.version, "flags": " ".join(tc.flags),
            "models": {}}
    peer = GraphcPeer()
    for key in keys:
        weights = M.random_weights(M.build(key, graphc), SEED)
        x = M.random_input(key, BATCH, SEED + 1)
        y = np.random.default_rng(SEED + 2).integers(0, 10, BATCH).astype(np.int64)
        dropout = 0.0 if key in DROPOUT else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            peer.load(key, weights, dropout)
            losses, first = two_steps(peer.model, x, y)
        r = {**peer.info(), "params": peer.model.count_params()}
        if r["backend"] == "C":
            r["compile_s"] = first
            os.environ["GRAPHC_BACKEND"] = "reference"
            try:
                peer.load(key, weights, dropout)
                ref, _ = two_steps(peer.model, x, y)
            finally:
                del os.environ["GRAPHC_BACKEND"]
            r["diff_reference"] = max(R.max_diff(a, b) for a, b in zip(losses, ref))
        else:
            r["fallback"] = "; ".join(str(w.message) for w in caught) or "no compiled program"
        if r["params"] != M.PARAMS[key]:
            raise SystemExit(f"{key}: {r['params']} parameters, BENCHMARK_MODELS.md says {M.PARAMS[key]}")
        R.save_arrays(data_dir / f"{key}.npz", weights, x=x, y=y, losses=np.array(losses))
        info["models"][key] = r
        print(f"  graphc {key}: backend {r['backend']}, losses {losses[0]:.6f} {losses[1]:.6f}"
              + (f", first compile {first:.2f} s, C vs NumPy reference {r['diff_reference']:.1e}"
                 if r["backend"] == "C" else f" ({r['fallback']})"), flush=True)
    return info


def run_all(keys, peers, quick, data_dir: Path, retries: int = 0, rounds: int = 1) -> dict:
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(f"graphc: building and compiling the train steps of {', '.join(keys)} "
          f"(empty cache {os.environ['GRAPHC_CACHE_DIR']})", flush=True)
    report = {"graphc_build": prepare(keys, data_dir), "peers": {}, "quick": quick, "keys": keys,
              "started": started, "machine": R.machine(), "rounds": rounds}
    for rnd, peer in R.peer_order(peers, rounds):
        print(f"{peer}:" + (f" (round {rnd + 1} of {rounds})" if rounds > 1 else ""), flush=True)
        result = R.spawn_best(peer, keys, data_dir, quick, retries, R.peer_env(peer, data_dir),
                              script=Path(__file__).resolve())
        report["peers"][peer] = R.keep_best(report["peers"][peer], result) if peer in report["peers"] else result
    report["peers"] = {p: report["peers"][p] for p in peers}
    report["finished"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return report


# --- the report ------------------------------------------------------------------------------------------
def ratio_table(rows_in, names, field) -> str:
    """Per row: graphc's speed-up (peer time / graphc time) over each peer and over the fastest peer."""
    others = [p for p in names if p != "graphc"]
    rows = []
    for label, results in rows_in:
        g = results.get("graphc", {})
        ok = {p: results[p][field] for p in others if results.get(p, {}).get("status") == "ok"}
        if g.get("status") != "ok":
            rows.append([label] + ["—"] * (len(others) + 1))
            continue
        row = [label] + [f"{ok[p] / g[field]:.2f}×" if p in ok else "—" for p in others]
        if ok:
            fastest = min(ok, key=ok.get)
            row.append(f"{ok[fastest] / g[field]:.2f}× ({TITLES[fastest]})")
        else:
            row.append("—")
        rows.append(row)
    return R.table(["model"] + [f"vs {TITLES[p]}" for p in others] + ["vs fastest peer"], rows)


def render(report) -> str:
    keys, peers, notes = report["keys"], report["peers"], R.Notes()
    build, names = report["graphc_build"], list(report["peers"])
    results = {k: {p: peers[p]["models"].get(k, {"status": "error", "reason": "not run"}) for p in names}
               for k in keys}

    def cell(r, p, k, field):
        if r.get("status") != "ok":
            return "n/a " + notes.ref(f"{TITLES[p]}, {k}: {r.get('reason', r.get('status'))}")
        text = R.fmt(r[field])
        if r.get("step_runs") == 1:
            text += " " + notes.ref(f"{TITLES[p]}, {k}: one step timed (the checked second step), as a step "
                                    f"takes over {SLOW_S:g} s")
        if r.get("foreign_cpu", 0) > R.BUSY:  # nan compares False
            text += " " + notes.ref(f"{TITLES[p]}, {k}: other processes used {r['foreign_cpu']:.0%} of the "
                                    "CPUs while this was timed: unreliable")
        return text

    out = [f"Run {report['started']} – {report['finished']}{' (--quick)' if report['quick'] else ''} on "
           f"{report['machine']}; {R.THREADS} threads for every framework.{R.rounds_text(report)}", "",
           "Versions: " + "; ".join(dict.fromkeys(p["version"] for p in peers.values() if p.get("version")))
           + f"; C compiler: {build['compiler']} ({build['flags']}).", "",
           f"One training step at batch {BATCH}: forward, sparse categorical cross-entropy (on logits for "
           f"{', '.join(LOGITS)}), backward, Adam (lr {LR:g}, epsilon {EPSILON:g}); every framework starts from "
           "the same weights. graphc and Keras: `model.train_on_batch`; graphc raw: the compiled step alone; "
           "PyTorch: zero_grad, forward + loss, backward, `Adam(fused=True)`.step; torch.compile: the "
           "forward + loss compiled (its backward by AOTAutograd) and `Adam.step` compiled.", ""]
    head = ["model"] + [TITLES[p] for p in names]
    if "graphc" in names:
        head.insert(2, "graphc raw step")
    rows = []
    for k in keys:
        row = [k] + [cell(results[k][p], p, k, "step_ms") for p in names]
        if "graphc" in names:
            g = results[k]["graphc"]
            row.insert(2, R.fmt(g["raw_step_ms"]) if "raw_step_ms" in g else "—")
        rows.append(row)
    out += [f"Training step, batch {BATCH} (median ms per step, warm-up excluded; lower is better):", "",
            R.table(head, rows), ""]
    if "graphc" in names and len(names) > 1:
        out += ["graphc speed-up (peer's ms / graphc's `train_on_batch` ms; >1 = graphc faster):", "",
                ratio_table([(k, results[k]) for k in keys], names, "step_ms"), ""]
    epoch_keys = [k for k in keys if k in EPOCH_MODELS]
    for k in epoch_keys:
        ep = {p: peers[p].get("epoch", {}).get(k, {"status": "error", "reason": "the step check failed or did "
                                                  "not run"}) for p in names}
        out += [f"One epoch of {k} over {EPOCH_SAMPLES:,} samples of MNIST's shape (random data, not MNIST: "
                f"inputs uniform in [0, 1), random labels), batch {BATCH}, no shuffling (graphc and Keras: "
                f"`fit(verbose=0)`; PyTorch: a loop over slices of one tensor); median s per epoch of "
                f"{max((e.get('epochs', 0) for e in ep.values()), default=0)} after a warm-up:", "",
                R.table(["", *(TITLES[p] for p in names)],
                        [["s / epoch", *(cell(ep[p], p, f"{k} epoch", "epoch_s") for p in names)],
                         ["samples/s", *(R.fmt(EPOCH_SAMPLES / ep[p]["epoch_s"]) if ep[p].get("status") == "ok"
                                         else "—" for p in names)]]), ""]
        if "graphc" in names and len(names) > 1:
            out += [ratio_table([(f"{k} epoch", ep)], names, "epoch_s"), ""]
    rows = []
    for k in keys:
        b = build["models"][k]
        backend = b["backend"] if b["backend"] == "C" else f"NumPy reference {notes.ref(b['fallback'])}"
        rows.append([k, backend, f"{b['compile_s']:.2f} s" if "compile_s" in b else "—"]
                    + [f"{results[k][p]['first_step_s']:.2f} s" if "first_step_s" in results[k][p] else "—"
                       for p in names if p != "graphc"])
    out += [f"graphc backend and first compile of the train step (empty cache; graphc's kernels library, built "
            f"once per toolchain: {build['kernels_build_s']:.1f} s, not counted); the peers' first step "
            "(tracing, torch.compile's compile):", "",
            R.table(["model", "graphc backend", "graphc first compile"]
                    + [f"{TITLES[p]} 1st step" for p in names if p != "graphc"], rows), ""]
    rows = []
    for k in keys:
        b = build["models"][k]
        row = [k, f"{b['diff_reference']:.1e}" if "diff_reference" in b else "—"]
        for p in names:
            d = results[k][p].get("loss_diffs")
            row.append(f"{d[0]:.1e} / {d[1]:.1e}" if d else "—")
        rows.append(row)
    out += [f"Same computation: max |loss − graphc's loss| after step 1 / step 2 from the same weights on the "
            f"same batch (step 2's loss depends on step 1's backward and Adam update; must be ≤ {ATOL:g}). "
            f"{', '.join(DROPOUT)} is checked with its Dropout at rate 0 (the frameworks draw different masks) "
            "and timed at its rate 0.5. PyTorch's LSTM gets Keras's single bias: bias_hh is zero and frozen.", "",
            R.table(["model", "graphc C vs NumPy ref"] + [TITLES[p] for p in names], rows), ""]
    loads = [f"{TITLES[p]} {r['foreign_cpu']:.0%}" for p, r in peers.items()
             if r.get("foreign_cpu") == r.get("foreign_cpu")]  # not nan
    if loads:
        busy = any(r.get("foreign_cpu", 0) > R.BUSY for r in peers.values())
        out += ["Share of the machine's CPU time used by other processes while each peer ran (its timings "
                "are unreliable when this is not near 0%): " + ", ".join(loads)
                + (". WARNING: the machine was not quiet." if busy else "."), ""]
    pair = C.summary(peers, TITLES)
    if pair:
        out += [pair, ""]
    tc_notes = [f"{k}: {r['note']}" for k, r in peers.get("torch.compile", {}).get("models", {}).items()
                if r.get("note")]
    if tc_notes:
        out += ["torch.compile: " + "; ".join(tc_notes) + " (`torch._dynamo.graph_break()` is called by "
                "PyTorch's `Optimizer.step` itself, around the update, which is compiled).", ""]
    if notes.items:
        out += ["Notes:", ""] + [f"[{i + 1}] {text}" for i, text in enumerate(notes.items)]
    return "\n".join(out).rstrip() + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    R.common_arguments(ap, peers=PEERS, keep_what="data, logs")
    return R.bench_main(ap, argv, "benchmarks/train_bench.py", worker, run_all, render, peers=PEERS,
                        section=SECTION, prefix="graphc-train-bench-")


if __name__ == "__main__":
    sys.exit(main())
