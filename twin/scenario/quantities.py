"""Pydantic types for quantities with units in scenario files: durations, energies, powers, rates.

A scenario never holds a bare number where a unit matters: ``"250 ns"``, ``"16.82 pJ"``,
``"1 mW"``. These types parse such strings with :func:`twin.units.parse_quantity` into plain
numbers (int nanoseconds, float joules, float watts) and serialise them back with
:func:`twin.units.format_quantity`, which parses to exactly the same number, so a resolved
scenario written to disk and loaded again is equal to the original. Bare numbers are refused
when validating with the context ``{UNITS_REQUIRED: True}`` (scenario files and overrides);
Python code may pass base-unit numbers (int ns, float J, float W).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo

from twin.units import MAX_DURATION_NS, Kind, format_quantity, parse_quantity

__all__ = ["Duration", "Energy", "Power", "Rate", "UNITS_REQUIRED", "MAX_DURATION_NS"]

UNITS_REQUIRED = "units_required"
"""Validation-context key: when true (scenario files, overrides), bare numbers are refused."""

def _number_allowed(value: Any, info: ValidationInfo, number_types: tuple[type, ...]) -> bool:
    """Python code may pass base-unit numbers (int ns, float J/W); files must write units."""
    return (isinstance(value, number_types) and not isinstance(value, bool)
            and not (info.context or {}).get(UNITS_REQUIRED, False))


def _parser(kind: Kind, number_types: tuple[type, ...]):
    def parse(value: Any, info: ValidationInfo) -> Any:
        if _number_allowed(value, info, number_types):
            return value
        if kind == "duration" and isinstance(value, (int, float)) and not isinstance(value, bool):
            raise ValueError(f"duration needs a unit: write e.g. '{value} s' or '1 h', not the bare number {value!r}")
        if kind == "duration" and not isinstance(value, str):
            raise ValueError(f"duration must be a string with a unit such as '1 h', got {value!r}")
        return parse_quantity(value, kind)
    return parse


def _formatter(kind: Kind):
    return lambda value: format_quantity(value, kind)


Duration = Annotated[int, BeforeValidator(_parser("duration", (int,))),
                     PlainSerializer(_formatter("duration"), return_type=str)]
"""A duration written with a unit (``"250 ns"``, ``"1 mo"``, ``"10 y"``), held as int nanoseconds."""

Energy = Annotated[float, BeforeValidator(_parser("energy", (int, float))),
                   PlainSerializer(_formatter("energy"), return_type=str)]
"""An energy written with a unit (``"2 pJ"``, ``"1 nJ"``), held as float joules."""

Power = Annotated[float, BeforeValidator(_parser("power", (int, float))),
                  PlainSerializer(_formatter("power"), return_type=str)]
"""A power written with a unit (``"1 mW"``), held as float watts."""

Rate = Annotated[float, BeforeValidator(_parser("rate", (int, float))),
                 PlainSerializer(_formatter("rate"), return_type=str)]
"""A rate written with a unit (``"20000 /s"``, ``"20 kHz"``), held as float events per second."""
