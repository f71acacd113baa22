"""From the engine's request records to the run's traffic figures (summary.json ``traffic``).

Full mode: every request of the run was simulated and counts once. Windowed mode: requests
arriving in the counted part of a maintenance or power window count once (those stretches were
simulated whole); requests in the counted part of a steady-state window stand for the rest of
the run, each weighted by (run time outside maintenance windows) / (counted steady time);
warm-up arrivals count zero. Percentiles are then weighted quantiles (estimates) and the maximum
is the largest simulated latency, a lower bound on the run's (docs/traffic.md, "Windows").
"""

from __future__ import annotations

import math

import numpy as np

from twin.intervals import intersected, merged, total_ns
from twin.traffic.records import AFFECTED, PREEMPTED, TrafficRecords
from twin.units import SECOND

__all__ = ["request_weights", "weighted_quantile", "traffic_figures"]

PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


def _inside(times: np.ndarray, intervals: list[tuple[int, int]]) -> np.ndarray:
    """Which ``times`` fall in the union of [a, b) ``intervals``."""
    spans = merged(intervals)
    if not spans:
        return np.zeros(times.shape, dtype=bool)
    starts = np.array([a for a, _ in spans], dtype=np.int64)
    ends = np.array([b for _, b in spans], dtype=np.int64)
    k = np.searchsorted(starts, times, side="right") - 1
    return (k >= 0) & (times < ends[np.clip(k, 0, None)])


def request_weights(records: TrafficRecords, duration_ns: int, windowed: bool) -> tuple[np.ndarray, dict]:
    """Each simulated request's weight in the run totals, and the window bookkeeping."""
    arrival = np.frombuffer(records.arrival, dtype=np.int64)
    if not windowed:
        return np.ones(arrival.shape), {"mode": "full", "simulated_s": duration_ns / SECOND, "coverage": 1.0}
    maintenance, steady = records.counted["maintenance"], records.counted["steady"]
    c_m = total_ns(maintenance)
    c_s = total_ns(steady) - total_ns(intersected(steady, maintenance))
    weights = np.zeros(arrival.shape)
    in_m = _inside(arrival, maintenance)
    in_s = _inside(arrival, steady) & ~in_m
    weights[in_m] = 1.0
    steady_weight = (duration_ns - c_m) / c_s if c_s > 0 else math.nan
    weights[in_s] = steady_weight
    simulated = total_ns(records.simulated)
    info = {"mode": "windowed", "simulated_s": simulated / SECOND, "coverage": simulated / duration_ns,
            "maintenance_windows": len(maintenance), "maintenance_counted_s": c_m / SECOND,
            "steady_windows": len(steady), "steady_counted_s": c_s / SECOND, "steady_weight": steady_weight}
    return weights, info


def weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The smallest value whose weighted cumulative share reaches ``q`` (inverted CDF)."""
    keep = weights > 0
    if not keep.any():
        return math.nan
    order = np.argsort(values[keep], kind="stable")
    v, w = values[keep][order], weights[keep][order]
    cumulative = np.cumsum(w)
    return float(v[min(np.searchsorted(cumulative, q * cumulative[-1]), len(v) - 1)])


def traffic_figures(records: TrafficRecords, duration_ns: int, windowed: bool, in_system_at_end: int) -> dict:
    """Counts, availability by requests, latency and wait (s), throughput, mean number in system."""
    weights, windows = request_weights(records, duration_ns, windowed)
    arrival = np.frombuffer(records.arrival, dtype=np.int64)
    start = np.frombuffer(records.start, dtype=np.int64)
    end = np.frombuffer(records.end, dtype=np.int64)
    flags = np.frombuffer(bytes(records.flags), dtype=np.uint8)
    served = end >= 0
    bulk = sum(count for _, count in records.bulk_drops)  # while off (counted stretches, weight 1)
    arrived = float(weights.sum()) + bulk + in_system_at_end  # those still queued at the end arrived too
    served_w = float(weights[served].sum())
    ok = served & ((flags & AFFECTED) == 0)
    latency = (end - arrival)[served] / SECOND
    wait = (start - arrival)[served] / SECOND
    w_served = weights[served]
    total_w = w_served.sum()
    latency_s = {"mean": float(np.dot(latency, w_served) / total_w) if total_w > 0 else math.nan}
    latency_s |= {name: weighted_quantile(latency, w_served, q) for name, q in PERCENTILES.items()}
    latency_s["max"] = float(latency.max()) if latency.size else math.nan
    latency_s["estimated"] = windowed  # percentiles from windows; max then a lower bound
    return {
        "requests": {"arrived": arrived, "served": served_w, "dropped": float(weights[~served].sum()) + bulk,
                     "preempted": float(weights[(flags & PREEMPTED) > 0].sum()),
                     "simulated": int(arrival.size), "in_system_at_end": in_system_at_end},
        "availability_requests": float(weights[ok].sum()) / arrived if arrived else math.nan,
        "latency_s": latency_s,
        "wait_s": {"mean": float(np.dot(wait, w_served) / total_w) if total_w > 0 else math.nan},
        "throughput_rps": served_w / (duration_ns / SECOND),
        "mean_in_system": records.area_in_system / duration_ns if not windowed else math.nan,
        "windows": windows,
    }
