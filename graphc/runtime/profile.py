"""Per-op timings of a compiled model (``Model.profile``): a twin of its program, generated with a timer
around each op's statements (``compile_graph(..., profile=True)``), called a number of times."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import threads


@dataclass
class Profile:
    """Where a compiled call spends its time. ``rows``: (label, ms per call) for each op with statements of
    its own, in program order (label: layer, IR op, shapes; a fused loop is labelled by its last op and counts
    the ops fused into it); ``call_ms``: the mean of the whole call as Python times it, so ``call_ms -
    total_ms`` is what the call costs outside the C function."""
    title: str
    batch: int
    threads: int
    runs: int
    rows: list
    call_ms: float

    @property
    def total_ms(self) -> float:
        """The C function's time per call: the sum of the rows."""
        return sum(ms for _, ms in self.rows)

    def top(self, n: int = 10) -> list:
        """The ``n`` rows that take longest, longest first."""
        return sorted(self.rows, key=lambda row: -row[1])[:n]

    def __str__(self) -> str:
        total = self.total_ms or 1.0
        lines = [f"{self.title}: batch {self.batch}, {self.threads} thread(s), mean of {self.runs} calls",
                 f"{'ms':>9}  {'share':>6}  op"]
        lines += [f"{ms:9.3f}  {100 * ms / total:5.1f}%  {label}" for label, ms in self.rows]
        lines.append(f"{self.total_ms:9.3f}  100.0%  in the C function; the call from Python: "
                     f"{self.call_ms:.3f} ms")
        return "\n".join(lines)


def run_profile(program, call, title: str, batch: int, runs: int, warmup: int) -> Profile:
    """``call()`` (which runs ``program``, compiled with profile=True) ``warmup`` times, then ``runs`` times
    timed: the profile of those ``runs`` calls."""
    if isinstance(runs, bool) or not isinstance(runs, int) or runs < 1:
        raise ValueError(f"profile: runs must be a positive integer, received {runs!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"profile: warmup must be a non-negative integer, received {warmup!r}")
    for _ in range(warmup):
        call()
    program.take_profile()  # (drops the warm-up's)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    calls, sums = program.take_profile()
    rows = [(label, 1e3 * seconds / calls) for label, seconds in sums]
    return Profile(title, batch, threads.compiled_threads(), calls, rows, 1e3 * float(np.mean(times)))
