"""Correction-scheduling policies: when to probe which tiles, and whether to correct.

One narrow interface (:class:`Policy`), picked by name from :data:`POLICIES`. Policies are
plain objects with plain state, so a chip snapshot can pickle them between campaigns.

Each parameter's default is defined here, once: the scenario schema (``twin.scenario.policies``)
derives each policy's section from these dataclass fields, with the same names. Field metadata
(plain dicts: ``unit``, ``gt``/``ge``, ``source``, ``scenario``) says how a scenario writes it;
``scenario: False`` marks the policy's own state.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any
from typing import Protocol, runtime_checkable

from firmware_model.decoder import DecodeResult

__all__ = ["PolicyError", "checked_next_campaign", "checked_tiles", "checked_verdict", "Policy", "NoCorrection", "GdcOnly", "Periodic", "Threshold", "DriftAware", "FullRefresh", "Hybrid",
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


class PolicyError(ValueError):
    """A policy method returned something the controller cannot act on (a user class's bug):
    ``method`` names it, so the error can point at ``policy.<method>``."""

    def __init__(self, method: str, message: str) -> None:
        self.method, self.message = method, message
        super().__init__(method, message)  # args rebuild it (re-raised, pickled by worker processes)

    def __str__(self) -> str:
        return f"policy.{self.method}: {self.message}"


def call_policy(policy: Any, method: str, *args: Any) -> Any:
    """``policy.<method>(*args)``; an exception a user class raises becomes a PolicyError naming
    the method (bad input, exit 2). The built-in policies' exceptions stay what they are: bugs."""
    bound = getattr(policy, method)
    if type(policy).__module__ == __name__:
        return bound(*args)
    try:
        return bound(*args)
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError(method, f"raised {type(exc).__name__}: {exc}") from exc


def _is_int(value: Any) -> bool:
    """An integer (Python's or numpy's), not a boolean."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def checked_next_campaign(value: Any, now_ns: int) -> int | None:
    """``next_campaign``'s answer: None, or an integer time in ns not before now."""
    if value is None:
        return None
    if not _is_int(value):
        raise PolicyError("next_campaign", f"must return an integer time in ns or None, got {value!r}")
    if int(value) < now_ns:
        raise PolicyError("next_campaign", f"returned {int(value)} ns, before now ({now_ns} ns)")
    return int(value)


def checked_tiles(value: Any, n_tiles: int) -> list[int]:
    """``tiles``'s answer: a list of tile indices 0 .. n_tiles - 1, each at most once."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise PolicyError("tiles", f"must return a list of tile indices, got {value!r}")
    tiles = []
    for tile in value:
        if len(tiles) >= n_tiles:
            raise PolicyError("tiles", f"returned more than the chip's {n_tiles} tiles")
        if not _is_int(tile) or not 0 <= int(tile) < n_tiles:
            raise PolicyError("tiles", f"returned {tile!r}: tiles are integers 0 .. {n_tiles - 1}")
        tiles.append(int(tile))
    if len(set(tiles)) != len(tiles):
        raise PolicyError("tiles", f"returned a tile twice in one campaign: {tiles}")
    return tiles


def checked_verdict(value: Any) -> bool:
    """``should_correct``'s answer: a boolean ("no" is a non-empty string, i.e. true: refused)."""
    if not isinstance(value, bool) and type(value).__name__ not in ("bool_", "bool"):  # numpy 1 and 2 names
        raise PolicyError("should_correct", f"must return True or False, got {value!r}")
    return bool(value)


_HOUR_NS = 3_600 * 10**9
_DAY_NS = 24 * _HOUR_NS
_STATE: dict[str, Any] = {"scenario": False}  # metadata of fields that are not parameters


def _duration(default_ns: int, source: str) -> Any:
    return field(default=default_ns, metadata={"unit": "duration", "gt": 0, "source": source})


@dataclass
class NoCorrection:
    """Program once, never probe, never correct."""

    name: str = field(default="none", metadata=_STATE)
    uses_offchip: bool = field(default=False, metadata=_STATE)

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

    name: str = field(default="gdc", metadata=_STATE)


@dataclass
class Periodic:
    """Probe and correct every tile every ``interval`` (integer ns; campaigns start at k * interval).

    ``tile_order`` (from the configuration: most accuracy-sensitive layers first) sets the order
    in which a campaign visits tiles; None visits them by index.
    """

    interval: int = _duration(_DAY_NS, "assumption")
    name: str = field(default="periodic", metadata=_STATE)
    uses_offchip: bool = field(default=False, metadata=_STATE)
    tile_order: list[int] | None = field(default=None, metadata=_STATE)
    campaigns_started: int = field(default=0, metadata=_STATE)

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError('"interval" must be > 0.')

    def next_campaign(self, now_ns: int) -> int | None:
        # The schedule is anchored at t = 0 so a slow campaign does not shift every later one;
        # a campaign that overruns its slot starts the next one at once.
        return max(now_ns, (self.campaigns_started + 1) * self.interval)

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

    threshold: float = field(default=0.05, metadata={"gt": 0, "source": "arXiv 2310.00337"})
    name: str = field(default="threshold", metadata=_STATE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.threshold > 0:
            raise ValueError('"threshold" must be > 0.')

    def should_correct(self, tile: int, decoded: DecodeResult) -> bool:
        return decoded.drift_metric > self.threshold


@dataclass
class DriftAware(Periodic):
    """Intervals that grow geometrically, because drift slows in log time: the k-th campaign
    starts ``interval * growth**k`` after the previous one, at most ``max_interval`` apart."""

    interval: int = _duration(_HOUR_NS, "assumption: the first interval")
    growth: float = field(default=2.0, metadata={"ge": 1.0, "source": "assumption"})
    max_interval: int = _duration(30 * _DAY_NS, "assumption")
    name: str = field(default="drift_aware", metadata=_STATE)
    _next_ns: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.growth < 1:
            raise ValueError('"growth" must be >= 1.')
        if self.max_interval < self.interval:
            raise ValueError('"max_interval" must be >= interval.')

    def next_campaign(self, now_ns: int) -> int | None:
        if self._next_ns is None:
            self._next_ns = self.interval
        return max(now_ns, self._next_ns)

    def campaign_finished(self, now_ns: int) -> None:
        gap = min(self.interval * self.growth ** self.campaigns_started, self.max_interval)
        self._next_ns = (self._next_ns or 0) + int(gap)


@dataclass
class FullRefresh(Periodic):
    """Every ``interval``: probe, fetch the tile's weights from an off-chip copy (paid for:
    ``bytes_per_weight`` per weight cell) and re-program off-level devices to them."""

    interval: int = _duration(30 * _DAY_NS, "assumption")
    bytes_per_weight: int = field(default=1, metadata={"ge": 1, "source": "assumption: two 4-bit level indices"})
    name: str = field(default="full_refresh", metadata=_STATE)
    uses_offchip: bool = field(default=True, metadata=_STATE)


@dataclass
class Hybrid(Periodic):
    """Periodic self-correction of an HWA-trained network (the chip builder trains it)."""

    name: str = field(default="hybrid", metadata=_STATE)


POLICIES = {"none": NoCorrection, "gdc": GdcOnly, "periodic": Periodic, "threshold": Threshold,
            "drift_aware": DriftAware, "full_refresh": FullRefresh, "hybrid": Hybrid}


def make_policy(name: str, **params) -> Policy:
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return POLICIES[name](**params)
