"""Arrival processes: Poisson, periodic, a two-state Markov-modulated Poisson process (bursty)
and a trace of timestamps, as streams of integer-ns arrival times drawn from one named, seeded
numpy generator.

A stream can restart at any time (a new simulation window) and skip an interval while only
counting the arrivals in it (a chip that is off and drops requests): Poisson counts are drawn
from the Poisson law of the interval, which is exact in distribution, so skipping costs no
per-request work. Gaps are generated in chunks and accumulated relative to a moving integer
base, so times stay exact to the nanosecond over centuries.
"""

from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from twin.traffic.parameters import MAX_TRACE_ROWS, Workload
from twin.units import SECOND

__all__ = ["ArrivalStream", "read_trace"]

_CHUNK = 4096
MAX_TRACE_S = 200 * 365.25 * 86400  # the longest deployment the twin simulates
_NEVER = np.iinfo(np.int64).max


def read_trace(path: Path) -> np.ndarray:
    """Arrival times (int ns, sorted) from a CSV with a column ``t_s`` (seconds from deployment).

    Raises ValueError with the row at fault: missing column, non-numbers, negative or non-finite
    times, unsorted rows, or more than :data:`MAX_TRACE_ROWS` rows.
    """
    times: list[int] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or "t_s" not in reader.fieldnames:
            raise ValueError(f"{path}: needs a header with a column t_s (arrival time in seconds)")
        for row in reader:
            line = reader.line_num
            if len(times) >= MAX_TRACE_ROWS:
                raise ValueError(f"{path}: more than {MAX_TRACE_ROWS:,} arrivals")
            try:
                t = float(row["t_s"])
            except (TypeError, ValueError):
                raise ValueError(f"{path}, line {line}: t_s {row['t_s']!r} is not a number") from None
            if not math.isfinite(t) or not 0 <= t <= MAX_TRACE_S:
                raise ValueError(f"{path}, line {line}: t_s must be finite and within 0 .. {MAX_TRACE_S:g} s, got {t}")
            ns = round(t * SECOND)
            if times and ns < times[-1]:
                raise ValueError(f"{path}, line {line}: arrival times must be sorted")
            times.append(ns)
    return np.asarray(times, dtype=np.int64)


