"""The energy/time ledger: every read, pulse, MVM, off-chip transfer and controller step is
charged here, in one place, from one cost model.

Each ``charge_*`` method records energy and counts and returns the duration (integer ns) the
operation takes, which the SimPy process then waits. Energies are summed with ``math.fsum``
so the total is the exact sum of its components whatever the order of charges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["CostModel", "Ledger", "ENERGY_COMPONENTS", "CampaignRecord"]

ENERGY_COMPONENTS = ("initial_programming", "probe_read", "verify_read", "partial_set", "reset",
                     "offchip", "mvm", "controller", "static")


@dataclass(frozen=True)
class CostModel:
    """Durations in integer ns, energies in joules, static power in watts."""

    read_cycle_ns: int
    partial_set_ns: int
    reset_ns: int
    controller_step_ns: int
    mvm_ns: int
    offchip_per_byte_ns: int
    read_per_device_j: float
    partial_set_j: float
    reset_j: float
    mvm_j: float
    offchip_per_byte_j: float
    controller_step_j: float
    static_power_w: float
    channels: int

    def pulse_round_ns(self, partial_set: int, reset: int) -> int:
        """A round's pulses on ``channels`` parallel channels: RESETs first, then partial-SETs."""
        return (-(-reset // self.channels) * self.reset_ns
                + -(-partial_set // self.channels) * self.partial_set_ns)


@dataclass
class CampaignRecord:
    """One tile's part of one correction campaign (a row of campaigns.csv)."""

    campaign: int
    tile: int
    start_ns: int
    end_ns: int = 0
    reads: int = 0  # row reads (probe + verify)
    partial_set: int = 0
    reset: int = 0
    energy: dict[str, float] = field(default_factory=dict)
    devices_corrected: int = 0
    decode_errors: int = 0
    corrected: bool = False
    drift_metric: float = 0.0


@dataclass
class Ledger:
    costs: CostModel
    _energy: dict[str, list[float]] = field(default_factory=lambda: {c: [] for c in ENERGY_COMPONENTS})
    counts: dict[str, int] = field(default_factory=lambda: {
        "probe_row_reads": 0, "probe_devices": 0, "verify_row_reads": 0, "verify_devices": 0,
        "partial_set": 0, "reset": 0, "initial_partial_set": 0, "initial_reset": 0,
        "offchip_bytes": 0, "controller_steps": 0, "mvm": 0})
    campaign: CampaignRecord | None = None  # the record charges also go to, if any

    def _add(self, component: str, joules: float) -> None:
        self._energy[component].append(joules)
        if self.campaign is not None and component != "static":
            self.campaign.energy[component] = self.campaign.energy.get(component, 0.0) + joules

    # --- charges: each returns the operation's duration in ns --------------------------
    def charge_probe(self, row_reads: int, devices_sensed: int) -> int:
        self.counts["probe_row_reads"] += row_reads
        self.counts["probe_devices"] += devices_sensed
        self._add("probe_read", devices_sensed * self.costs.read_per_device_j)
        if self.campaign is not None:
            self.campaign.reads += row_reads
        return row_reads * self.costs.read_cycle_ns

    def charge_pv_round(self, partial_set: int, reset: int, verify_rows: int, verify_devices: int,
                        initial: bool) -> int:
        """One program-and-verify round: its pulses, then the verify read of active devices."""
        c = self.costs
        pulse_j = partial_set * c.partial_set_j + reset * c.reset_j
        verify_j = verify_devices * c.read_per_device_j
        if initial:
            self.counts["initial_partial_set"] += partial_set
            self.counts["initial_reset"] += reset
            self._add("initial_programming", pulse_j + verify_j)
        else:
            self.counts["partial_set"] += partial_set
            self.counts["reset"] += reset
            self.counts["verify_row_reads"] += verify_rows
            self.counts["verify_devices"] += verify_devices
            self._add("partial_set", partial_set * c.partial_set_j)
            self._add("reset", reset * c.reset_j)
            self._add("verify_read", verify_j)
            if self.campaign is not None:
                self.campaign.partial_set += partial_set
                self.campaign.reset += reset
                self.campaign.reads += verify_rows
        return c.pulse_round_ns(partial_set, reset) + verify_rows * c.read_cycle_ns

    def charge_controller(self, steps: int) -> int:
        self.counts["controller_steps"] += steps
        self._add("controller", steps * self.costs.controller_step_j)
        return steps * self.costs.controller_step_ns

    def charge_offchip(self, n_bytes: int) -> int:
        self.counts["offchip_bytes"] += n_bytes
        self._add("offchip", n_bytes * self.costs.offchip_per_byte_j)
        return n_bytes * self.costs.offchip_per_byte_ns

    def charge_static(self, duration_ns: int) -> None:
        self._add("static", self.costs.static_power_w * duration_ns * 1e-9)

    # --- totals ------------------------------------------------------------------------
    def energy(self) -> dict[str, float]:
        """Per component plus ``total`` = fsum of the components."""
        parts = {c: math.fsum(v) for c, v in self._energy.items()}
        parts["total"] = math.fsum(parts.values())
        return parts
