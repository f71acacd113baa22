"""The workload a chip serves, its power schedule, and how the engine simulates it (no torch, no
simpy: the scenario's ``traffic`` section derives from these dataclasses, field by field).

Every default names its source or says "assumption"; docs/traffic.md explains each choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from twin.intervals import merged
from twin.params import check_bounds, param
from twin.units import DAY, HOUR, MS, SECOND

__all__ = ["Workload", "PowerSchedule", "Windowing", "ArrivalProcess", "MAX_SIMULATED_REQUESTS", "MAX_TRACE_ROWS"]

ArrivalProcess = Literal["poisson", "periodic", "mmpp", "trace"]

MAX_SIMULATED_REQUESTS = 20_000_000
"""Requests the engine may simulate one by one in a run (about 0.5 GB of records at most)."""
MAX_TRACE_ROWS = 5_000_000
"""Timestamps an arrival trace may hold."""


@dataclass(frozen=True)
class Workload:
    """Requests arriving at the chip and how it serves them."""

    arrivals: ArrivalProcess = param("poisson", source="assumption: independent users (Poisson)")
    rate: float = param(1000.0, unit="rate", gt=0,
                        source="assumption: mean request rate (poisson, periodic; mmpp: the calm state)")
    burst_rate: float = param(10_000.0, unit="rate", gt=0, source="assumption: mmpp only, the rate while bursting")
    calm_mean: int = param(10 * SECOND, unit="duration", gt=0, source="assumption: mmpp only, mean calm period")
    burst_mean: int = param(1 * SECOND, unit="duration", gt=0, source="assumption: mmpp only, mean burst")
    trace: Path | None = param(None, source="CSV with a column t_s: arrival times in seconds (arrivals: trace)")
    batch: int = param(1, ge=1, source="assumption: one inference per request")
    queue_capacity: int | None = param(None, ge=0,
                                       source="None = unbounded; requests arriving to a full queue are dropped")
    replicas: int = param(1, ge=1, source="copies of the network on the chip, served from one queue")
    layers: Literal["sequential", "pipelined"] = param(
        "sequential", source="sequential: a request holds its replica's tiles for its whole inference")
    maintenance: Literal["preempt", "wait"] = param(
        "preempt", source="preempt: maintenance interrupts a request (it restarts); wait: for an idle tile")
    energy_scaling: Literal["full", "used"] = param(
        "full", source="full: a partly used tile costs a whole MVM (the published figure is per core)")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.arrivals == "trace" and self.trace is None:
            raise ValueError('"trace": arrivals: trace needs a trace file (a CSV with a column t_s)')
        if self.arrivals != "trace" and self.trace is not None:
            raise ValueError('"trace": only used with arrivals: trace')

    @property
    def mean_rate(self) -> float:
        """Long-run requests per second (for a trace: not known here)."""
        if self.arrivals == "mmpp":
            calm, burst = self.calm_mean, self.burst_mean
            return (self.rate * calm + self.burst_rate * burst) / (calm + burst)
        return self.rate


@dataclass(frozen=True)
class PowerSchedule:
    """When the chip is off: drift goes on, nothing is served or corrected."""

    schedule: Literal["always_on", "daily", "intervals"] = param("always_on", source="assumption")
    on_per_day: int = param(16 * HOUR, unit="duration", gt=0, le=DAY, source="assumption: daily only, hours on")
    day_start: int = param(0, unit="duration", ge=0, source="daily only: when in each day the chip powers on")
    intervals: tuple[tuple[int, int], ...] = param((), source="intervals only: [[start, end], ...] the chip is off")
    off_arrivals: Literal["drop", "hold"] = param("drop", source="requests arriving while off: dropped or held")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.day_start >= DAY:
            raise ValueError('"day_start" must be < 1 d.')
        previous = 0
        for start, end in self.intervals:
            if not start < end:
                raise ValueError(f'"intervals": [{start}, {end}] ns must have start < end.')
            if start < previous:
                raise ValueError('"intervals": must be sorted and must not overlap.')
            previous = end
        if self.intervals and self.schedule != "intervals":
            raise ValueError('"intervals": only used with schedule: intervals')

    def off_intervals(self, duration_ns: int) -> list[tuple[int, int]]:
        """Sorted, disjoint [start, end) off intervals clipped to the run."""
        if self.schedule == "always_on":
            return []
        if self.schedule == "intervals":
            return [(a, min(b, duration_ns)) for a, b in self.intervals if a < duration_ns]
        on = merged([(d * DAY + self.day_start, d * DAY + self.day_start + self.on_per_day)
                      for d in range(-1, duration_ns // DAY + 2)])
        out, cursor = [], 0
        for a, b in on:  # the complement of the on intervals within [0, duration)
            if a > cursor:
                out.append((cursor, min(a, duration_ns)))
            cursor = max(cursor, b)
        if cursor < duration_ns:
            out.append((cursor, duration_ns))
        return [(a, b) for a, b in out if a < b]


@dataclass(frozen=True)
class Windowing:
    """Multi-scale simulation: request by request inside windows, aggregated in between."""

    mode: Literal["auto", "full", "windowed"] = param(
        "auto", source="auto: full when the expected requests fit max_requests, else windowed")
    warmup: int = param(10 * MS, unit="duration", gt=0,
                        source="assumption: simulated before each window, not counted (>> the queue's relaxation time)")
    tail: int = param(10 * MS, unit="duration", gt=0,
                      source="assumption: kept open after maintenance ends, then until the queue is empty")
    steady: int = param(50, ge=1, source="assumption: steady-state windows, one per equal stretch of the run")
    length: int = param(1 * SECOND, unit="duration", gt=0, source="assumption: the counted part of a steady window")
    max_requests: int = param(MAX_SIMULATED_REQUESTS, ge=1, le=MAX_SIMULATED_REQUESTS,
                              source="bound on requests simulated one by one")

    def __post_init__(self) -> None:
        check_bounds(self)
