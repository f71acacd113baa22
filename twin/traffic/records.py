"""What the traffic engine records about every simulated request (read by twin.traffic.metrics)."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

__all__ = ["TrafficRecords", "AFFECTED", "PREEMPTED"]

AFFECTED, PREEMPTED = 1, 2  # request flags: waited on maintenance or power-off; preempted at least once


@dataclass
class TrafficRecords:
    """Every simulated request (int ns; ``end`` -1 for a dropped one) plus bulk-counted drops."""

    arrival: array = field(default_factory=lambda: array("q"))
    start: array = field(default_factory=lambda: array("q"))  # service start (last stage), -1 if dropped
    end: array = field(default_factory=lambda: array("q"))
    flags: bytearray = field(default_factory=bytearray)  # bit 0: waited on maintenance; bit 1: preempted
    bulk_drops: list[tuple[int, int]] = field(default_factory=list)  # (time, count) skipped while off
    preemptions: int = 0
    wasted_requests: float = 0.0  # requests' worth of work lost to preemption
    area_in_system: int = 0  # integral of requests in the system over time (request * ns)
    counted: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: {"maintenance": [], "steady": []})
    simulated: list[tuple[int, int]] = field(default_factory=list)  # windows the source ran in
