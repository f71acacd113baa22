"""The chip: tiles, pulse generator, identity probe and controller as SimPy processes.

``Chip`` assembles the hardware blocks around one device state, runs the deployment-time
initial programming through the same program-and-verify loop as corrections, then runs the
controller firmware (``firmware_model``) and the accuracy checkpoints side by side. The
firmware only ever receives probe readings and program reports.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import simpy
import torch

from firmware_model.controller import Controller
from firmware_model.interface import (FirmwareConfig, Halt, OffchipData, OffchipRead, Probe, Program, TileLayout,
                                      Wait)
from firmware_model.policies import Policy
from twin.toolchain.readout import Deployment, PeripheryConfig, accuracy_of, read_used, readback_weights
from twin.chip.ledger import CampaignRecord, CostModel, Ledger
from twin.chip.probe import IdentityProbe
from twin.device.program_verify import PulseParameters
from twin.chip.pulse_generator import PulseGenerator
from twin.chip.tile import CrossbarTile

__all__ = ["CountingEnvironment", "Chip", "CheckpointRecord", "stream", "firmware_config"]


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes (reported as ``events``)."""

    def __init__(self, initial_time: int = 0) -> None:
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


def stream(seed: int, name: str) -> torch.Generator:
    """An independent generator per purpose, so that e.g. evaluation never shifts chip draws."""
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def firmware_config(deployment: Deployment) -> FirmwareConfig:
    """The firmware's stored configuration: layout and reference levels, no weight values."""
    mapping = deployment.mapping
    g = mapping.geometry
    cells = g.rows * g.cols
    weight_cells = np.zeros((mapping.n_tiles, cells), dtype=bool)
    for layer in mapping.layers.values():
        flat = layer.device_pos.ravel()
        weight_cells[flat // g.devices_per_tile, flat % g.devices_per_tile] = True
    ref_cells = mapping.reference_pos[0] % g.devices_per_tile
    tiles = tuple(TileLayout(t, g.rows, g.cols, weight_cells[t].reshape(g.rows, g.cols), ref_cells.copy(),
                             mapping.reference_level.copy()) for t in range(mapping.n_tiles))
    return FirmwareConfig(mapping.levels, deployment.devices.g_max_us, tiles)


@dataclass
class CheckpointRecord:
    t_ns: int
    accuracy: float
    accuracy_std: float
    campaigns: int
    pulses: int
    energy_j: float


@dataclass
class Chip:
    env: CountingEnvironment
    deployment: Deployment
    controller: Controller
    costs: CostModel
    pulse_params: PulseParameters
    seed: int
    x_test: torch.Tensor
    y_test: torch.Tensor
    checkpoint_times_ns: list[int]
    duration_ns: int
    gdc: bool = False
    accuracy_samples: int = 1
    periphery: PeripheryConfig = field(default_factory=PeripheryConfig)
    granularity: str = "campaign"
    progress: Callable[[int], None] | None = None
    digital_accuracy: float = float("nan")  # the float network's test accuracy, for reports

    def __post_init__(self) -> None:
        devices = self.deployment.devices
        self.ledger = Ledger(self.costs)
        g = self.deployment.mapping.geometry
        self.tiles = [CrossbarTile(self.env, t, g.rows, g.cols) for t in range(self.deployment.mapping.n_tiles)]
        self.probe = IdentityProbe(self.env, devices, self.ledger, stream(self.seed, "probe"))
        self.pulse_generator = PulseGenerator(self.env, devices, self.ledger, self.pulse_params,
                                              self.costs.channels, stream(self.seed, "programming"),
                                              self.granularity)
        self.eval_generator = stream(self.seed, "evaluation")
        self.used = self.deployment.used_devices()
        self.offchip_copy = devices.target_level.clone()  # the weights as deployed, kept off the chip
        self.tile_used = [self.used[(self.used >= t.first_device) & (self.used < t.first_device + t.devices_per_tile)]
                          - t.first_device for t in self.tiles]  # local indices of weight + reference devices
        self.campaign_records: list[CampaignRecord] = []
        self.checkpoints: list[CheckpointRecord] = []
        self.campaigns = 0
        self.deployed_at_ns = 0

    # --- processes ----------------------------------------------------------------------
    def run(self) -> None:
        """The whole deployment: program the chip, then correct and measure until the end."""
        self.start()
        self.env.run(until=self.duration_ns)
        self.finish()

    def start(self) -> None:
        programming = self.env.process(self._initial_programming())
        self.env.process(self._controller(programming))
        self.env.process(self._checkpoints())

    def finish(self) -> None:
        """Close the deployment: a checkpoint at exactly the end time (SimPy's ``run(until)``
        stops before events at that instant) is measured on the final state; static power."""
        for _ in self.checkpoint_times_ns[len(self.checkpoints):]:
            self.checkpoints.append(self._measure())
        self.ledger.charge_static(self.duration_ns)

    # --- snapshots: the chip's whole state at a campaign boundary ----------------------
    def snapshot(self) -> bytes:
        """Everything needed to rebuild the processes later (SimPy generators cannot be pickled).

        Only between campaigns: the controller idle, no tile busy, no campaign record open.
        """
        if self.controller.state.value != "IDLE" or self.ledger.campaign is not None or self.deployed_at_ns == 0:
            raise RuntimeError("a snapshot is only possible between correction campaigns")
        if any(tile.port.count for tile in self.tiles):
            raise RuntimeError("a snapshot is only possible while no tile is busy")
        d = self.deployment.devices
        state = {
            "now": self.env.now, "events": self.env.events_processed,
            "devices": {k: getattr(d, k).clone() for k in ("target_level", "g_prog", "nu", "t_prog_ns")},
            "generators": {"probe": self.probe.generator.get_state(),
                           "programming": self.pulse_generator.generator.get_state(),
                           "evaluation": self.eval_generator.get_state()},
            "pulse_count": self.pulse_generator.pulse_count.clone(),
            "initial_pulse_count": self.pulse_generator.initial_pulse_count.clone(),
            "busy": [list(tile.busy) for tile in self.tiles],
            "controller": self.controller, "ledger": self.ledger,
            "campaign_records": self.campaign_records, "checkpoints": self.checkpoints,
            "campaigns": self.campaigns, "deployed_at_ns": self.deployed_at_ns,
        }
        return pickle.dumps(state)

    def restore(self, blob: bytes) -> None:
        """Load a snapshot into this freshly built chip (same scenario) and restart its processes."""
        state = pickle.loads(blob)
        self.env = CountingEnvironment(initial_time=state["now"])
        self.env.events_processed = state["events"]
        d = self.deployment.devices
        for key, value in state["devices"].items():
            setattr(d, key, value)
        self.controller, self.ledger = state["controller"], state["ledger"]
        self.campaign_records, self.checkpoints = state["campaign_records"], state["checkpoints"]
        self.campaigns, self.deployed_at_ns = state["campaigns"], state["deployed_at_ns"]
        g = self.deployment.mapping.geometry
        self.tiles = [CrossbarTile(self.env, t, g.rows, g.cols, busy) for t, busy in enumerate(state["busy"])]
        generators = {name: torch.Generator() for name in state["generators"]}
        for name, gen in generators.items():
            gen.set_state(state["generators"][name])
        self.probe = IdentityProbe(self.env, d, self.ledger, generators["probe"])
        self.pulse_generator = PulseGenerator(self.env, d, self.ledger, self.pulse_params, self.costs.channels,
                                              generators["programming"], self.granularity)
        self.pulse_generator.pulse_count = state["pulse_count"]
        self.pulse_generator.initial_pulse_count = state["initial_pulse_count"]
        self.eval_generator = generators["evaluation"]
        self.env.process(self._controller(None))
        self.env.process(self._checkpoints())

    def _initial_programming(self) -> Generator[simpy.Event, None, None]:
        """Deployment: every weight and reference device programmed from RESET, tile by tile."""
        devices = self.deployment.devices
        for tile, local in zip(self.tiles, self.tile_used):
            levels = devices.target_level[tile.global_index(local)].numpy()
            yield from self.pulse_generator.program(tile, local.numpy(), levels, initial=True)
        self.deployed_at_ns = self.env.now

    def _controller(self, programming: simpy.Process | None) -> Generator[simpy.Event, None, None]:
        if programming is not None:
            yield programming
        observation = None
        while True:
            mark = len(self.controller.trace)
            command = self.controller.step(self.env.now, observation)
            self._record_decisions()
            steps = self.controller.steps_since(mark)
            if steps:
                yield self.env.timeout(self.ledger.charge_controller(steps))
            observation = None
            if isinstance(command, Halt):
                return  # the policy schedules nothing more
            if isinstance(command, Wait):
                self.ledger.campaign = None
                yield self.env.timeout(max(0, command.until_ns - self.env.now))
            elif isinstance(command, Probe):
                self.campaigns = self.controller.campaigns
                record = CampaignRecord(self.campaigns, command.tile, self.env.now)
                self.campaign_records.append(record)
                self.ledger.campaign = record
                observation = yield from self.probe.probe(self.tiles[command.tile], self.tile_used[command.tile])
                record.end_ns = self.env.now
            elif isinstance(command, Program):
                observation = yield from self.pulse_generator.program(
                    self.tiles[command.tile], command.devices, command.levels)
                self.ledger.campaign.end_ns = self.env.now
            elif isinstance(command, OffchipRead):
                if not self.controller.policy.uses_offchip:
                    raise RuntimeError(f"policy {self.controller.policy.name!r} did not declare off-chip reads")
                yield self.env.timeout(self.ledger.charge_offchip(command.n_bytes))
                tile = self.tiles[command.tile]
                copy = self.offchip_copy[tile.first_device:tile.first_device + tile.devices_per_tile]
                observation = OffchipData(command.tile, copy.numpy().copy())

    def _record_decisions(self) -> None:
        """Score the firmware's decoding against the truth (never shown to the firmware)."""
        truth = self.deployment.devices.target_level
        for decision in self.controller.decisions:
            tile = self.tiles[decision.tile]
            local = self.tile_used[decision.tile]
            decoded = torch.from_numpy(decision.assigned)[local]
            errors = int((decoded.to(torch.int16) != truth[tile.global_index(local)]).sum())
            record = self.ledger.campaign
            if record is not None and record.tile == decision.tile:
                record.decode_errors += errors
                record.devices_corrected += int(decision.devices.size)
                record.corrected = decision.corrected
                record.drift_metric = float(decision.decoded.drift_metric)
        self.controller.decisions.clear()

    def _checkpoints(self) -> Generator[simpy.Event, None, None]:
        for t_ns in self.checkpoint_times_ns[len(self.checkpoints):]:  # resumes after a restore
            yield self.env.timeout(t_ns - self.env.now)
            self.checkpoints.append(self._measure())
            if self.progress is not None:
                self.progress(self.env.now)

    def _measure(self) -> CheckpointRecord:
        """Accuracy now: ``accuracy_samples`` independent reads of the chip as it stands."""
        if self.gdc:
            # GDC refresh: the reference rows of every tile are read (charged, not blocking).
            g = self.deployment.mapping.geometry
            for _ in self.tiles:
                self.ledger.charge_probe(2 * g.reference_rows, 2 * g.reference_cells)
        samples = []
        for _ in range(self.accuracy_samples):
            g_read = read_used(self.deployment, self.env.now, self.eval_generator, self.used)
            weights = readback_weights(self.deployment, g_read, self.gdc)
            samples.append(accuracy_of(self.deployment, weights, self.x_test, self.y_test, self.periphery,
                                       self.eval_generator))
        std = float(np.std(samples, ddof=1)) if len(samples) > 1 else 0.0
        counts = self.ledger.counts
        return CheckpointRecord(self.env.now, float(np.mean(samples)), std, self.campaigns,
                                counts["partial_set"] + counts["reset"], self.ledger.energy()["total"])

    # --- results ------------------------------------------------------------------------
    def availability(self) -> float:
        """Fraction of time at least one complete copy of the network can serve (one copy here:
        every tile of it must be free)."""
        from twin.chip.tile import union_length
        busy = [interval for tile in self.tiles for interval in tile.busy]
        return 1.0 - union_length(busy, 0, self.duration_ns) / self.duration_ns

    def longest_unavailability_ns(self) -> int:
        merged: list[list[int]] = []
        for a, b in sorted(i for tile in self.tiles for i in tile.busy):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return max((b - a for a, b in merged), default=0)


def build_controller(deployment: Deployment, policy: Policy, decoder: str, correction_tolerance: float,
                     max_retries: int) -> Controller:
    return Controller(firmware_config(deployment), policy, decoder, correction_tolerance, max_retries)
