"""Fault injection on the chip (docs/faults.md): where the faults sit, the periphery's read errors,
and the experimenter's account of what became of them.

* :func:`inject` places stuck devices and dead tiles (``twin.device.faults.DeviceFaults``, attached
  to the chip's devices) and sets up probe read errors (:class:`ProbeErrors`), each drawing from
  its own named stream (``faults.placement``, ``faults.pulse``, ``faults.probe``), never from the
  streams a run without faults uses.
* :class:`FaultScorer` is an observer, like the scoring observer whose truth it uses: it counts the
  faults the blocks report (``Fault`` events) and, at the end, sets the firmware's marks against
  the injected faults and the original levels. The firmware never sees any of it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from twin.chip.events import Decision, EventBus, Fault
from twin.chip.observers import ScoringObserver
from twin.chip.parameters import FaultParameters
from twin.device.faults import NEVER, DeviceFaults
from twin.device.pcm import DeviceArray
from twin.units import SECOND

__all__ = ["FAULT_STREAMS", "ProbeErrors", "ChipFaults", "inject", "FaultScorer"]

FAULT_STREAMS = ("placement", "pulse", "probe")
"""The named random streams of fault injection (``faults.<name>`` of the run's seed)."""


class ProbeErrors:
    """The periphery's read errors: each device reading of a probe is, with ``probability``, replaced
    by garbage drawn uniformly over the read range [0, g_max]."""

    def __init__(self, probability: float, g_max_us: float, generator: torch.Generator) -> None:
        self.probability = probability
        self.g_max_us = g_max_us
        self.generator = generator

    def corrupt(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The readings as sensed, and which were replaced."""
        hit = torch.rand(values.shape, generator=self.generator) < self.probability
        n = int(hit.sum())
        if n == 0:
            return values, hit
        out = values.clone()
        out[hit] = (torch.rand(n, generator=self.generator) * self.g_max_us).to(values.dtype)
        return out, hit

    def state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


@dataclass
class ChipFaults:
    """The faults of one chip: the plan, the device overlay, the probe's read errors (None: none)."""

    plan: FaultParameters
    devices: DeviceFaults
    probe: ProbeErrors | None
    stuck_low: torch.Tensor  # bool per device
    stuck_high: torch.Tensor  # bool per device

    def state(self) -> dict:
        return {"devices": self.devices.state(), "probe": None if self.probe is None else self.probe.state()}

    def load_state(self, state: dict) -> None:
        self.devices.load_state(state["devices"])
        if self.probe is not None:
            self.probe.load_state(state["probe"])


def inject(plan: FaultParameters, devices: DeviceArray, used: torch.Tensor, devices_per_tile: int,
           generators: dict[str, torch.Generator]) -> ChipFaults:
    """Place ``plan``'s faults on ``devices`` (attached as ``devices.faults``). Stuck devices are
    round(fraction x n) of the ``used`` devices (chip-wide numbers), low and high disjoint;
    ``generators``: one per name of :data:`FAULT_STREAMS`."""
    n = devices.size
    order = used[torch.randperm(used.numel(), generator=generators["placement"])]
    n_low = int(plan.stuck_low_fraction * used.numel() + 0.5)
    n_high = min(int(plan.stuck_high_fraction * used.numel() + 0.5), used.numel() - n_low)
    stuck_low = torch.zeros(n, dtype=torch.bool)
    stuck_high = torch.zeros(n, dtype=torch.bool)
    stuck_low[order[:n_low]] = True
    stuck_high[order[n_low:n_low + n_high]] = True
    stuck_us = torch.where(stuck_high, devices.g_max_us, 0.0).to(torch.float32)
    dead_from = torch.full((n,), NEVER, dtype=torch.int64)
    for tile, at_ns in plan.dead_tiles:
        dead_from[tile * devices_per_tile:(tile + 1) * devices_per_tile] = at_ns
    devices.faults = DeviceFaults(stuck_low | stuck_high, stuck_us, dead_from, plan.pulse_failure_probability,
                                  generators["pulse"])
    probe = None
    if plan.probe_error_probability > 0:
        probe = ProbeErrors(plan.probe_error_probability, devices.g_max_us, generators["probe"])
    return ChipFaults(plan, devices.faults, probe, stuck_low, stuck_high)


class FaultScorer:
    """Counts the injected faults the chip's blocks report and what became of them.

    Probe read errors: each replaced reading of a tile that the firmware then decodes is either a
    misread (a weight device decoded off the level it was last programmed to: lost) or not
    (corrected: decoded right, or a reference cell, which the firmware restores anyway). Failed
    pulses: devices whose program-and-verify had a failed pulse and still converged (corrected).
    What is lost at the end comes from the scoring observer, the holder of the original levels.
    """

    def __init__(self, faults: ChipFaults | None, scoring: ScoringObserver, top_level: int) -> None:
        self.faults = faults
        self.scoring = scoring
        self.top_level = top_level
        self.counts = {"failed_pulses": 0, "probe_read_errors": 0, "recovered_devices": 0, "probe_misreads": 0,
                       "probe_errors_corrected": 0}
        self._pending: dict[int, np.ndarray] = {}  # tile -> local devices its last probe read wrong

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._fault, Fault)
        bus.attach(self._decision, Decision)

    def _fault(self, event: Fault) -> None:
        if event.kind == "probe_read":
            self.counts["probe_read_errors"] += event.count
            self._pending[event.tile] = event.index
        elif event.kind == "pulse":
            self.counts["failed_pulses"] += event.count
            self.counts["recovered_devices"] += event.recovered

    def _decision(self, event: Decision) -> None:
        local = self._pending.pop(event.tile, None)
        if local is None:
            return
        decoded = event.decision.decoded.levels.astype(np.int16)[local]
        wrong = int(self.scoring.misread_of(event.tile, local, decoded).sum())
        self.counts["probe_misreads"] += wrong
        self.counts["probe_errors_corrected"] += int(local.size) - wrong

    def summary(self, faulty: dict[int, set[int]], dead_marked: dict[int, int], devices: int) -> dict:
        """summary.json ``faults``: injected (the twin), detected (the firmware's marks: ``faulty``
        devices per tile, ``dead_marked`` tiles with the time they were marked), corrected and lost
        (the truth). Keys and units: docs/faults.md."""
        plan = self.faults.plan if self.faults is not None else FaultParameters()
        dpt = self.scoring.devices_per_tile
        zeros = np.zeros(devices, dtype=bool)
        low = self.faults.stuck_low.numpy() if self.faults is not None else zeros
        high = self.faults.stuck_high.numpy() if self.faults is not None else zeros
        dead = zeros.copy()
        for tile, _ in plan.dead_tiles:
            dead[tile * dpt:(tile + 1) * dpt] = True
        marked = zeros.copy()
        for tile, local in faulty.items():
            marked[np.fromiter(local, dtype=np.int64, count=len(local)) + tile * dpt] = True
        used = np.zeros(devices, dtype=bool)
        used[self.scoring.used_devices] = True
        lost = self.scoring.lost_to_faults(low, high, dead, self.top_level)
        c = self.counts
        return {
            "injected": {"stuck_low": int((low & used).sum()), "stuck_high": int((high & used).sum()),
                         "dead_tiles": len(plan.dead_tiles), "failed_pulses": c["failed_pulses"],
                         "probe_read_errors": c["probe_read_errors"]},
            "detected": {"faulty_devices": int(marked.sum()), "stuck_devices": int((marked & (low | high)).sum()),
                         "false_alarms": int((marked & ~(low | high) & ~dead).sum()),
                         "dead_tiles": len(dead_marked),
                         "false_dead_tiles": len(set(dead_marked) - {tile for tile, _ in plan.dead_tiles})},
            "corrected": {"pulse_failures": c["recovered_devices"], "probe_read_errors": c["probe_errors_corrected"]},
            "lost": {"stuck_weights": lost["stuck_weights"], "dead_tile_weights": lost["dead_tile_weights"],
                     "probe_misreads": c["probe_misreads"]},
            "dead_tiles": [{"tile": tile, "died_s": at / SECOND, "died_ns": at,
                            "detected_s": None if tile not in dead_marked else dead_marked[tile] / SECOND,
                            "detected_ns": dead_marked.get(tile)} for tile, at in plan.dead_tiles],
        }

    def state(self) -> dict:
        return {"counts": dict(self.counts), "pending": copy.deepcopy(self._pending)}

    def load_state(self, state: dict) -> None:
        self.counts, self._pending = dict(state["counts"]), copy.deepcopy(state["pending"])
