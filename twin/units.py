"""Units, converted in one place: one parser and one exact formatter for time, energy and power.

The simulation clock is an integer count of nanoseconds: a float clock in seconds loses
nanosecond resolution after a few months, while int64 nanoseconds reach 292 years exactly.
Every quantity a user writes ("250 ns", "1 mo", "16.82 pJ", "1 mW") passes through
:func:`parse_quantity`; every quantity written back (resolved scenarios, reports) through
:func:`format_quantity`, whose label parses back to exactly the same value. Seconds appear only
inside physics formulas and reports (``ns / SECOND``), never on the clock.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Literal

__all__ = [
    "NS", "US", "MS", "SECOND", "MINUTE", "HOUR", "DAY", "WEEK", "MONTH", "YEAR",
    "Kind", "MAX_DURATION_NS", "UNITS", "UNITS_NS", "ENERGY_UNITS", "POWER_UNITS", "RATE_UNITS",
    "parse_quantity", "format_quantity", "parse_duration", "parse_energy", "parse_power", "parse_rate",
    "duration_label", "format_energy", "format_power", "format_rate", "format_duration",
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


MAX_DURATION_NS = 2**63 - 1
"""The clock counts int64 nanoseconds (292 years): no duration may exceed it."""
Kind = Literal["duration", "energy", "power", "rate"]

UNITS_NS: dict[str, int] = {
    "ns": NS, "us": US, "µs": US, "ms": MS,
    "s": SECOND, "sec": SECOND, "min": MINUTE, "h": HOUR, "hour": HOUR,
    "d": DAY, "day": DAY, "days": DAY, "w": WEEK, "week": WEEK,
    "mo": MONTH, "month": MONTH, "months": MONTH,
    "y": YEAR, "yr": YEAR, "year": YEAR, "years": YEAR,
}
"""Time unit -> nanoseconds."""

ENERGY_UNITS: dict[str, Decimal] = {
    "J": Decimal(1), "mJ": Decimal("1e-3"), "uJ": Decimal("1e-6"), "µJ": Decimal("1e-6"),
    "μJ": Decimal("1e-6"), "nJ": Decimal("1e-9"), "pJ": Decimal("1e-12"), "fJ": Decimal("1e-15"),
}
"""Energy unit -> joules (both the micro sign U+00B5 and Greek mu U+03BC are accepted)."""

POWER_UNITS: dict[str, Decimal] = {
    "W": Decimal(1), "mW": Decimal("1e-3"), "uW": Decimal("1e-6"), "µW": Decimal("1e-6"),
    "μW": Decimal("1e-6"), "nW": Decimal("1e-9"),
}
"""Power unit -> watts."""

RATE_UNITS: dict[str, Decimal] = {
    "/s": Decimal(1), "Hz": Decimal(1), "kHz": Decimal(1000), "MHz": Decimal(10**6),
    "/ms": Decimal(1000), "/us": Decimal(10**6), "/min": Decimal(1) / 60, "/h": Decimal(1) / 3600,
    "/d": Decimal(1) / 86400,
}
"""Rate unit (events per ...) -> events per second."""

UNITS: dict[str, dict[str, Decimal]] = {
    "duration": {unit: Decimal(ns) for unit, ns in UNITS_NS.items()},
    "energy": ENERGY_UNITS,
    "power": POWER_UNITS,
    "rate": RATE_UNITS,
}
_EXAMPLE = {"duration": "250 ns", "energy": "2 pJ", "power": "1 mW", "rate": "1000 /s"}
_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(/?[A-Za-zµμ]+)\s*$")


def parse_quantity(text: str | int, kind: Kind) -> int | float:
    """``"250 ns"`` -> 250 (int ns), ``"16.82 pJ"`` -> 1.682e-11 (J), ``"1 mW"`` -> 0.001 (W).

    Decimal arithmetic keeps "0.1 s" exact; a duration that is not a whole number of
    nanoseconds is refused rather than silently rounded. A bare int is taken as nanoseconds
    for a duration; energies and powers always need their unit.
    """
    example = _EXAMPLE[kind]
    if isinstance(text, bool):
        raise ValueError(f"not a {kind}: {text!r}")
    if kind == "duration" and isinstance(text, int):
        if not 0 <= text <= MAX_DURATION_NS:
            raise ValueError(f"duration must be 0 .. {MAX_DURATION_NS} ns (int64), got {text}")
        return text
    if isinstance(text, (int, float)):
        raise ValueError(f"{kind} needs a unit: write e.g. '{example}', not the bare number {text!r}")
    if not isinstance(text, str):
        raise ValueError(f"{kind} must be a string with a unit such as '{example}', got {text!r}")
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"cannot parse {kind} {text!r}: expected '<number> <unit>', e.g. '{example}'")
    number, unit = match.groups()
    units = UNITS[kind]
    if unit not in units:
        known = sorted(set(units)) if kind == "duration" else list(units)
        raise ValueError(f"unknown {'time' if kind == 'duration' else kind} unit {unit!r} in {text!r}; "
                         f"known units: {', '.join(known)}")
    try:
        value = Decimal(number) * units[unit]
    except ArithmeticError:  # decimal.Overflow: past 10^999999 (the regex admits only numbers)
        value = None
    if kind == "duration" and (value is None or value > MAX_DURATION_NS):
        # decided on the decimal, before it becomes an integer: 1e999983 y would take a minute
        raise ValueError(f"{text!r} is longer than the 292 y the twin's clock holds (int64 nanoseconds)")
    if value is None:
        raise ValueError(f"{kind} {text!r} is too large")
    if kind != "duration":
        return float(value)
    if value != value.to_integral_value():
        raise ValueError(f"duration {text!r} is not a whole number of nanoseconds")
    return int(value)


def parse_duration(text: str | int) -> int:
    """``"1.5 h"`` -> integer nanoseconds (:func:`parse_quantity`)."""
    return int(parse_quantity(text, "duration"))


def parse_energy(text: str) -> float:
    """``"16.82 pJ"`` -> 1.682e-11 (joules). Units: J, mJ, uJ, µJ, nJ, pJ, fJ."""
    return float(parse_quantity(text, "energy"))


def parse_rate(text: str) -> float:
    """``"20 kHz"`` or ``"20000 /s"`` -> 20000.0 (events per second)."""
    return float(parse_quantity(text, "rate"))


def parse_power(text: str) -> float:
    """``"1 mW"`` -> 0.001 (watts). Units: W, mW, uW, µW, nW."""
    return float(parse_quantity(text, "power"))


# ---- formatting ------------------------------------------------------------------------------

_PREFIXES: dict[str, list[tuple[str, Decimal]]] = {
    "energy": [("J", Decimal(1)), ("mJ", Decimal("1e-3")), ("uJ", Decimal("1e-6")),
               ("nJ", Decimal("1e-9")), ("pJ", Decimal("1e-12")), ("fJ", Decimal("1e-15"))],
    "power": [("W", Decimal(1)), ("mW", Decimal("1e-3")), ("uW", Decimal("1e-6")), ("nW", Decimal("1e-9"))],
    "rate": [("/s", Decimal(1))],
}
_LABEL_ORDER = [("y", YEAR), ("mo", MONTH), ("d", DAY), ("h", HOUR), ("min", MINUTE),
                ("s", SECOND), ("ms", MS), ("us", US), ("ns", NS)]


def format_duration(ns: int) -> str:
    """A short human label (``3600 s`` -> ``"1 h"``), six significant digits: for tables and
    axes only; :func:`format_quantity` gives the exact label."""
    if ns == 0:
        return "0 s"
    for unit, size in _LABEL_ORDER:
        if ns >= size:
            return f"{ns / size:g} {unit}"
    return f"{ns} ns"


def _duration_exact(ns: int) -> str:
    label = format_duration(ns)
    if parse_duration(label) == ns:
        return label
    for unit, size in _LABEL_ORDER:
        if ns >= size:
            value = Decimal(ns) / Decimal(size)
            if value * size == ns and len(value.normalize().as_tuple().digits) <= 12:
                return f"{value.normalize():f} {unit}"
    return f"{ns} ns"


def _prefixed_exact(value: float, kind: str) -> str:
    """The largest prefix giving a value >= 1, digits from ``repr`` (the shortest decimal
    that reads back as the same float; a ``%g`` with 6 digits would not always)."""
    prefixes = _PREFIXES[kind]
    if value == 0:
        return f"0 {prefixes[0][0]}"
    exact = Decimal(repr(float(value)))
    unit, scale = prefixes[-1]
    for unit, scale in prefixes:
        if abs(exact) >= scale:
            break
    return f"{(exact / scale).normalize():f} {unit}"


def format_quantity(value: int | float, kind: Kind) -> str:
    """The canonical label of a quantity; :func:`parse_quantity` reads it back to exactly
    ``value``: ``31557600000000000`` -> ``"1 y"``, ``1.682e-11`` -> ``"16.82 pJ"``."""
    return _duration_exact(int(value)) if kind == "duration" else _prefixed_exact(value, kind)


def duration_label(ns: int) -> str:
    return format_quantity(ns, "duration")


def format_energy(joules: float) -> str:
    return format_quantity(joules, "energy")


def format_power(watts: float) -> str:
    return format_quantity(watts, "power")


def format_rate(per_second: float) -> str:
    return format_quantity(per_second, "rate")
