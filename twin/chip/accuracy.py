"""Test accuracy at the evaluation times: of the chip as it runs (:class:`AccuracyObserver`) and
of the same programming left alone (:class:`UnmaintainedBaselines`), so every run shows its
policy against doing nothing.

Both are the experimenter, not the chip: they hold the test set, read devices without
committing the read (the devices' noise history is untouched) and draw from their own streams.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from twin.chip.events import Checkpoint, Deployed, EventBus
from twin.chip.ledger import Ledger
from twin.device.pcm import DeviceArray
from twin.toolchain.readout import Deployment, PeripheryConfig, accuracy_of, readback_weights

__all__ = ["CheckpointRow", "AccuracyObserver", "BaselineRow", "UnmaintainedBaselines", "read_network"]


def read_network(devices: DeviceArray, used: torch.Tensor, n_devices: int, t_ns: int,
                 generator: torch.Generator) -> torch.Tensor:
    """One uncommitted read of the network's devices ``used`` (of replica 0, the first
    ``n_devices``), in a buffer of the network's size: other devices read as 0 (a chip filled with
    synthetic weights never allocates a read of its 8.4 M devices here)."""
    values = devices.read(t_ns, generator, index=used, commit=False)
    g_read = torch.zeros(n_devices, dtype=torch.float32, device=values.device)
    g_read[used.to(values.device)] = values
    return g_read


def _mean_std(values: list[float]) -> tuple[float, float]:
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


@dataclass
class CheckpointRow:
    t_ns: int
    accuracy: float
    accuracy_std: float
    campaigns: int
    pulses: int
    energy_j: float


class AccuracyObserver:
    """Test accuracy at each checkpoint: ``samples`` independent reads of the chip as it stands.

    ``readout`` carries the network's structure and biases (crossbar weights stripped), the
    encoding and the reference-cell targets for GDC; the test set lives here only. ``gdc``:
    whether the MVM output is drift-compensated (default: as the chip runs); a second observer
    with the other setting measures the same programming both ways.
    """

    def __init__(self, chip, ledger: Ledger, readout: Deployment, x_test: torch.Tensor, y_test: torch.Tensor,
                 generator: torch.Generator, samples: int, periphery: PeripheryConfig,
                 progress: Callable[[int], None] | None = None, gdc: bool | None = None) -> None:
        self.chip = chip
        self.gdc = chip.gdc if gdc is None else gdc
        self.ledger = ledger
        self.readout = readout
        self.x_test, self.y_test = x_test, y_test
        self.generator = generator
        self.samples = samples
        self.periphery = periphery
        self.progress = progress
        self.used = readout.used_devices()
        self.rows: list[CheckpointRow] = []

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._measure, Checkpoint)

    def _measure(self, event: Checkpoint) -> None:
        values = []
        for _ in range(self.samples):
            g_read = read_network(self.chip.devices, self.used, self.readout.mapping.n_devices, event.t_ns,
                                  self.generator)
            weights = readback_weights(self.readout, g_read, self.gdc)
            values.append(accuracy_of(self.readout, weights, self.x_test, self.y_test, self.periphery,
                                      self.generator))
        counts = self.ledger.counts
        self.rows.append(CheckpointRow(event.t_ns, *_mean_std(values), self.chip.campaigns,
                                       counts["partial_set"] + counts["reset"], self.ledger.energy()["total"]))
        if self.progress is not None:
            self.progress(event.t_ns)

    def state(self) -> dict:
        return {"generator": self.generator.get_state(), "rows": copy.deepcopy(self.rows)}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.rows = copy.deepcopy(state["rows"])


@dataclass
class BaselineRow:
    t_ns: int
    left_alone: float  # never corrected, no GDC: mean over the samples
    gdc_only: float  # never corrected, GDC on


class UnmaintainedBaselines:
    """The same programming never corrected, without and with GDC, at every checkpoint.

    When the first programming ends (:class:`Deployed`) the network's devices of replica 0 are
    copied; the copy is never probed or pulsed, so at each checkpoint it holds exactly what the
    chip would hold had the policy done nothing. Each of ``samples`` reads of it is scored with
    and without GDC (paired: one read, two read-outs). Draws come from ``generator`` alone
    (``evaluation.baselines``), so the run itself draws exactly what it drew without this
    observer. Before the first programming ends the chip is untouched, so it is read directly.
    """

    def __init__(self, chip, readout: Deployment, x_test: torch.Tensor, y_test: torch.Tensor,
                 generator: torch.Generator, samples: int, periphery: PeripheryConfig) -> None:
        self.chip = chip
        self.readout = readout
        self.x_test, self.y_test = x_test, y_test
        self.generator = generator
        self.samples = samples
        self.periphery = periphery
        self.used = readout.used_devices()
        self.devices: DeviceArray | None = None  # the copy, from the end of the first programming
        self.rows: list[BaselineRow] = []

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._deployed, Deployed)
        bus.attach(self._measure, Checkpoint)

    def _deployed(self, event: Deployed) -> None:
        self.devices = self.chip.devices.head_copy(self.readout.mapping.n_devices)

    def _measure(self, event: Checkpoint) -> None:
        devices = self.chip.devices if self.devices is None else self.devices
        plain, gdc = [], []
        for _ in range(self.samples):
            g_read = read_network(devices, self.used, self.readout.mapping.n_devices, event.t_ns, self.generator)
            for values, compensated in ((plain, False), (gdc, True)):
                weights = readback_weights(self.readout, g_read, compensated)
                values.append(accuracy_of(self.readout, weights, self.x_test, self.y_test, self.periphery,
                                          self.generator))
        self.rows.append(BaselineRow(event.t_ns, float(np.mean(plain)), float(np.mean(gdc))))

    def state(self) -> dict:
        shadow = None if self.devices is None else {name: getattr(self.devices, name).cpu().numpy().copy()
                                                    for name in DeviceArray.STATE_FIELDS}
        return {"generator": self.generator.get_state(), "rows": copy.deepcopy(self.rows), "devices": shadow}

    def load_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.rows = copy.deepcopy(state["rows"])
        self.devices = None
        if state["devices"] is not None:
            self.devices = self.chip.devices.head_copy(self.readout.mapping.n_devices)
            for name in DeviceArray.STATE_FIELDS:
                setattr(self.devices, name, torch.from_numpy(state["devices"][name]).to(self.chip.devices.device))