def _periodic_time(k: int, rate: float) -> int:
    """Arrival k of a periodic process at ``rate`` (per s): ceil(k / rate) in integer ns, exactly."""
    num, den = Fraction(rate).as_integer_ratio()
    return -(-k * SECOND * den // num)


def _periods_before(t_ns: int, rate: float) -> int:
    """Index of the first periodic arrival at or after ``t_ns``: ceil(k * 1e9 / rate) >= t exactly
    when k * 1e9 / rate > t - 1."""
    num, den = Fraction(rate).as_integer_ratio()
    return (t_ns - 1) * num // (SECOND * den) + 1


class ArrivalStream:
    """Arrival times of one workload; :meth:`restart` at a window's start, then :meth:`next`."""

    def __init__(self, workload: Workload, rng: np.random.Generator, trace_ns: np.ndarray | None = None) -> None:
        self.workload = workload
        self.rng = rng
        self.trace_ns = trace_ns
        self._buffer = np.zeros(0, dtype=np.int64)
        self._i = 0
        self._base = 0  # integer ns the next chunk's gaps start from (arrivals are drawn up to it)
        self._frac = 0.0  # the fractional ns carried between chunks
        self._burst = False  # mmpp state
        self._switch_ns = 0  # mmpp: when the state next changes

    # --- windows ---------------------------------------------------------------------------
    def restart(self, now_ns: int) -> None:
        """Start afresh at ``now_ns``: the stationary law (Poisson: memoryless; periodic: the
        global grid; mmpp: the state drawn from its stationary distribution; trace: the file)."""
        w = self.workload
        self._buffer, self._i, self._base, self._frac = np.zeros(0, dtype=np.int64), 0, now_ns, 0.0
        if w.arrivals == "mmpp":
            self._burst = bool(self.rng.random() < w.burst_mean / (w.burst_mean + w.calm_mean))
            self._switch_ns = now_ns + self._sojourn()
        elif w.arrivals == "trace":
            self._buffer = self.trace_ns[np.searchsorted(self.trace_ns, now_ns):]
        elif w.arrivals == "periodic":
            self._k = _periods_before(now_ns, w.rate)

    def next(self) -> int:
        """The next arrival time (int ns; a very large number when a trace has ended)."""
        if self._i >= len(self._buffer):
            self._refill()
        if self._i >= len(self._buffer):
            return _NEVER
        t = int(self._buffer[self._i])
        self._i += 1
        return t

    def skip(self, until_ns: int, from_ns: int) -> int:
        """Count the arrivals in [from_ns, until_ns) without generating them one by one, and
        continue the stream at ``until_ns``. ``from_ns`` is the time the caller has reached (the
        arrival it just took is not counted here)."""
        w = self.workload
        span = max(0, until_ns - from_ns)
        if w.arrivals == "poisson":
            count = int(self.rng.poisson(w.rate * span / SECOND))
        elif w.arrivals == "periodic":
            count = max(0, _periods_before(until_ns, w.rate) - _periods_before(from_ns, w.rate))
        elif w.arrivals == "trace":  # the rows not yet taken (same-instant rows included), then on
            count = int(np.searchsorted(self._buffer[self._i:], until_ns))
            self._i += count
            return count
        else:  # mmpp: the arrivals already drawn, then Poisson counts per stretch of the chain
            rest = self._buffer[self._i:]
            before = int(np.searchsorted(rest, until_ns))
            count = int(np.count_nonzero(rest[:before] >= from_ns))
            if self._base >= until_ns:  # drawn past the interval already: go on from the buffer
                self._i += before
                return count
            t = max(from_ns, self._base)  # the chain's state is known from _base on
            while self._switch_ns <= t:
                self._burst = not self._burst
                self._switch_ns += self._sojourn()
            while t < until_ns:
                end = min(self._switch_ns, until_ns)
                count += int(self.rng.poisson(self._rate() * (end - t) / SECOND))
                t = end
                if t == self._switch_ns:
                    self._burst = not self._burst
                    self._switch_ns += self._sojourn()
            burst, switch = self._burst, self._switch_ns
            self.restart(until_ns)
            self._burst, self._switch_ns = burst, switch  # the chain goes on where it was
            return count
        self.restart(until_ns)
        return count

    # --- generation ------------------------------------------------------------------------
    def _rate(self) -> float:
        return self.workload.burst_rate if self._burst else self.workload.rate

    def _sojourn(self) -> int:
        w = self.workload
        return max(1, round(self.rng.exponential(w.burst_mean if self._burst else w.calm_mean)))

    def _refill(self) -> None:
        w = self.workload
        if w.arrivals == "trace":
            return
        if w.arrivals == "periodic":
            self._buffer = np.array([min(_periodic_time(k, w.rate), _NEVER) for k in range(self._k, self._k + _CHUNK)],
                                    dtype=np.int64)
            self._k += _CHUNK
            self._i = 0
            return
        if w.arrivals == "poisson":
            self._buffer = self._poisson_chunk(w.rate)
            self._i = 0
            return
        times: list[np.ndarray] = []  # mmpp: Poisson within each constant-rate stretch
        while not times:
            expected = self._rate() * (self._switch_ns - self._base) / SECOND  # arrivals left in this stretch
            chunk = self._poisson_chunk(self._rate(), min(_CHUNK, 16 + int(2 * expected)))
            keep = chunk[chunk < self._switch_ns]
            times.append(keep)
            if len(keep) < len(chunk):  # the state changes first: restart the gaps at the switch
                self._base, self._frac = self._switch_ns, 0.0
                self._burst = not self._burst
                self._switch_ns += self._sojourn()
                if not len(keep):
                    times.clear()
        self._buffer, self._i = times[0], 0

    def _poisson_chunk(self, rate: float, size: int = _CHUNK) -> np.ndarray:
        gaps = self.rng.exponential(SECOND / rate, size)
        offsets = self._frac + np.cumsum(gaps)
        whole = np.floor(offsets)
        out = self._base + whole.astype(np.int64)
        self._base = int(out[-1])
        self._frac = float(offsets[-1] - whole[-1])
        return out
