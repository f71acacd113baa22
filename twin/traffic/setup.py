"""Everything a run needs to build its traffic engine once the SimPy environment exists."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simpy

from twin.chip.events import EventBus
from twin.seeding import named_seed
from twin.traffic.engine import TrafficEngine
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.service import ServiceModel

__all__ = ["TrafficSetup", "traffic_rng"]


def traffic_rng(seed: int, name: str = "traffic") -> np.random.Generator:
    """The named, seeded generator of the arrivals and window placement (never global state)."""
    return np.random.default_rng(named_seed(seed, name))


@dataclass(frozen=True)
class TrafficSetup:
    service: ServiceModel
    workload: Workload
    power: PowerSchedule
    windowing: Windowing
    windowed: bool
    trace_ns: np.ndarray | None = None

    def engine(self, env: simpy.Environment, bus: EventBus, duration_ns: int, tiles_per_replica: int,
               seed: int) -> TrafficEngine:
        return TrafficEngine(env, self.service, self.workload, self.power, self.windowing, duration_ns,
                             tiles_per_replica, traffic_rng(seed), self.trace_ns, bus, self.windowed)
