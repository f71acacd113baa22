"""The on-chip pulse generator: a shared set of pulse channels running program-and-verify.

Granularity (``simulation.granularity``, docs/chip.md):

- ``campaign`` (default): a whole session (one tile's program-and-verify) in one vectorised pass
  (:mod:`twin.device.pv_kernel`), charged as one SimPy timeout of the exact sum of its rounds'
  durations, one charge and one :class:`~twin.chip.events.ProgramRounds` event. Sessions the
  kernel does not cover (adaptive steps, several verify reads) run the round-by-round session,
  each round at the time it would start, charged the same way.
- ``round``: one SimPy timeout per round of :class:`~twin.device.program_verify.ProgramVerifySession`.
- ``pulse``: every pulse its own SimPy process on a free channel, for validating the round model.

``round`` and ``pulse`` use the same physics draws, so they agree exactly on pulse counts and
energy (durations differ only by how pulses of different kinds pack onto channels); ``campaign``
draws in another order and agrees with them in distribution (tests/test_pv_kernel.py).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Literal

import numpy as np
import simpy
import torch

from firmware_model.interface import ProgramReport
from twin.chip.events import Charge, EventBus, Fault, ProgramRounds, Programmed, Pulse
from twin.chip.ledger import CostModel
from twin.chip.tile import CrossbarTile
from twin.device import pv_kernel
from twin.device.pcm import DeviceArray
from twin.device.program_verify import ProgramVerifySession, PulseParameters, RoundOutcome, SessionResult

__all__ = ["PulseGenerator", "Granularity"]

Granularity = Literal["campaign", "round", "pulse"]


class PulseGenerator:
    scope = "chip.pulse_generator"

    def __init__(self, env: simpy.Environment, devices: DeviceArray, costs: CostModel, params: PulseParameters,
                 generator: torch.Generator, bus: EventBus, granularity: Granularity,
                 rng: torch.Generator) -> None:
        if costs.channels < 1:
            raise ValueError('"channels" must be >= 1.')
        self.env = env
        self.devices = devices
        self.costs = costs
        self.params = params
        self.channels = simpy.Container(env, capacity=costs.channels, init=costs.channels)
        self.generator = generator
        self.rng = rng  # the one-pass kernel's pulse and verify draws (campaign granularity)
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
            if self.granularity == "campaign":
                result = yield from self._session(tile, index, g_target, initial, campaign)
            else:
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

    def _session(self, tile: CrossbarTile, index: torch.Tensor, g_target: torch.Tensor, initial: bool,
                 campaign: int | None) -> Generator[simpy.Event, None, SessionResult]:
        """A whole session at once (campaign granularity): the pulses and reads are computed as
        the session starts, its time passes as one timeout, and the devices change at its end."""
        start = self.env.now
        if pv_kernel.supports(self.devices, self.params):
            outcome = pv_kernel.program_verify(self.devices, index, g_target, self.params, self.rng, self.generator,
                                               tile.cols, start, from_reset=initial)
            rounds = outcome.counts

            def finish(now_ns: int) -> SessionResult:
                outcome.commit(self.devices, now_ns, self.generator)
                return outcome.result
        else:  # round by round, each round at the time it would start
            session = ProgramVerifySession(self.devices, index, g_target, self.params, self.generator,
                                           tile.rows, tile.cols, start, from_reset=initial)
            outcomes, elapsed = [], 0
            while not session.done:
                outcome = session.step(start + elapsed)
                outcomes.append(outcome)
                elapsed += self.costs.pv_round(outcome.partial_set, outcome.reset, outcome.verify_rows,
                                               outcome.verify_devices, initial).duration_ns
            rounds = pv_kernel.RoundCounts(*(np.array([getattr(o, f) for o in outcomes], dtype=np.int64)
                                             for f in ("partial_set", "reset", "verify_devices", "verify_rows")))
            finish = session.finish
        cost, durations = self.costs.pv_session(rounds, initial)
        self.bus.emit(Charge(start, self.scope, cost.energy, cost.counts, campaign, tile.index))
        self.bus.emit(ProgramRounds(start, self.scope, tile.index, durations, rounds.partial_set, rounds.reset,
                                    rounds.verify_rows, rounds.verify_devices, initial))
        if rounds.partial_set.any() or rounds.reset.any():
            yield self.channels.get(self.costs.channels)
            yield self.env.timeout(cost.duration_ns)
            yield self.channels.put(self.costs.channels)
        elif cost.duration_ns:
            yield self.env.timeout(cost.duration_ns)
        return finish(self.env.now)

    def _round(self, tile: CrossbarTile, outcome: RoundOutcome, initial: bool, campaign: int | None
               ) -> Generator[simpy.Event, None, None]:
        cost = self.costs.pv_round(outcome.partial_set, outcome.reset, outcome.verify_rows, outcome.verify_devices,
                                   initial)
        self.bus.emit(Charge(self.env.now, self.scope, cost.energy, cost.counts, campaign, tile.index))
        one = (lambda v: np.array([v], dtype=np.int64))
        self.bus.emit(ProgramRounds(self.env.now, self.scope, tile.index, one(cost.duration_ns),
                                    one(outcome.partial_set), one(outcome.reset), one(outcome.verify_rows),
                                    one(outcome.verify_devices), initial))
        if self.granularity == "round":
            if outcome.partial_set or outcome.reset:
                yield self.channels.get(self.costs.channels)
                yield self.env.timeout(cost.duration_ns)
                yield self.channels.put(self.costs.channels)
            elif cost.duration_ns:
                yield self.env.timeout(cost.duration_ns)
            return
        # pulse mode: every pulse a process on one channel, RESETs issued before partial-SETs
        timing = self.costs.timing
        pulses = [self.env.process(self._pulse(timing.reset_pulse, tile.index, "reset")) for _ in range(outcome.reset)]
        pulses += [self.env.process(self._pulse(timing.partial_set_pulse, tile.index, "partial_set"))
                   for _ in range(outcome.partial_set)]
        if pulses:
            yield self.env.all_of(pulses)
        if outcome.verify_rows:
            yield self.env.timeout(outcome.verify_rows * timing.read_cycle)

    def _pulse(self, duration_ns: int, tile: int, kind: str) -> Generator[simpy.Event, None, None]:
        yield self.channels.get(1)
        self.bus.emit(Pulse(self.env.now, self.scope, self.env.now + duration_ns, tile, kind))  # for waveforms
        yield self.env.timeout(duration_ns)
        yield self.channels.put(1)
