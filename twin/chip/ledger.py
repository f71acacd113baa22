"""What every operation costs (:class:`CostModel`) and the ledger that books it (:class:`Ledger`).

A block asks the cost model for an operation's :class:`Cost` (duration in integer ns, energy per
component in joules, counters), emits it as a :class:`~twin.chip.events.Charge` naming the
campaign and tile it belongs to, and waits the duration. The ledger is an observer of those
charges: it sums each component with ``math.fsum``, so the total is the exact sum of its
components whatever the order of charges. Where each joule and nanosecond is charged:
docs/architecture.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from twin.chip.events import Charge
from twin.chip.parameters import EnergyCosts, PulseChannels, TimingCosts
from twin.params import param

if TYPE_CHECKING:  # the device layer's per-round counts; the ledger needs only their fields
    from twin.device.pv_kernel import RoundCounts

__all__ = ["ENERGY_COMPONENTS", "MAINTENANCE_COMPONENTS", "INFERENCE_COMPONENTS", "COUNTERS", "Cost", "CostModel", "Ledger"]

ENERGY_COMPONENTS = ("initial_programming", "probe_read", "verify_read", "partial_set", "reset",
                     "offchip", "mvm", "digital", "controller", "static")
MAINTENANCE_COMPONENTS = ("probe_read", "verify_read", "partial_set", "reset", "offchip", "controller")
"""Maintenance energy, the one definition (run summary, compare, optimize): everything spent keeping
the weights, i.e. probe and verify reads, pulses, off-chip transfers and controller steps (GDC
reference reads included); not the initial programming, inference (mvm, digital) or static power."""
INFERENCE_COMPONENTS = ("mvm", "digital")
"""Inference energy: the crossbar MVMs and the digital work around them (twin.traffic.service)."""
COUNTERS = ("probe_row_reads", "probe_devices", "verify_row_reads", "verify_devices", "partial_set", "reset",
            "initial_partial_set", "initial_reset", "offchip_bytes", "controller_steps", "mvm",
            "inferences")


@dataclass(frozen=True)
class Cost:
    duration_ns: int
    energy: tuple[tuple[str, float], ...]
    counts: dict[str, int]


@dataclass(frozen=True)
class CostModel:
    """Durations in integer ns, energies in joules, static power in watts."""

    timing: TimingCosts = param(default_factory=TimingCosts)
    energy: EnergyCosts = param(default_factory=EnergyCosts)
    channels: int = param(PulseChannels().channels, ge=1)

    def pulse_round_ns(self, partial_set: int, reset: int) -> int:
        """A round's pulses on ``channels`` parallel channels: RESETs first, then partial-SETs."""
        return (-(-reset // self.channels) * self.timing.reset_pulse
                + -(-partial_set // self.channels) * self.timing.partial_set_pulse)

    def probe(self, row_reads: int, devices_sensed: int) -> Cost:
        return Cost(row_reads * self.timing.read_cycle, (("probe_read", devices_sensed * self.energy.read_per_device),),
                    {"probe_row_reads": row_reads, "probe_devices": devices_sensed})

    def pv_round(self, partial_set: int, reset: int, verify_rows: int, verify_devices: int, initial: bool) -> Cost:
        """One program-and-verify round: its pulses, then the verify read of the active devices."""
        e = self.energy
        duration = self.pulse_round_ns(partial_set, reset) + verify_rows * self.timing.read_cycle
        verify_j = verify_devices * e.read_per_device
        if initial:
            return Cost(duration, (("initial_programming", partial_set * e.partial_set_pulse
                                    + reset * e.reset_pulse + verify_j),),
                        {"initial_partial_set": partial_set, "initial_reset": reset})
        return Cost(duration, (("partial_set", partial_set * e.partial_set_pulse), ("reset", reset * e.reset_pulse),
                               ("verify_read", verify_j)),
                    {"partial_set": partial_set, "reset": reset, "verify_row_reads": verify_rows,
                     "verify_devices": verify_devices})

    def pv_session(self, rounds: RoundCounts, initial: bool) -> tuple[Cost, np.ndarray]:
        """A whole session's rounds (per-round count arrays) as one cost, and each round's
        duration (int64 ns): the same as the sum of :meth:`pv_round` over the rounds."""
        ch, t = self.channels, self.timing
        durations = (-(-rounds.reset // ch) * t.reset_pulse + -(-rounds.partial_set // ch) * t.partial_set_pulse
                     + rounds.verify_rows * t.read_cycle).astype(np.int64)
        total = self.pv_round(int(rounds.partial_set.sum()), int(rounds.reset.sum()), int(rounds.verify_rows.sum()),
                              int(rounds.verify_devices.sum()), initial)
        return Cost(int(durations.sum()), total.energy, total.counts), durations

    def controller(self, steps: int) -> Cost:
        return Cost(steps * self.timing.controller_step, (("controller", steps * self.energy.controller_step),),
                    {"controller_steps": steps})

    def offchip(self, n_bytes: int) -> Cost:
        return Cost(n_bytes * self.timing.offchip_per_byte, (("offchip", n_bytes * self.energy.offchip_per_byte),),
                    {"offchip_bytes": n_bytes})

    def static(self, duration_ns: int) -> Cost:
        return Cost(0, (("static", self.energy.static_power * duration_ns * 1e-9),), {})


@dataclass
class Ledger:
    """Books every :class:`Charge` (attach it to the chip's bus): energy per component, counters."""

    _energy: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in ENERGY_COMPONENTS})
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))

    def __call__(self, event: Charge) -> None:
        for component, joules in event.energy:
            self._energy[component].append(joules)
        for counter, n in event.counts.items():
            self.counts[counter] += n

    def energy(self) -> dict[str, float]:
        """Per component plus ``total`` = fsum of the components."""
        parts = {c: math.fsum(v) for c, v in self._energy.items()}
        parts["total"] = math.fsum(parts.values())
        return parts

    def maintenance_j(self) -> float:
        return maintenance_energy(self.energy())


def maintenance_energy(energy_j: dict[str, float]) -> float:
    """Maintenance energy of a run's ``energy_j`` (summary.json), by :data:`MAINTENANCE_COMPONENTS`."""
    return math.fsum(energy_j[c] for c in MAINTENANCE_COMPONENTS)
