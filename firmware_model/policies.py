"""Correction-scheduling policies: when to probe which tiles, and whether to correct.

One narrow interface (:class:`Policy`), picked by name from :data:`POLICIES`. Policies are
plain objects with plain state, so a chip snapshot can pickle them between campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from firmware_model.decoder import DecodeResult

__all__ = ["Policy", "NoCorrection", "GdcOnly", "Periodic", "Threshold", "DriftAware", "FullRefresh", "Hybrid",
           "POLICIES", "make_policy"]


@runtime_checkable
class Policy(Protocol):
    name: str
    uses_offchip: bool  # only policies that declare it may issue OffchipRead

    def next_campaign(self, now_ns: int) -> int | None:
        """Time of the next probe campaign (>= now), or None for never again."""

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        """Tiles to probe in this campaign, in order."""

    def should_correct(self, tile: int, decoded: DecodeResult) -> bool:
        """After decoding a probed tile: correct it now?"""

    def campaign_finished(self, now_ns: int) -> None:
        """Called when the campaign's last tile is done."""


@dataclass
class NoCorrection:
    """Program once, never probe, never correct."""

    name: str = "none"
    uses_offchip: bool = False

    def next_campaign(self, now_ns: int) -> int | None:
        return None

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return []

    def should_correct(self, tile: int, decoded: DecodeResult) -> bool:
        return False

    def campaign_finished(self, now_ns: int) -> None:
        pass


@dataclass
class GdcOnly(NoCorrection):
    """Global drift compensation only: the chip reads its reference cells, never pulses."""

    name: str = "gdc"


@dataclass
class Periodic:
    """Probe and correct every tile every ``interval_ns`` (campaigns start at k * interval).

    ``tile_order`` (from the configuration: most accuracy-sensitive layers first) sets the order
    in which a campaign visits tiles; None visits them by index.
    """

    interval_ns: int
    name: str = "periodic"
    uses_offchip: bool = False
    tile_order: list[int] | None = None
    campaigns_started: int = field(default=0)

    def __post_init__(self) -> None:
        if self.interval_ns <= 0:
            raise ValueError('"interval" must be > 0.')

    def next_campaign(self, now_ns: int) -> int | None:
        # The schedule is anchored at t = 0 so a slow campaign does not shift every later one;
        # a campaign that overruns its slot starts the next one at once.
        return max(now_ns, (self.campaigns_started + 1) * self.interval_ns)

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        self.campaigns_started += 1
        return list(self.tile_order) if self.tile_order is not None else list(range(n_tiles))

    def should_correct(self, tile: int, decoded: DecodeResult) -> bool:
        return True

    def campaign_finished(self, now_ns: int) -> None:
        pass


@dataclass
class Threshold(Periodic):
    """The paper's rule: probe on a schedule, correct a tile only when its drift metric
    (mean |read - nominal level| in level spacings) exceeds ``threshold``."""

    threshold: float = 0.05
    name: str = "threshold"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.threshold > 0:
            raise ValueError('"threshold" must be > 0.')

    def should_correct(self, tile: int, decoded: DecodeResult) -> bool:
        return decoded.drift_metric > self.threshold


@dataclass
class DriftAware(Periodic):
    """Intervals that grow geometrically, because drift slows in log time: the k-th campaign
    starts ``interval * growth**k`` after the previous one, at most ``max_interval_ns`` apart."""

    growth: float = 2.0
    max_interval_ns: int = 30 * 86_400 * 10**9
    name: str = "drift_aware"
    _next_ns: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.growth < 1:
            raise ValueError('"growth" must be >= 1.')

    def next_campaign(self, now_ns: int) -> int | None:
        if self._next_ns is None:
            self._next_ns = self.interval_ns
        return max(now_ns, self._next_ns)

    def campaign_finished(self, now_ns: int) -> None:
        gap = min(self.interval_ns * self.growth ** self.campaigns_started, self.max_interval_ns)
        self._next_ns = (self._next_ns or 0) + int(gap)


@dataclass
class FullRefresh(Periodic):
    """Every ``interval``: probe, fetch the tile's weights from an off-chip copy (paid for:
    ``bytes_per_weight`` per weight cell) and re-program off-level devices to them."""

    bytes_per_weight: int = 1
    name: str = "full_refresh"
    uses_offchip: bool = True


@dataclass
class Hybrid(Periodic):
    """Periodic self-correction of an HWA-trained network (the chip builder trains it)."""

    name: str = "hybrid"


POLICIES = {"none": NoCorrection, "gdc": GdcOnly, "periodic": Periodic, "threshold": Threshold,
            "drift_aware": DriftAware, "full_refresh": FullRefresh, "hybrid": Hybrid}


def make_policy(name: str, **params) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[name](**params)
