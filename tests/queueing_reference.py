"""An independent reference for the traffic tests: a plain Lindley-recursion queue and formulas.

Written from the queueing model alone (numpy and the standard library; no simpy, nothing from
`twin`), so the twin's SimPy traffic engine can be checked against it. Theory, sources and the
tolerance rule: docs/traffic-theory.md.

Model: one FIFO server, deterministic service time s, integer-nanosecond clock. The server is
OFF during given [start, end) intervals whatever the queue holds (clock-driven maintenance
windows). Only the preemptive-restart discipline is implemented: a request in service when an
off interval begins loses its service and starts again from scratch when the interval ends.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

NS_PER_S = 1_000_000_000
_CHUNK = 1 << 16  # requests converted to Python ints at a time (bounds memory for long runs)


# ---------------------------------------------------------------------------------- arrivals
def poisson_arrivals(rate_per_s: float, n: int, seed: int) -> np.ndarray:
    """n Poisson arrival times (int64 ns, non-decreasing, first one after 0).

    Exponential gaps from np.random.default_rng(seed), accumulated in float64 nanoseconds and
    floored. For n <= 2e6 and rate >= 1e-3 /s the accumulated rounding error stays far below one
    mean gap.
    """
    if not rate_per_s > 0:
        raise ValueError(f"rate_per_s must be > 0, got {rate_per_s}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    gaps_ns = rng.exponential(NS_PER_S / rate_per_s, int(n))
    times = np.floor(np.cumsum(gaps_ns))
    if n and times[-1] >= 2.0**63:
        raise OverflowError("arrival times overflow int64 nanoseconds")
    return times.astype(np.int64)


def periodic_windows(
    length_ns: int, period_ns: int, horizon_ns: int, phase_ns: int = 0
) -> list[tuple[int, int]]:
    """Off intervals [phase + k*period, phase + k*period + length) that start before horizon."""
    if not 0 < length_ns <= period_ns:
        raise ValueError("need 0 < length_ns <= period_ns")
    if phase_ns < 0:
        raise ValueError("phase_ns must be >= 0")
    return [(t, t + length_ns) for t in range(phase_ns, horizon_ns, period_ns)]


# ----------------------------------------------------------------------------- the simulation
def _check_off(off: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    out = [(int(a), int(b)) for a, b in off]
    prev_end = None
    for a, b in out:
        if not a < b:
            raise ValueError(f"off interval ({a}, {b}) is empty or reversed")
        if prev_end is not None and a < prev_end:
            raise ValueError("off intervals must be sorted and non-overlapping")
        prev_end = b
    return out


def lindley_detail(
    arrivals_ns: np.ndarray,
    service_ns: int,
    off: Sequence[tuple[int, int]] = (),
    preempt: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """As `lindley_waits`, plus the number of times each request was preempted (int64)."""
    if not preempt:
        raise NotImplementedError(
            "only preempt=True (clock-driven windows: the server goes off whatever it is doing)"
        )
    s = int(service_ns)
    if s <= 0:
        raise ValueError("service_ns must be > 0")
    arr = np.asarray(arrivals_ns, dtype=np.int64)
    if arr.ndim != 1:
        raise ValueError("arrivals_ns must be one-dimensional")
    if arr.size > 1 and np.any(np.diff(arr) < 0):
        raise ValueError("arrivals_ns must be sorted")
    windows = _check_off(off)
    offs = [a for a, _ in windows] + [math.inf]  # sentinel: no more windows
    offe = [b for _, b in windows] + [math.inf]

    n = arr.size
    start = np.empty(n, dtype=np.int64)
    end = np.empty(n, dtype=np.int64)
    restarts = np.zeros(n, dtype=np.int64)
    j = 0  # first off interval that has not ended by the current candidate start
    free = -(1 << 62)  # departure time of the previous request
    for lo in range(0, n, _CHUNK):
        a_chunk = arr[lo : lo + _CHUNK].tolist()
        st, en, rs = [], [], []
        for a in a_chunk:
            t = a if a > free else free
            k = 0
            while True:
                while offe[j] <= t:
                    j += 1
                ws = offs[j]
                if ws <= t:  # would start inside a window: wait for its end
                    t = offe[j]
                elif ws < t + s:  # a window begins mid-service: lost, restart at its end
                    t = offe[j]
                    k += 1
                else:
                    break
            free = t + s
            st.append(t)
            en.append(free)
            rs.append(k)
        start[lo : lo + len(st)] = st
        end[lo : lo + len(en)] = en
        restarts[lo : lo + len(rs)] = rs
    return start, end, restarts


def lindley_waits(
    arrivals_ns: np.ndarray,
    service_ns: int,
    off: Sequence[tuple[int, int]] = (),
    preempt: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Single FIFO server, deterministic service, server off during the [start, end) in `off`.

    Returns (start_ns, end_ns) per request: its final service start and its departure, int64.
    A request starts at max(arrival, previous departure); if that falls inside an off interval
    it moves to the interval's end; if an interval begins while it is in service
    (start < off_start < start + service) its service is lost and it restarts from scratch at
    the interval's end (again, if the next interval interrupts it). A service that ends exactly
    when an interval begins is not interrupted. `off` must be sorted and non-overlapping.

    wait = start - arrival (includes the time lost to restarts); latency = end - arrival.
    Only preempt=True is implemented (clock-driven windows).
    """
    start, end, _ = lindley_detail(arrivals_ns, service_ns, off, preempt)
    return start, end


