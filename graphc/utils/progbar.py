"""Keras-style text progress bar (keras.utils.Progbar), drawn in the classic ASCII form:

    750/750 [==============================] - 4s 5ms/step - loss: 0.3012 - accuracy: 0.9100

verbose=1 redraws one line with a carriage return while running (showing the ETA) when stdout is a
terminal or a notebook; on a pipe or a log file it prints only the final line, so logs stay clean.
verbose=2 prints one line when the bar finishes: ``750/750 - 4s - 5ms/step - loss: 0.3012``.
"""
from __future__ import annotations

import math
import os
import sys
import time

import numpy as np


def _now():
    # A module-level clock so tests can pin the times shown.
    return time.monotonic()


def _dynamic_display():
    """Whether the bar can redraw itself in place (a terminal, Jupyter or PyCharm's console)."""
    isatty = getattr(sys.stdout, "isatty", None)
    try:
        tty = bool(isatty and isatty())
    except ValueError:  # a closed stream
        tty = False
    return tty or "ipykernel" in sys.modules or "PYCHARM_HOSTED" in os.environ


def format_value(value):
    """A metric as Keras shows it: 4 decimals, or scientific notation for magnitudes <= 1e-3."""
    return f"{value:.4f}" if abs(value) > 1e-3 else f"{value:.4e}"


def format_time_per_unit(seconds, unit_name):
    if seconds >= 1 or seconds == 0:
        return f"{seconds:.0f}s/{unit_name}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit_name}"
    return f"{seconds * 1e6:.0f}us/{unit_name}"


def _format_eta(eta):
    if eta > 3600:
        return "%d:%02d:%02d" % (eta // 3600, (eta % 3600) // 60, eta % 60)
    if eta > 60:
        return "%d:%02d" % (eta // 60, eta % 60)
    return "%ds" % eta


class Progbar:
    """Displays a progress bar.

    Args:
        target: total number of steps expected, None if unknown.
        width: bar width in characters.
        verbose: 0 (silent), 1 (live bar), 2 (one line when finished).
        interval: minimum seconds between two redraws of the live bar.
        stateful_metrics: names whose values are shown as given; every other metric is averaged over
            the steps seen (weighted by the steps each update covers). Give this or
            ``stateless_metrics`` (the names that ARE averaged), not both.
        unit_name: what a step is called in the time-per-unit field.
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05, stateful_metrics=None,
                 stateless_metrics=None, unit_name="step"):
        if stateful_metrics is not None and stateless_metrics is not None:
            raise ValueError("Progbar: give only one of `stateful_metrics` (metrics shown as given; "
                             "the others are averaged) or `stateless_metrics` (metrics averaged; the "
                             "others are shown as given)")
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        # Exactly one of the two sets is used: names listed as stateless, or names not listed as stateful.
        self.stateless_metrics = None if stateless_metrics is None else set(stateless_metrics)
        self.stateful_metrics = set(stateful_metrics or ()) if stateless_metrics is None else None
        self._dynamic = _dynamic_display()
        self._values = {}  # name -> [weighted sum, weight], in first-seen order
        self._seen_so_far = 0
        self._start = _now()
        self._last_update = 0.0
        self._time_after_first_step = None
        self._prev_width = 0

    def update(self, current, values=None, finalize=None):
        """Record progress up to step ``current`` with ``values`` = [(name, value for the last steps)].

        ``finalize`` (default: ``current >= target``) marks the last update: the line is completed."""
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        for name, value in values or []:
            if self._is_averaged(name) and not finalize:
                weight = max(current - self._seen_so_far, 1)
                acc = self._values.setdefault(name, [0.0, 0])
                acc[0] += value * weight
                acc[1] += weight
            else:
                # As Keras 3: the final value of a run replaces the running average.
                self._values[name] = [value, 1]
        self._seen_so_far = current

        now = _now()
        time_per_unit = self._step_duration(current, now)
        if self.verbose == 1:
            if not finalize and (not self._dynamic or now - self._last_update < self.interval):
                return
            self._draw_live(current, now, time_per_unit, finalize)
        elif self.verbose == 2 and finalize:
            self._draw_summary(current, now, time_per_unit)
        self._last_update = now

    def _is_averaged(self, name):
        if self.stateless_metrics is not None:
            return name in self.stateless_metrics
        return name not in self.stateful_metrics

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    def _metrics_text(self):
        parts = []
        for name, (total, count) in self._values.items():
            avg = float(np.mean(total)) / max(1, count)
            parts.append(f" - {name}: {format_value(avg)}")
        return "".join(parts)

    def _count_text(self, current):
        digits = int(math.log10(self.target)) + 1
        return f"%{digits}d/%d" % (current, self.target)

    def _draw_live(self, current, now, time_per_unit, finalize):
        if self.target is not None and self.target > 0:
            filled = int(self.width * min(current / self.target, 1.0))
            bar = self._count_text(current) + " ["
            if filled > 0:
                bar += "=" * (filled - 1) + (">" if current < self.target else "=")
            bar += "." * (self.width - filled) + "]"
        else:
            bar = "%7d/Unknown" % current
        if finalize or self.target is None or self.target <= 0:
            info = f" - {now - self._start:.0f}s {format_time_per_unit(time_per_unit, self.unit_name)}"
        else:
            info = f" - ETA: {_format_eta(time_per_unit * (self.target - current))}"
        line = bar + info + self._metrics_text()
        width = len(line)
        if self._dynamic:
            # Pad with blanks to wipe the tail of a longer previous line.
            line = "\r" + line + " " * max(self._prev_width - width, 0)
        self._prev_width = width
        print_msg(line, line_break=finalize)

    def _draw_summary(self, current, now, time_per_unit):
        if self.target is None or self.target <= 0:
            return
        line = (f"{self._count_text(current)} - {now - self._start:.0f}s - "
                f"{format_time_per_unit(time_per_unit, self.unit_name)}{self._metrics_text()}")
        print_msg(line)

    def _step_duration(self, current, now):
        """Seconds per step; the first step (often slow: compilation, warm-up) is left out once there
        are others to measure."""
        if not current:
            return 0.0
        if self._time_after_first_step is not None and current > 1:
            per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return per_unit


def print_msg(message, line_break=True):
    """Write to the current sys.stdout (looked up each time, so redirection and capture work)."""
    sys.stdout.write(message + ("\n" if line_break else ""))
    sys.stdout.flush()
