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
from twin.chip.ledger import Ledger
from twin.device.pcm import DeviceArray
from twin.device.program_verify import ProgramVerifySession, PulseParameters, RoundOutcome
from twin.chip.tile import CrossbarTile

__all__ = ["PulseGenerator"]

Granularity = Literal["campaign", "pulse"]


class PulseGenerator:
    def __init__(self, env: simpy.Environment, devices: DeviceArray, ledger: Ledger, params: PulseParameters,
                 channels: int, generator: torch.Generator, granularity: Granularity = "campaign") -> None:
        if channels < 1:
            raise ValueError('"channels" must be >= 1.')
        self.env = env
        self.devices = devices
        self.ledger = ledger
        self.params = params
        self.channels = simpy.Container(env, capacity=channels, init=channels)
        self.n_channels = channels
        self.generator = generator
        self.granularity = granularity
        self.pulse_count = torch.zeros(devices.size, dtype=torch.int32)  # maintenance pulses per device
        self.initial_pulse_count = torch.zeros(devices.size, dtype=torch.int32)

    def program(self, tile: CrossbarTile, local: np.ndarray, levels: np.ndarray, initial: bool = False
                ) -> Generator[simpy.Event, None, ProgramReport]:
        """Program-and-verify ``local`` devices of ``tile`` to ``levels`` while holding the tile."""
        index = tile.global_index(torch.from_numpy(np.asarray(local, dtype=np.int64)))
        g_target = self.devices.level_conductance(torch.from_numpy(np.asarray(levels, dtype=np.int16)))
        with tile.port.request() as request:
            yield request
            start = self.env.now
            session = ProgramVerifySession(self.devices, index, g_target, self.params, self.generator,
                                           tile.rows, tile.cols, self.env.now, from_reset=initial)
            while not session.done:
                outcome = session.step(self.env.now)
                yield from self._round(outcome, initial)
            result = session.finish(self.env.now)
            tile.mark_busy(start, self.env.now)
        counts = self.initial_pulse_count if initial else self.pulse_count
        counts[index] += result.pulses_per_device.to(torch.int32)
        return ProgramReport(tile.index, self.env.now, np.asarray(local), result.converged.numpy(),
                             result.last_read.numpy().astype(np.float64), int(result.pulses_per_device.sum()))

    def _round(self, outcome: RoundOutcome, initial: bool) -> Generator[simpy.Event, None, None]:
        duration = self.ledger.charge_pv_round(outcome.partial_set, outcome.reset, outcome.verify_rows,
                                               outcome.verify_devices, initial)
        if self.granularity == "campaign":
            if outcome.partial_set or outcome.reset:
                yield self.channels.get(self.n_channels)
                yield self.env.timeout(duration)
                yield self.channels.put(self.n_channels)
            elif duration:
                yield self.env.timeout(duration)
            return
        # pulse mode: every pulse a process on one channel, RESETs issued before partial-SETs
        costs = self.ledger.costs
        pulses = [self.env.process(self._pulse(costs.reset_ns)) for _ in range(outcome.reset)]
        pulses += [self.env.process(self._pulse(costs.partial_set_ns)) for _ in range(outcome.partial_set)]
        if pulses:
            yield self.env.all_of(pulses)
        if outcome.verify_rows:
            yield self.env.timeout(outcome.verify_rows * costs.read_cycle_ns)

    def _pulse(self, duration_ns: int) -> Generator[simpy.Event, None, None]:
        yield self.channels.get(1)
        yield self.env.timeout(duration_ns)
        yield self.channels.put(1)
