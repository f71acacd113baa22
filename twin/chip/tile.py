"""A crossbar tile: a slice of the chip's devices and the port that serialises access to it.

While a tile is probed or programmed it cannot serve inference: the port is a SimPy resource of
capacity 1. Each busy interval is emitted as a :class:`~twin.chip.events.Busy` event (the
availability observer turns them into availability figures).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, Protocol

import simpy
import torch

from twin.chip.events import Busy, EventBus

__all__ = ["CrossbarTile", "Service"]


class Service(Protocol):
    """Whoever serves inference on the tiles (``twin.traffic.engine.TrafficEngine``): maintenance
    takes a tile from it and gives it back."""

    def claim(self, tile: int) -> Generator[simpy.Event, None, Any]: ...

    def release(self, claim: Any) -> None: ...

    def hold_all(self) -> list[list[Any]]: ...

    def release_all(self, claims: list[Any]) -> None: ...


@dataclass
class CrossbarTile:
    env: simpy.Environment
    index: int
    rows: int
    cols: int
    bus: EventBus = field(default_factory=EventBus)
    service: Service | None = None  # inference traffic on this tile, if the scenario has any
    port: simpy.Resource = field(init=False)

    def __post_init__(self) -> None:
        self.port = simpy.Resource(self.env, capacity=1)

    @property
    def scope(self) -> str:
        return f"chip.tile{self.index}"

    @property
    def devices_per_tile(self) -> int:
        return 2 * self.rows * self.cols

    @property
    def first_device(self) -> int:
        return self.index * self.devices_per_tile

    def global_index(self, local: torch.Tensor) -> torch.Tensor:
        """Chip-wide device numbers of this tile's local devices."""
        return local.to(torch.int64) + self.first_device

    def claim(self) -> Generator[simpy.Event, None, Any]:
        """Take the tile from inference traffic for maintenance (preempting or waiting, as the
        scenario says); returns what :meth:`release` gives back. Without traffic: at once."""
        if self.service is None:
            return None
        return (yield from self.service.claim(self.index))

    def release(self, claim: Any) -> None:
        if self.service is not None:
            self.service.release(claim)

    def mark_busy(self, start_ns: int, end_ns: int, activity: str, campaign: int | None = None) -> None:
        if end_ns > start_ns:
            self.bus.emit(Busy(start_ns, self.scope, end_ns, self.index, activity, campaign))
