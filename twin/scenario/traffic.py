"""The scenario's ``traffic`` section: the workload, the power schedule and the simulation windows
(fields, defaults and sources: ``twin.traffic.parameters``; meaning: docs/traffic.md)."""

from __future__ import annotations

from pathlib import Path
import numpy as np
from pydantic import Field, field_validator

from twin.scenario.derive import Int, field_error, section
from twin.scenario.loader import absolute_path
from twin.scenario.quantities import Duration
from twin.traffic.arrivals import read_trace
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.units import SECOND, duration_label

__all__ = ["PowerConfig", "WindowsConfig", "TrafficConfig", "check_traffic"]

PowerConfig = section("PowerConfig", PowerSchedule, module=__name__,
                      annotations={"intervals": tuple[tuple[Duration, Duration], ...]})
WindowsConfig = section("WindowsConfig", Windowing, module=__name__)
_TrafficBase = section(
    "_TrafficBase", Workload, module=__name__, annotations={"queue_capacity": Int | None},
    extra={"power": (PowerConfig, Field(default_factory=PowerConfig)),
           "windows": (WindowsConfig, Field(default_factory=WindowsConfig))})


class TrafficConfig(_TrafficBase):
    """Inference requests served by the chip (docs/traffic.md)."""

    @field_validator("trace")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else absolute_path(value, Path.cwd())

    def trace_ns(self) -> np.ndarray | None:
        return None if self.trace is None else read_trace(self.trace)

    def expected_requests(self, duration_ns: int) -> float:
        """Requests arriving over the run (a trace: its rows within the run)."""
        if self.arrivals == "trace":
            return float(np.searchsorted(self.trace_ns(), duration_ns))
        workload = Workload(**{k: getattr(self, k) for k in ("arrivals", "rate", "burst_rate", "calm_mean",
                                                             "burst_mean")})
        return workload.mean_rate * duration_ns / SECOND

    def windowed(self, duration_ns: int) -> bool:
        """Simulate in windows? ``auto``: when the whole run would exceed ``max_requests``."""
        mode = self.windows.mode
        if mode == "auto":
            return self.expected_requests(duration_ns) > self.windows.max_requests
        return mode == "windowed"


def check_traffic(traffic: TrafficConfig, duration_ns: int) -> None:
    """What the traffic makes the run do, bounded before it runs (field errors, at validate time)."""
    if traffic.arrivals == "trace":
        if not traffic.trace.is_file():
            raise field_error("traffic.trace", f"{traffic.trace} does not exist (a CSV with a column t_s)")
        try:
            traffic.trace_ns()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise field_error("traffic.trace", str(exc)) from None
    limit = traffic.windows.max_requests
    expected = traffic.expected_requests(duration_ns)
    windows = traffic.windows
    if traffic.windowed(duration_ns):
        if traffic.arrivals == "trace":
            raise field_error("traffic.windows.mode", "a trace is simulated whole (mode: full); "
                              "windows need a stationary arrival process")
        span = windows.warmup + windows.length
        if windows.steady * span > duration_ns // 10:
            raise field_error("traffic.windows.steady", f"{windows.steady} windows of {duration_label(span)} "
                              f"cover more than 10% of {duration_label(duration_ns)}: use mode: full")
        around = expected * (windows.warmup + windows.tail) / duration_ns  # added to every maintenance window
        if around > limit // 10:
            raise field_error("traffic.windows.tail", f"warm-up and tail of one maintenance window would simulate "
                              f"about {around:,.0f} requests, more than a tenth of max_requests = {limit:,}")
        steady = expected * windows.steady * span / duration_ns
        if steady > limit // 2:
            raise field_error("traffic.windows.length", f"the steady windows alone would simulate about "
                              f"{steady:,.0f} requests, more than half of max_requests = {limit:,}")
    elif expected > limit:
        raise field_error("traffic.windows.mode", f"a full simulation of {duration_label(duration_ns)} would "
                          f"simulate about {expected:,.0f} requests, more than max_requests = {limit:,}: "
                          "use mode: windowed (or auto)")
    power = PowerSchedule(**{k: getattr(traffic.power, k) for k in PowerConfig.model_fields} | {
        "intervals": tuple(tuple(i) for i in traffic.power.intervals)})
    off = power.off_intervals(duration_ns)
    if traffic.arrivals == "mmpp":
        simulated = duration_ns if not traffic.windowed(duration_ns) else \
            windows.steady * (windows.warmup + windows.length) + sum(b - a for a, b in off)  # outages: in windows
        switches = 2 * simulated / (traffic.calm_mean + traffic.burst_mean)
        if switches > limit:
            raise field_error("traffic.calm_mean", f"the burst process would change state about {switches:,.0f} "
                              f"times in the simulated time, more than max_requests = {limit:,}: use longer "
                              "calm_mean / burst_mean")
    if off and power.off_arrivals == "hold" and traffic.queue_capacity is None and traffic.arrivals != "trace":
        longest = max(b - a for a, b in off)
        held = expected * longest / duration_ns
        if held > limit // 10:
            raise field_error("traffic.power.off_arrivals", f"holding requests over a {duration_label(longest)} "
                              f"outage queues about {held:,.0f} of them: set traffic.queue_capacity")

