"""benchmarks/core_pair.py: the probe that tells whether the benchmarks' two CPUs share a cache, and how the
benchmark reports keep and summarize what it saw (RESULTS.md's figures are read against it)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import core_pair as C  # noqa: E402


def test_the_probe_measures_a_round_trip_between_two_threads(tmp_path):
    exe = C.build(tmp_path)
    assert exe is not None, "the probe did not build or run (gcc with OpenMP, two CPUs)"
    ns = C.round_trip_ns(exe)
    assert 10 < ns < 100_000  # a cache line's trip, shared L3 or not; never a time slice of the scheduler
    last, waited = C.wait_shared(exe, limit_s=0.0)
    assert last == last and waited < 5  # no waiting past the limit


def test_around_records_the_probes_and_the_wait(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "_last", {})
    assert C.configure(tmp_path, wait_s=0.0) is None
    env = C.before_worker(tmp_path)  # the main process probes before starting a worker ...
    ns, waited = json.loads(env[C.BEFORE])
    assert ns > 0 and waited >= 0
    monkeypatch.setenv(C.BEFORE, env[C.BEFORE])
    first = C.around(tmp_path, lambda: {"status": "ok", "latency_ms": 1.0})
    assert first["core_pair_ns"][0] == ns and first["core_pair_wait_s"] == waited  # ... for its first model
    assert first["core_pair_ns"][1] > 0
    second = C.around(tmp_path, lambda: {"status": "ok"})
    assert second["core_pair_ns"][0] == first["core_pair_ns"][1]  # then the probe after the model before
    failed = C.around(tmp_path, lambda: {"status": "error", "reason": "x"})
    assert "core_pair_ns" not in failed


def test_around_without_a_probe_just_times(tmp_path):
    assert C.around(tmp_path, lambda: {"status": "ok"}) == {"status": "ok"}  # no core_pair.json written
    assert C.before_worker(tmp_path) == {}


def test_rounds_are_kept_and_apart_timings_counted():
    first = {"status": "ok", "core_pair_ns": [64.0, 70.0]}
    C.merge(first, first)  # the first round is its own kept result
    assert C.rounds_of(first) == [[64.0, 70.0]]
    C.merge(first, {"status": "ok", "core_pair_ns": [330.0, 65.0]})
    assert C.rounds_of(first) == [[64.0, 70.0], [330.0, 65.0]]
    peers = {"graphc": {"models": {"mlp": first}, "epoch": {"mlp": {"core_pair_ns": [60.0, 61.0]}}},
             "torch": {"models": {"mlp": {"core_pair_ns": [62.0, 63.0]}}},
             "keras-tf": {"models": {"mlp": {"status": "error"}}}}
    line = C.summary(peers, {"graphc": "graphc", "torch": "PyTorch eager", "keras-tf": "Keras (TF)"})
    assert "graphc 60-330 (1 of 3 timings began or ended apart)" in line
    assert "PyTorch eager 62-63." in line and "Keras (TF)" not in line
    assert C.summary({"torch": {"models": {"mlp": {}}}}, {"torch": "PyTorch eager"}) is None
