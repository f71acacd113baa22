"""The chip: tiles, identity probe, pulse generator, off-chip memory and the controller as SimPy
processes, each a named block that emits events (``twin.chip.events``).

``Chip`` runs the deployment-time initial programming through the same program-and-verify loop
as corrections, then runs the controller firmware (``firmware_model``) and the experiment's
evaluation clock side by side. The firmware only ever receives probe readings, program reports
and, for policies that declared it, off-chip data. The chip holds no copy of the original
levels: those live in the off-chip memory model (and in the scoring observer attached from
outside), and no test set: that lives in the accuracy observer.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import simpy
import torch

from firmware_model.controller import Controller
from firmware_model.interface import Halt, OffchipData, OffchipRead, Probe, Program, Wait
from twin.chip.events import Charge, Checkpoint, Command, Decision, Deployed, EventBus, StateChange, Waiting
from twin.chip.faults import ChipFaults
from twin.chip.ledger import CostModel
from twin.chip.offchip import OffchipMemory
from twin.chip.probe import IdentityProbe
from twin.chip.pulse_generator import Granularity, PulseGenerator
from twin.chip.tile import CrossbarTile, Service
from twin.device.pcm import DeviceArray
from twin.device.program_verify import PulseParameters
from twin.seeding import named_seed

__all__ = ["CountingEnvironment", "Chip", "ChipLayout", "stream"]


class CountingEnvironment(simpy.Environment):
    """A SimPy environment that counts the events it processes (reported as ``events``)."""

    def __init__(self, initial_time: int = 0) -> None:
        super().__init__(initial_time)
        self.events_processed = 0

    def step(self) -> None:
        self.events_processed += 1
        super().step()


GENERATORS = ("probe", "programming", "programming.kernel")
"""The chip's own streams: probe reads; P&V's initial reads, drift exponents and the round model's
draws; the one-pass P&V kernel's pulses and verify reads (twin.device.pv_kernel)."""


