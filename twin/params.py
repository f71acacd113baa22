"""Parameter fields: the one definition of every default, with its unit, bounds and source.

Runtime dataclasses (``PCMParameters``, ``PulseParameters``, ``Timing`` ...) declare their
fields with :func:`param`. The dataclass owns the default and checks the bounds itself
(:func:`check_bounds` in ``__post_init__``); the scenario schema (``twin.scenario``) derives its
pydantic sections from the same fields, with the same names, units and bounds, so a default or a
bound is written once. The metadata is a plain dict (keys ``unit``, ``ge``, ``gt``, ``le``,
``source``, ``scenario``), so modules that must not import twin, such as ``firmware_model``,
declare theirs with ``dataclasses.field(metadata={...})`` in the same form.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

__all__ = ["param", "check_bounds", "bound_error"]

_MISSING: Any = dataclasses.MISSING


def param(default: Any = _MISSING, *, unit: str | None = None, ge: float | None = None, gt: float | None = None,
          le: float | None = None, source: str = "", scenario: bool = True, default_factory: Any = _MISSING) -> Any:
    """A dataclass field carrying its unit (``duration`` int ns, ``energy`` J, ``power`` W),
    bounds and the source of its default; ``scenario=False`` keeps it out of scenario files."""
    metadata = {"unit": unit, "ge": ge, "gt": gt, "le": le, "source": source, "scenario": scenario}
    return dataclasses.field(default=default, default_factory=default_factory, metadata=metadata)


def bound_error(name: str, value: Any, metadata: dict) -> str | None:
    """The message for ``value`` outside the bounds of field ``name``, or None."""
    if value is None or isinstance(value, (str, bool)) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f'"{name}" must be finite, got {value}.'
    for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                          ("le", lambda v, b: v <= b, "<=")):
        bound = metadata.get(key)
        if bound is not None and not ok(value, bound):
            return f'"{name}" must be {word} {bound:g}.'
    return None


def check_bounds(instance: Any) -> None:
    """Raise ``ValueError('"field" must be ...')`` for the first field outside its bounds."""
    for f in dataclasses.fields(instance):
        message = bound_error(f.name, getattr(instance, f.name), f.metadata)
        if message:
            raise ValueError(message)
