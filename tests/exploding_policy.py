"""A user policy that validates but fails inside the run (a sweep must record it and go on)."""

from __future__ import annotations


class ExplodesAtFirstCampaign:
    name = "explodes"
    uses_offchip = False

    def __init__(self) -> None:
        pass

    def next_campaign(self, now_ns: int) -> int | None:
        if now_ns > 0:
            raise RuntimeError("boom at the first campaign")
        return 3_600 * 10**9

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return list(range(n_tiles))

    def should_correct(self, tile: int, decoded) -> bool:
        return True

    def campaign_finished(self, now_ns: int) -> None:
        pass
