"""Correction-scheduling policies: when to probe which tiles, and whether to correct.

One narrow interface (:class:`Policy`), picked by name from :data:`POLICIES`. Policies are
plain objects with plain state, so a chip snapshot can pickle them between campaigns.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from firmware_model.decoder import DecodeResult

__all__ = ["Policy", "NoCorrection", "Periodic", "Threshold", "POLICIES", "make_policy"]


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
class Periodic:
    """Probe and correct every tile every ``interval_ns`` (campaigns start at k * interval)."""

    interval_ns: int
    name: str = "periodic"
    uses_offchip: bool = False
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
        return list(range(n_tiles))

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


POLICIES = {"none": NoCorrection, "periodic": Periodic, "threshold": Threshold}


def make_policy(name: str, **params) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[name](**params)
