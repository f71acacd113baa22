"""The on-chip pulse generator: a shared set of pulse channels running program-and-verify.

Granularity: by default one SimPy timeout per program-and-verify round, vectorized over the
round's devices (``campaign`` mode); ``pulse`` mode schedules every pulse as its own SimPy
process on a free channel, for validating the round model on small cases. Both modes use the
same physics draws, so they agree exactly on pulse counts and energy; durations differ only by
how pulses of different kinds pack onto channels.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Literal

import numpy as np
import simpy
import torch

from firmware_model.interface import ProgramReport
from twin.chip.events import Charge, EventBus, Fault, ProgramRound, Programmed
from twin.chip.ledger import CostModel
from twin.chip.tile import CrossbarTile
from twin.device.pcm import DeviceArray
from twin.device.program_verify import ProgramVerifySession, PulseParameters, RoundOutcome

__all__ = ["PulseGenerator", "Granularity"]

Granularity = Literal["campaign", "pulse"]


class PulseGenerator:
    scope = "chip.pulse_generator"

    def __init__(self, env: simpy.Environment, devices: DeviceArray, costs: CostModel, params: PulseParameters,
                 generator: torch.Generator, bus: EventBus, granularity: Granularity) -> None:
        if costs.channels < 1:
            raise ValueError('"channels" must be >= 1.')
        self.env = env
        self.devices = devices
        self.costs = costs
        self.params = params
        self.channels = simpy.Container(env, capacity=costs.channels, init=costs.channels)
        self.generator = generator
        self.bus = bus
        self.granularity = granularity

    def program(self, tile: CrossbarTile, local: np.ndarray, levels: np.ndarray, initial: bool = False,
                campaign: int | None = None) -> Generator[simpy.Event, None, ProgramReport]:
        """Program-and-verify ``local`` devices of ``tile`` to ``levels`` while holding the tile;
        every round is charged to ``campaign``. The initial programming does not take the tile
        from traffic itself: the whole deployment holds every replica until it is programmed."""
        index = tile.global_index(torch.from_numpy(np.asarray(local, dtype=np.int64)))
        levels = np.asarray(levels, dtype=np.int16)
        g_target = self.devices.level_conductance(torch.from_numpy(levels))
        with tile.port.request() as request:
            yield request
            claim = None if initial else (yield from tile.claim())
            start = self.env.now
            session = ProgramVerifySession(self.devices, index, g_target, self.params, self.generator,
                                           tile.rows, tile.cols, self.env.now, from_reset=initial)
            while not session.done:
                outcome = session.step(self.env.now)
                yield from self._round(tile, outcome, initial, campaign)
            result = session.finish(self.env.now)
            tile.mark_busy(start, self.env.now, "program", campaign)
            tile.release(claim)
        pulses = result.pulses_per_device.numpy()
        if result.failed_pulses is not None and bool(result.failed_pulses.any()):
            hit = result.failed_pulses > 0
            self.bus.emit(Fault(self.env.now, self.scope, "pulse", tile.index, int(result.failed_pulses.sum()),
                                index[hit].numpy(), campaign, int(hit.sum()), int((hit & result.converged).sum()),
                                initial))
        self.bus.emit(Programmed(self.env.now, self.scope, tile.index, index.numpy(), levels, pulses, initial,
                                 campaign))
        return ProgramReport(tile.index, self.env.now, np.asarray(local), result.converged.numpy(),
                             result.last_read.numpy().astype(np.float64), int(pulses.sum()))

    def _round(self, tile: CrossbarTile, outcome: RoundOutcome, initial: bool, campaign: int | None
               ) -> Generator[simpy.Event, None, None]:
        cost = self.costs.pv_round(outcome.partial_set, outcome.reset, outcome.verify_rows, outcome.verify_devices,
                                   initial)
        self.bus.emit(Charge(self.env.now, self.scope, cost.energy, cost.counts, campaign, tile.index))
        self.bus.emit(ProgramRound(self.env.now, self.scope, tile.index, cost.duration_ns, outcome.partial_set,
                                   outcome.reset, outcome.verify_rows, outcome.verify_devices, initial))
        if self.granularity == "campaign":
            if outcome.partial_set or outcome.reset:
                yield self.channels.get(self.costs.channels)
                yield self.env.timeout(cost.duration_ns)
                yield self.channels.put(self.costs.channels)
            elif cost.duration_ns:
                yield self.env.timeout(cost.duration_ns)
            return
        # pulse mode: every pulse a process on one channel, RESETs issued before partial-SETs
        timing = self.costs.timing
        pulses = [self.env.process(self._pulse(timing.reset_pulse)) for _ in range(outcome.reset)]
        pulses += [self.env.process(self._pulse(timing.partial_set_pulse)) for _ in range(outcome.partial_set)]
        if pulses:
            yield self.env.all_of(pulses)
        if outcome.verify_rows:
            yield self.env.timeout(outcome.verify_rows * timing.read_cycle)

    def _pulse(self, duration_ns: int) -> Generator[simpy.Event, None, None]:
        yield self.channels.get(1)
        yield self.env.timeout(duration_ns)
        yield self.channels.put(1)
