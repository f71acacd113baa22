"""Numbers as the report shows them: SI prefixes, percentages, human durations. One place, so the
verdict sentence, the tables and the tests format a figure the same way."""

from __future__ import annotations

import math

from twin.units import DAY, HOUR, MINUTE, MS, NS, SECOND, US, YEAR

__all__ = ["si", "pct", "count", "duration_s", "MISSING"]

MISSING = "not recorded"
"""What a cell or sentence says for a figure the folder does not hold (an older folder, no traffic)."""

_PREFIXES = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""), (1e-3, "m"), (1e-6, "µ"), (1e-9, "n"),
             (1e-12, "p"), (1e-15, "f"), (1e-18, "a")]


def _finite(value: float | None) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """``1.87462958e-06, "J"`` -> ``"1.87 µJ"``: ``digits`` significant digits and an SI prefix."""
    if not _finite(value):
        return MISSING
    if value == 0:
        return f"0 {unit}"
    magnitude = abs(value)
    for scale, prefix in _PREFIXES:
        if magnitude >= scale * (1 - 0.5 * 10 ** -digits):  # 999.96 rounds up to 1 k, not "1e+03"
            break
    return f"{value / scale:.{digits}g} {prefix}{unit}"


def pct(fraction: float | None, decimals: int = 1) -> str:
    """A fraction as a percentage: ``0.861 -> "86.1%"``."""
    if not _finite(fraction):
        return MISSING
    return f"{100 * fraction:.{decimals}f}%"


def count(value: float | None) -> str:
    """A count with thousands separators (a windowed run's request counts are estimates: rounded)."""
    if not _finite(value):
        return MISSING
    return f"{round(value):,}"


def duration_s(seconds: float | None) -> str:
    """Seconds as a short human duration: ``259200.0 -> "3 d"``."""
    if not _finite(seconds):
        return MISSING
    ns = seconds * SECOND
    for unit, size in _DURATION_UNITS:
        if abs(ns) >= size * 0.9995:  # 3 significant digits: 0.99951 d reads "1 d", not "24 h"
            return f"{ns / size:.3g} {unit}"
    return f"{seconds:.3g} s"


_DURATION_UNITS = [("y", YEAR), ("d", DAY), ("h", HOUR), ("min", MINUTE), ("s", SECOND), ("ms", MS), ("µs", US),
                   ("ns", NS)]
