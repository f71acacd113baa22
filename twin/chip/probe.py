"""The identity-probe scheduler: reads a tile back by driving one input row at a time.

The periphery senses the G+ and G- arrays separately, so a full probe is ``2 x rows`` row
reads, each of ``cols`` devices, each read charged. The readings are drifted, noisy
conductances at the time of the read (docs/chip.md: read noise and repeated reads).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy
import torch

from firmware_model.interface import ProbeReading
from twin.chip.events import Charge, EventBus, Fault
from twin.chip.faults import ProbeErrors
from twin.chip.ledger import CostModel
from twin.chip.tile import CrossbarTile
from twin.device.pcm import DeviceArray

__all__ = ["IdentityProbe"]


class IdentityProbe:
    scope = "chip.probe"

    def __init__(self, env: simpy.Environment, devices: DeviceArray, costs: CostModel, generator: torch.Generator,
                 bus: EventBus, errors: ProbeErrors | None = None) -> None:
        self.env = env
        self.devices = devices
        self.costs = costs
        self.generator = generator  # its own stream: probing never shifts other draws
        self.bus = bus
        self.errors = errors  # injected read errors of the periphery (docs/faults.md); None: none

    def probe(self, tile: CrossbarTile, programmed: torch.Tensor | None = None, campaign: int | None = None
              ) -> Generator[simpy.Event, None, ProbeReading]:
        """Hold the tile for 2 x rows row reads, then return what the periphery sensed.

        ``programmed`` (local indices) lists the devices ever programmed; the others hold no
        conductance and read exactly 0, so only the former are drawn (a speed-up, not an
        approximation). Every row read is still charged, to ``campaign``.
        """
        with tile.port.request() as request:
            yield request
            claim = yield from tile.claim()
            start = self.env.now
            cost = self.costs.probe(2 * tile.rows, 2 * tile.rows * tile.cols)
            self.bus.emit(Charge(start, self.scope, cost.energy, cost.counts, campaign, tile.index))
            yield self.env.timeout(cost.duration_ns)
            tile.mark_busy(start, self.env.now, "probe", campaign)
            tile.release(claim)
        g = np.zeros(tile.devices_per_tile, dtype=np.float64)
        local = torch.arange(tile.devices_per_tile) if programmed is None else programmed
        values = self.devices.read(self.env.now, self.generator, index=tile.global_index(local))
        if self.errors is not None:
            values, hit = self.errors.corrupt(values)
            if bool(hit.any()):
                self.bus.emit(Fault(self.env.now, self.scope, "probe_read", tile.index, int(hit.sum()),
                                    local[hit].numpy(), campaign))
        g[local.numpy()] = values.cpu().numpy()  # the firmware's reading: host memory
        half = tile.rows * tile.cols
        return ProbeReading(tile.index, self.env.now, g[:half].reshape(tile.rows, tile.cols),
                            g[half:].reshape(tile.rows, tile.cols))
