"""The off-chip memory model: the host's copy of the deployed levels.

After deployment the original levels live here and in the scoring observer only. The chip
reads this copy twice: at deployment, to program every device (a one-time host write, not
charged), and when a policy that declared ``uses_offchip`` (``full_refresh``) asks for a tile's
levels, which is charged per byte (energy.offchip_per_byte, timing.offchip_per_byte).
"""

from __future__ import annotations

from collections.abc import Generator

import numpy as np
import simpy
import torch

from twin.chip.events import Charge, EventBus
from twin.chip.ledger import CostModel

__all__ = ["OffchipMemory"]


class OffchipMemory:
    scope = "chip.offchip"

    def __init__(self, levels: torch.Tensor, devices_per_tile: int, costs: CostModel) -> None:
        self._levels = levels.to(torch.int16).clone()  # per chip-wide device number
        self.devices_per_tile = devices_per_tile
        self.costs = costs
        self.env: simpy.Environment | None = None
        self.bus: EventBus | None = None

    def attach(self, env: simpy.Environment, bus: EventBus) -> None:
        """Connect to the chip's clock and bus (again after a snapshot is restored)."""
        self.env, self.bus = env, bus

    def deployment_levels(self, tile: int, local: torch.Tensor) -> np.ndarray:
        """The levels the host writes at deployment (initial programming)."""
        return self._levels[local.to(torch.int64) + tile * self.devices_per_tile].numpy()

    def read_tile(self, tile: int, n_bytes: int, campaign: int | None) -> Generator[simpy.Event, None, np.ndarray]:
        """Fetch one tile's levels (local device order): ``n_bytes`` transferred and paid for."""
        cost = self.costs.offchip(n_bytes)
        self.bus.emit(Charge(self.env.now, self.scope, cost.energy, cost.counts, campaign, tile))
        yield self.env.timeout(cost.duration_ns)
        first = tile * self.devices_per_tile
        return self._levels[first:first + self.devices_per_tile].numpy().copy()
