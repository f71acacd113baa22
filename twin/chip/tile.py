"""A crossbar tile: its devices (a slice of the chip's device state) and its port.

While a tile is probed or programmed it cannot serve inference: the port is a SimPy
resource of capacity 1, and every busy interval is recorded for availability.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import simpy
import torch

__all__ = ["CrossbarTile", "union_length"]


@dataclass
class CrossbarTile:
    env: simpy.Environment
    index: int
    rows: int
    cols: int
    port: simpy.Resource = field(init=False)
    busy: list[tuple[int, int]] = field(default_factory=list)  # [start, end) in ns

    def __post_init__(self) -> None:
        self.port = simpy.Resource(self.env, capacity=1)

    @property
    def devices_per_tile(self) -> int:
        return 2 * self.rows * self.cols

    @property
    def first_device(self) -> int:
        return self.index * self.devices_per_tile

    def global_index(self, local: torch.Tensor) -> torch.Tensor:
        """Chip-wide device numbers of this tile's local devices."""
        return local.to(torch.int64) + self.first_device

    def mark_busy(self, start_ns: int, end_ns: int) -> None:
        if end_ns > start_ns:
            self.busy.append((start_ns, end_ns))


def union_length(intervals: list[tuple[int, int]], start: int, end: int) -> int:
    """Total length of the union of [a, b) intervals, clipped to [start, end)."""
    total, cursor = 0, start
    for a, b in sorted(intervals):
        a, b = max(a, cursor), min(b, end)
        if b > a:
            total += b - a
            cursor = b
    return total