def stream(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """An independent generator per purpose, so that e.g. evaluation never shifts chip draws; on
    the torch ``device`` its draws are made on (a cuda stream differs from the cpu one: the same
    statistics, not the same bytes)."""
    return torch.Generator(device=device).manual_seed(named_seed(seed, name) & (2**63 - 1))


@dataclass(frozen=True)
class ChipLayout:
    """Where the network sits: configuration, not truth (the firmware knows it too)."""

    rows: int
    cols: int
    tiles: int  # tiles built (spare tiles idle)
    mapped_tiles: int  # tiles holding the network, 0 .. mapped_tiles - 1
    used: Sequence[torch.Tensor]  # per mapped tile: local indices of its weight and reference devices
    reference_rows: int
    reference_cells: int

    @property
    def devices_per_tile(self) -> int:
        return 2 * self.rows * self.cols


class Chip:
    """The hardware. Attach observers to ``bus`` before :meth:`run`."""

    def __init__(self, env: CountingEnvironment, layout: ChipLayout, devices: DeviceArray, controller: Controller,
                 costs: CostModel, pulse_params: PulseParameters, seed: int, offchip: OffchipMemory,
                 duration_ns: int, checkpoint_times_ns: Sequence[int], gdc: bool, granularity: Granularity,
                 bus: EventBus | None = None, traffic: Service | None = None,
                 faults: ChipFaults | None = None) -> None:
        self.env = env
        self.layout = layout
        self.devices = devices
        self.controller = controller
        self.costs = costs
        self.pulse_params = pulse_params
        self.seed = seed
        self.duration_ns = duration_ns
        self.checkpoint_times_ns = list(checkpoint_times_ns)
        self.gdc = gdc
        self.granularity = granularity
        self.bus = EventBus() if bus is None else bus
        self.traffic = traffic  # inference traffic (twin.traffic.engine), if the scenario has any
        self.offchip = offchip  # the host's copy of the levels: the chip reads it, holds none itself
        self.faults = faults  # injected faults (docs/faults.md), already placed on the devices; None: none
        self.campaigns = 0  # campaigns that probed a tile
        self.deployed_at_ns = 0
        self.checkpoints_done = 0
        self.controller_halted = False  # the policy scheduled nothing more: its process has ended
        self._build_blocks(env, {name: stream(seed, name, self._generator_device(name)) for name in GENERATORS})

    def _generator_device(self, name: str) -> torch.device | str:
        """The one-pass program-and-verify loop runs on the host; the other streams draw where
        the device model keeps its state."""
        return "cpu" if name == "programming.kernel" else getattr(self.devices, "device", "cpu")

    def _build_blocks(self, env: CountingEnvironment, generators: dict[str, torch.Generator]) -> None:
        lay = self.layout
        self.tiles = [CrossbarTile(env, t, lay.rows, lay.cols, self.bus, self.traffic) for t in range(lay.tiles)]
        self.probe = IdentityProbe(env, self.devices, self.costs, generators["probe"], self.bus,
                                   None if self.faults is None else self.faults.probe)
        self.pulse_generator = PulseGenerator(env, self.devices, self.costs, self.pulse_params,
                                              generators["programming"], self.bus, self.granularity,
                                              generators["programming.kernel"])
        self.offchip.attach(env, self.bus)

    # --- processes ----------------------------------------------------------------------
    def run(self) -> None:
        """The whole deployment: program the chip, then correct and measure until the end."""
        self.start()
        self.env.run(until=self.duration_ns)
        self.finish()

    def start(self) -> None:
        if self.traffic is not None:
            self.traffic.start()
            self.traffic.controller_sleeps(0)  # the deployment itself is the first maintenance
            self.traffic.controller_wakes()
        programming = self.env.process(self._initial_programming())
        self.env.process(self._controller(programming))
        self.env.process(self._checkpoints())

    def finish(self) -> None:
        """Close the deployment: a checkpoint at exactly the end time (SimPy's ``run(until)``
        stops before events at that instant) is taken on the final state; static power."""
        for t_ns in self.checkpoint_times_ns[self.checkpoints_done:]:
            self._checkpoint(t_ns)
        on_ns = self.duration_ns
        if self.traffic is not None:
            on_ns = self.traffic.on_time_ns()  # no static power while the chip is off
            energy, counts = self.traffic.finish()
            self.bus.emit(Charge(self.duration_ns, self.traffic.scope, energy, counts))
        cost = self.costs.static(on_ns)
        self.bus.emit(Charge(self.duration_ns, "chip", cost.energy, cost.counts))

    # --- snapshots: the chip's whole state at a campaign boundary ----------------------
    def state(self, copy: bool = True) -> dict:
        """Everything needed to rebuild the processes later (SimPy generators cannot be pickled).
        Device state as numpy arrays; ``copy=False`` shares the live memory where it can (cpu),
        for a caller that serialises it at once (a checkpoint of 8.4 M devices: no second copy).

        Only between campaigns: the controller idle and no tile busy.
        """
        if self.controller.state.value != "IDLE" or self.deployed_at_ns == 0:
            raise RuntimeError("a snapshot is only possible between correction campaigns")
        if self.traffic is not None:
            raise RuntimeError("snapshots of runs with inference traffic are not supported yet (requests in flight)")
        if any(tile.port.count for tile in self.tiles):
            raise RuntimeError("a snapshot is only possible while no tile is busy")
        d = self.devices
        return {
            "now": self.env.now, "events": self.env.events_processed,
            "devices": {k: _host_array(getattr(d, k), copy) for k in d.STATE_FIELDS},
            "generators": {"probe": self.probe.generator.get_state(),
                           "programming": self.pulse_generator.generator.get_state(),
                           "programming.kernel": self.pulse_generator.rng.get_state()},
            "controller": self.controller, "campaigns": self.campaigns, "deployed_at_ns": self.deployed_at_ns,
            "checkpoints_done": self.checkpoints_done, "controller_halted": self.controller_halted,
            "faults": None if self.faults is None else self.faults.state(),
        }

    def load_state(self, state: dict) -> None:
        """Load :meth:`state` into this freshly built chip (same scenario) and restart its processes."""
        self.env = CountingEnvironment(initial_time=state["now"])
        on = getattr(self.devices, "device", "cpu")
        for key, value in state["devices"].items():
            setattr(self.devices, key, torch.from_numpy(np.array(value, copy=True)).to(on))
        self.controller = state["controller"]
        self.campaigns, self.deployed_at_ns = state["campaigns"], state["deployed_at_ns"]
        self.checkpoints_done = state["checkpoints_done"]
        if self.faults is not None:
            self.faults.load_state(state["faults"])
        generators = {name: torch.Generator(device=self._generator_device(name)) for name in state["generators"]}
        for name, generator in generators.items():
            generator.set_state(state["generators"][name])
        self._build_blocks(self.env, generators)
        self.controller_halted = state["controller_halted"]
        restarted = 0  # only the processes still alive in the run that was snapshotted
        if not self.controller_halted:
            self.env.process(self._controller(None))
            restarted += 1
        if self.checkpoints_done < len(self.checkpoint_times_ns):
            self.env.process(self._checkpoints())
            restarted += 1
        # Each restarted process begins with an Initialize event that the uninterrupted run never
        # had (its pending timeouts are replaced one for one): not counted, so that ``events`` is
        # the same whether or not a run was resumed.
        self.env.events_processed = state["events"] - restarted

    def _initial_programming(self) -> Generator[simpy.Event, None, None]:
        """Deployment: every weight and reference device programmed from RESET, tile by tile,
        to the levels the host holds (the off-chip memory)."""
        held = None if self.traffic is None else self.traffic.hold_all()  # nothing served before it is programmed
        per_replica = self.layout.mapped_tiles // (1 if held is None else len(held))
        for tile, local in zip(self.tiles, self.layout.used):
            levels = self.offchip.deployment_levels(tile.index, local)
            yield from self.pulse_generator.program(tile, local.numpy(), levels, initial=True)
            if held is not None and (tile.index + 1) % per_replica == 0:  # a replica is deployed: it serves
                replica = tile.index // per_replica
                for t in self.tiles[replica * per_replica:tile.index + 1]:
                    t.mark_busy(0, self.env.now, "deploy")
                self.traffic.release_all(held[replica])
        self.deployed_at_ns = self.env.now
        self.bus.emit(Deployed(self.env.now, "chip"))

    def _controller(self, programming: simpy.Process | None) -> Generator[simpy.Event, None, None]:
        if programming is not None:
            yield programming
        scope = "chip.controller"
        observation = None
        traffic = self.traffic
        while True:
            if traffic is not None:
                yield from traffic.wait_for_power()  # nothing is corrected while the chip is off
                traffic.controller_wakes()
            mark = len(self.controller.trace)
            if traffic is None:
                command = self.controller.step(self.env.now, observation)
            else:  # the queue length is the only thing the firmware learns about traffic
                command = self.controller.step(self.env.now, observation, traffic.load())
            transitions = self.controller.trace[mark:]
            for transition in transitions:
                self.bus.emit(StateChange(self.env.now, scope, transition.state.value, transition.tile,
                                          transition.campaign))
            self._emit_decisions(scope)
            if transitions:
                # each step is charged to the tile it handles (None: between tiles, outside any)
                for transition in transitions:
                    cost = self.costs.controller(1)
                    campaign = transition.campaign if transition.tile is not None else None
                    self.bus.emit(Charge(self.env.now, scope, cost.energy, cost.counts, campaign, transition.tile))
                yield self.env.timeout(len(transitions) * self.costs.timing.controller_step)
            observation = None
            if isinstance(command, Halt):
                if traffic is not None:
                    traffic.controller_sleeps(None)
                self.controller_halted = True
                return  # the policy schedules nothing more
            if isinstance(command, Wait):
                if traffic is not None and not command.deferred:
                    traffic.controller_sleeps(command.until_ns)
                self.bus.emit(Waiting(self.env.now, scope, command.until_ns))  # nothing in flight: a snapshot point
                yield self.env.timeout(max(0, command.until_ns - self.env.now))
                continue
            campaign = self.controller.campaigns
            if isinstance(command, Probe):
                self.campaigns = campaign
                self.bus.emit(Command(self.env.now, scope, "probe", campaign, command.tile, False))
                observation = yield from self.probe.probe(self.tiles[command.tile], self.layout.used[command.tile],
                                                          campaign)
                self.bus.emit(Command(self.env.now, scope, "probe", campaign, command.tile, True))
            elif isinstance(command, Program):
                self.bus.emit(Command(self.env.now, scope, "program", campaign, command.tile, False))
                observation = yield from self.pulse_generator.program(
                    self.tiles[command.tile], command.devices, command.levels, campaign=campaign)
                self.bus.emit(Command(self.env.now, scope, "program", campaign, command.tile, True))
            elif isinstance(command, OffchipRead):
                if not self.controller.policy.uses_offchip:
                    raise RuntimeError(f"policy {self.controller.policy.name!r} did not declare off-chip reads")
                self.bus.emit(Command(self.env.now, scope, "offchip_read", campaign, command.tile, False))
                levels = yield from self.offchip.read_tile(command.tile, command.n_bytes, campaign)
                self.bus.emit(Command(self.env.now, scope, "offchip_read", campaign, command.tile, True))
                observation = OffchipData(command.tile, levels)

    def _emit_decisions(self, scope: str) -> None:
        for decision in self.controller.decisions:
            self.bus.emit(Decision(self.env.now, scope, decision.campaign, decision.tile, decision,
                                   self.layout.used[decision.tile].numpy()))
        self.controller.decisions.clear()

    def _checkpoints(self) -> Generator[simpy.Event, None, None]:
        for t_ns in self.checkpoint_times_ns[self.checkpoints_done:]:  # resumes after a restore
            yield self.env.timeout(t_ns - self.env.now)
            self._checkpoint(t_ns)

    def _checkpoint(self, t_ns: int) -> None:
        """An evaluation time: with GDC the reference rows of every mapped tile are read (charged
        outside any campaign, not blocking); then the observers measure."""
        if self.gdc:
            lay = self.layout
            cost = self.costs.probe(2 * lay.reference_rows, 2 * lay.reference_cells)  # the same for every tile
            for tile in self.tiles[:lay.mapped_tiles]:
                self.bus.emit(Charge(t_ns, "chip.gdc", cost.energy, cost.counts, None, tile.index))
        self.checkpoints_done += 1
        self.bus.emit(Checkpoint(t_ns, "chip"))


def _host_array(tensor: torch.Tensor, copy: bool) -> np.ndarray:
    """``tensor`` as a numpy array in host memory: a view of a cpu tensor unless ``copy``."""
    array = tensor.detach().cpu().numpy()
    return array.copy() if copy and tensor.device.type == "cpu" else array
