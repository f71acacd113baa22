"""Time units, converted in one place.

The simulation clock is an integer count of nanoseconds: a float clock in seconds
loses nanosecond resolution after a few months, while int64 nanoseconds reach
292 years exactly. Every duration a user writes ("250 ns", "1 mo", "10 y") passes
through :func:`parse_duration`; seconds appear only inside physics formulas and reports
(``ns / SECOND``), never on the clock.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = [
    "NS", "US", "MS", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR",
    "UNITS_NS", "parse_duration", "format_duration",
]

NS = 1
US = 1_000
MS = 1_000_000
SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
WEEK = 7 * DAY
YEAR = 36525 * DAY // 100  # 365.25 d, exactly 31,557,600 s
MONTH = YEAR // 12  # 1/12 y, exactly 2,629,800 s
assert YEAR % 12 == 0 and 36525 * DAY % 100 == 0  # both are whole nanoseconds

UNITS_NS: dict[str, int] = {
    "ns": NS, "us": US, "µs": US, "ms": MS,
    "s": SECOND, "sec": SECOND, "min": MINUTE, "h": HOUR, "hour": HOUR,
    "d": DAY, "day": DAY, "days": DAY, "w": WEEK, "week": WEEK,
    "mo": MONTH, "month": MONTH, "months": MONTH,
    "y": YEAR, "yr": YEAR, "year": YEAR, "years": YEAR,
}

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zµ]+)\s*$")


def parse_duration(text: str | int) -> int:
    """Parse "250 ns", "1.5 h", "1 mo", "10 y" into integer nanoseconds.

    A bare integer is taken as nanoseconds. Decimal arithmetic keeps "0.1 s"
    exact; a value that is not a whole number of nanoseconds is refused rather
    than silently rounded.
    """
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"duration must be >= 0, got {text}")
        return text
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string with a unit such as '1 h', got {text!r}")
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"cannot parse duration {text!r}: expected '<number> <unit>', e.g. '250 ns' or '1 y'")
    number, unit = match.groups()
    if unit not in UNITS_NS:
        raise ValueError(f"unknown time unit {unit!r} in {text!r}; known units: {', '.join(sorted(set(UNITS_NS)))}")
    try:
        value = Decimal(number) * UNITS_NS[unit]
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"cannot parse duration {text!r}") from exc
    if value != value.to_integral_value():
        raise ValueError(f"duration {text!r} is not a whole number of nanoseconds")
    return int(value)


_FORMAT_ORDER = [("y", YEAR), ("mo", MONTH), ("d", DAY), ("h", HOUR), ("min", MINUTE),
                 ("s", SECOND), ("ms", MS), ("us", US), ("ns", NS)]


def format_duration(ns: int) -> str:
    """Shortest exact-looking label: 3600 s -> '1 h', 1.5 d -> '1.5 d'."""
    if ns == 0:
        return "0 s"
    for unit, size in _FORMAT_ORDER:
        if ns >= size:
            value = ns / size
            return f"{value:g} {unit}"
    return f"{ns} ns"
