"""User policy classes with bugs: some found at validate time (the class itself), some only at run
time (what a method returns), where the controller checks each answer (firmware_model.policies)."""

from __future__ import annotations

from firmware_model.policies import Periodic


class MissingMethods:
    """Has next_campaign and tiles, but neither should_correct nor campaign_finished."""

    name = "missing_methods"
    uses_offchip = False

    def next_campaign(self, now_ns: int) -> int | None:
        return None

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return []


class StrictParams(Periodic):
    """Takes ``window`` (> 0) besides Periodic's ``interval``."""

    def __init__(self, window: int = 1, **params) -> None:
        if window <= 0:
            raise ValueError(f"window must be > 0, got {window}")
        super().__init__(**params)


class DividesByParam(Periodic):
    """Its constructor fails with an error that is not a TypeError or ValueError."""

    def __init__(self, per_day: int = 1, **params) -> None:
        self.per_campaign = 24 // per_day  # per_day: 0 raises ZeroDivisionError
        super().__init__(**params)


NotAClass = Periodic()  # an instance, not a class


# ---- run time: the schedule is Periodic's (a campaign every day); one method answers nonsense.

class NegativeTile(Periodic):
    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return [-1]


class StringTiles(Periodic):
    def tiles(self, now_ns: int, n_tiles: int):
        return "0,1,2"


class FloatTile(Periodic):
    def tiles(self, now_ns: int, n_tiles: int):
        return [0.5]


class MillionTiles(Periodic):
    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return list(range(10**6))


class StringTime(Periodic):
    def next_campaign(self, now_ns: int):
        return "tomorrow"


class PastTime(Periodic):
    def next_campaign(self, now_ns: int) -> int:
        return now_ns - 1


class SaysNo(Periodic):
    def should_correct(self, tile: int, decoded) -> str:
        return "no"


class RaisesInTiles(Periodic):
    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        return [{}[now_ns]]  # a KeyError: a user's bug inside the method


class RaisesInNextCampaign(Periodic):
    def next_campaign(self, now_ns: int) -> int:
        return now_ns // 0 if now_ns else super().next_campaign(now_ns)
