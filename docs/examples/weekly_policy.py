"""A user's own correction policy, named in a scenario by import path:

    policy:
      class: "weekly_policy:WeekdayCampaigns"
      every_days: 7
      skip_first: 1

It implements the four methods of ``firmware_model.policies.Policy`` (plus ``name`` and
``uses_offchip``). It may keep state (it is pickled with the chip's snapshots) but sees only
what the controller gives it: the time, the tile count and each tile's decode result.
"""

from __future__ import annotations

DAY_NS = 86_400 * 10**9


class WeekdayCampaigns:
    """Correct every ``every_days`` days, skipping the first ``skip_first`` campaigns, and only
    tiles whose drift metric says they moved at least ``min_drift`` level spacings."""

    name = "weekday_campaigns"
    uses_offchip = False

    def __init__(self, every_days: int = 7, skip_first: int = 0, min_drift: float = 0.0) -> None:
        if every_days < 1:
            raise ValueError("every_days must be >= 1")
        self.every_ns = every_days * DAY_NS
        self.skip_first = skip_first
        self.min_drift = min_drift
        self.started = 0

    def next_campaign(self, now_ns: int) -> int | None:
        return max(now_ns, (self.started + 1 + self.skip_first) * self.every_ns)

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        self.started += 1
        return list(range(n_tiles))

    def should_correct(self, tile: int, decoded) -> bool:
        return decoded.drift_metric >= self.min_drift

    def campaign_finished(self, now_ns: int) -> None:
        pass
