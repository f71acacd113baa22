"""Physical quantities with explicit units for scenario files: durations, energies, powers.

A scenario never holds a bare number where a unit matters: ``"250 ns"``, ``"16.82 pJ"``,
``"1 mW"``. The pydantic types here parse such strings into plain numbers (int nanoseconds,
float joules, float watts) and serialise them back to a canonical string that parses to exactly
the same number, so a resolved scenario written to disk and loaded again is equal to the original.
Bare numbers are refused when validating with the context ``{UNITS_REQUIRED: True}`` (scenario
files and overrides); Python code may pass base-unit numbers (int ns, float J, float W).
Durations go through :mod:`twin.units` (the one place for time units).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

from twin.units import UNITS_NS, format_duration, parse_duration

__all__ = [
    "ENERGY_UNITS", "POWER_UNITS",
    "parse_energy", "parse_power", "format_energy", "format_power",
    "duration_label", "Duration", "Energy", "Power", "UNITS_REQUIRED",
]

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

_QUANTITY = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-zµμ]+)\s*$")


def _parse(text: Any, kind: str, units: dict[str, Decimal], example: str) -> float:
    if isinstance(text, bool) or isinstance(text, (int, float)):
        raise ValueError(f"{kind} needs a unit: write e.g. '{example}', not the bare number {text!r}")
    if not isinstance(text, str):
        raise ValueError(f"{kind} must be a string with a unit such as '{example}', got {text!r}")
    match = _QUANTITY.match(text)
    if not match:
        raise ValueError(f"cannot parse {kind} {text!r}: expected '<number> <unit>', e.g. '{example}'")
    number, unit = match.groups()
    if unit not in units:
        raise ValueError(f"unknown {kind} unit {unit!r} in {text!r}; known units: {', '.join(units)}")
    try:
        return float(Decimal(number) * units[unit])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only numbers
        raise ValueError(f"cannot parse {kind} {text!r}") from exc


def parse_energy(text: str) -> float:
    """``"16.82 pJ"`` -> 1.682e-11 (joules). Units: J, mJ, uJ, µJ, nJ, pJ, fJ."""
    return _parse(text, "energy", ENERGY_UNITS, "2 pJ")


def parse_power(text: str) -> float:
    """``"1 mW"`` -> 0.001 (watts). Units: W, mW, uW, µW, nW."""
    return _parse(text, "power", POWER_UNITS, "1 mW")


def _format(value: float, base: str, prefixes: list[tuple[str, Decimal]]) -> str:
    """Shortest exact label: the largest prefix giving a value >= 1, digits from ``repr``.

    ``repr`` of a float is the shortest decimal that reads back as the same float, so the
    label parses back to exactly ``value`` (a ``%g`` with 6 digits would not always).
    """
    if value == 0:
        return f"0 {base}"
    exact = Decimal(repr(float(value)))
    unit, scale = prefixes[-1]
    for unit, scale in prefixes:
        if abs(exact) >= scale:
            break
    number = (exact / scale).normalize()
    text = f"{number:f}"
    return f"{text} {unit}"


_ENERGY_PREFIXES = [("J", Decimal(1)), ("mJ", Decimal("1e-3")), ("uJ", Decimal("1e-6")),
                    ("nJ", Decimal("1e-9")), ("pJ", Decimal("1e-12")), ("fJ", Decimal("1e-15"))]
_POWER_PREFIXES = [("W", Decimal(1)), ("mW", Decimal("1e-3")), ("uW", Decimal("1e-6")),
                   ("nW", Decimal("1e-9"))]


def format_energy(joules: float) -> str:
    """1.682e-11 -> ``"16.82 pJ"`` (reads back with :func:`parse_energy` to the same float)."""
    return _format(joules, "J", _ENERGY_PREFIXES)


def format_power(watts: float) -> str:
    """0.001 -> ``"1 mW"``."""
    return _format(watts, "W", _POWER_PREFIXES)


_LABEL_ORDER = [(UNITS_NS[unit], unit) for unit in ("y", "mo", "d", "h", "min", "s", "ms", "us", "ns")]


def duration_label(ns: int) -> str:
    """Canonical, exact label for a duration: :func:`twin.units.format_duration` when it reads
    back to the same nanoseconds (``"1 y"``, ``"1.5 d"``), else the largest unit in which the
    value is a short exact decimal, else plain nanoseconds."""
    label = format_duration(ns)
    if parse_duration(label) == ns:
        return label
    for size, unit in _LABEL_ORDER:
        if ns >= size:
            value = Decimal(ns) / Decimal(size)
            if value * size == ns and len(value.normalize().as_tuple().digits) <= 12:
                return f"{value.normalize():f} {unit}"
    return f"{ns} ns"


UNITS_REQUIRED = "units_required"
"""Validation-context key: when true (scenario files, overrides), bare numbers are refused."""


def _number_allowed(value: Any, info: ValidationInfo, number_types: tuple[type, ...]) -> bool:
    """Python code may pass base-unit numbers (int ns, float J/W); files must write units."""
    return (isinstance(value, number_types) and not isinstance(value, bool)
            and not (info.context or {}).get(UNITS_REQUIRED, False))


def _duration_in(value: Any, info: ValidationInfo) -> Any:
    if _number_allowed(value, info, (int,)):
        return value
    if isinstance(value, bool) or isinstance(value, (int, float)):
        raise ValueError(f"duration needs a unit: write e.g. '{value} s' or '1 h', not the bare number {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"duration must be a string with a unit such as '1 h', got {value!r}")
    return parse_duration(value)


def _energy_in(value: Any, info: ValidationInfo) -> Any:
    return value if _number_allowed(value, info, (int, float)) else parse_energy(value)


def _power_in(value: Any, info: ValidationInfo) -> Any:
    return value if _number_allowed(value, info, (int, float)) else parse_power(value)


Duration = Annotated[int, BeforeValidator(_duration_in), PlainSerializer(duration_label, return_type=str)]
"""A duration written with a unit (``"250 ns"``, ``"1 mo"``, ``"10 y"``), held as int nanoseconds."""

Energy = Annotated[float, BeforeValidator(_energy_in), PlainSerializer(format_energy, return_type=str)]
"""An energy written with a unit (``"2 pJ"``, ``"1 nJ"``), held as float joules."""

Power = Annotated[float, BeforeValidator(_power_in), PlainSerializer(format_power, return_type=str)]
"""A power written with a unit (``"1 mW"``), held as float watts."""