# ------------------------------------------------------------------------------------ formulas
def md1_mean_wait(rho: float, service_s: float) -> float:
    """M/D/1 mean wait in queue (Pollaczek-Khinchine, zero service variance), seconds."""
    if not 0 <= rho < 1:
        raise ValueError("need 0 <= rho < 1")
    return rho * service_s / (2.0 * (1.0 - rho))


def window_share(D: float, T: float) -> float:
    """Share of Poisson arrivals that land in a window of length D every T (time share)."""
    return D / T


def window_mean_wait(D: float, T: float) -> float:
    """Mean wait caused by windows of length D every T, light load: (D/T) * (D/2) = D^2/(2T)."""
    return D * D / (2.0 * T)


def window_mean_wait_loaded(
    rho: float, service_s: float, D: float, T: float, refined: bool = True
) -> float:
    """Mean wait in queue (seconds) at load rho with clock-driven windows, preempt mode.

    Fluid approximation (refined=False): W = W_MD1 + (D/T) * D / (2 (1 - rho)).
    refined=True adds the first-order terms in s (derived in docs/traffic-theory.md):
      + (D/T) * [ s * (1 + rho (2 - rho) / (2 (1 - rho)^2)) + W_MD1 ].
    Assumes D >> s, the backlog clears before the next window (D / (1 - rho) < T) and the queue
    relaxes to stationary M/D/1 between windows.
    """
    if not 0 <= rho < 1:
        raise ValueError("need 0 <= rho < 1")
    if D / (1.0 - rho) >= T:
        raise ValueError("the backlog of one window does not clear before the next")
    s = service_s
    w0 = md1_mean_wait(rho, s)
    w = w0 + (D / T) * D / (2.0 * (1.0 - rho))
    if refined:
        w += (D / T) * (s * (1.0 + rho * (2.0 - rho) / (2.0 * (1.0 - rho) ** 2)) + w0)
    return w


def time_availability(off: Sequence[tuple[int, int]], t0: int, t1: int) -> float:
    """Share of [t0, t1) during which the server is not off (intervals must not overlap)."""
    if not t1 > t0:
        raise ValueError("need t1 > t0")
    down = sum(max(0, min(b, t1) - max(a, t0)) for a, b in _check_off(off))
    return 1.0 - down / (t1 - t0)


def time_average_in_system(
    arrivals_ns: np.ndarray, end_ns: np.ndarray, t0: int, t1: int
) -> float:
    """Exact time average over [t0, t1) of the number in system (waiting or in service)."""
    if not t1 > t0:
        raise ValueError("need t1 > t0")
    a = np.clip(np.asarray(arrivals_ns, dtype=np.int64), t0, t1)
    e = np.clip(np.asarray(end_ns, dtype=np.int64), t0, t1)
    return float(np.sum(e - a, dtype=np.float64)) / (t1 - t0)


# ----------------------------------------------------------------------------------- tolerances
def batch_means_se(values: np.ndarray, batches: int = 32) -> float:
    """Standard error of the mean of `values` (in arrival order) from `batches` batch means.

    The remainder (len % batches trailing values) is dropped. Batches must be long compared
    with the correlation time of the series (for windows: several windows per batch).
    """
    v = np.asarray(values, dtype=np.float64)
    if batches < 2:
        raise ValueError("need at least 2 batches")
    m = v.size // batches
    if m < 1:
        raise ValueError(f"{v.size} values cannot fill {batches} batches")
    means = v[: m * batches].reshape(batches, m).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(batches))


def tolerance(expected: float, rel: float, se: float) -> float:
    """Allowed |measured - expected|: max(rel * |expected|, 4 * se)."""
    return max(rel * abs(expected), 4.0 * se)
