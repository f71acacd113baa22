"""Scenario sections derived from the runtime dataclasses that own the defaults.

A section's fields are the dataclass fields (``twin.params.param`` metadata: unit, bounds,
source), with the same names; durations, energies and powers get the unit-aware pydantic types.
After pydantic's checks the section builds the dataclass itself once, so the dataclass's own
checks (``__post_init__``) run at validate time too, their message filed under the field they
name. :func:`runtime` turns a validated section back into the dataclass: no rename tables.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator
from pydantic_core import PydanticCustomError

from twin.scenario.quantities import Duration, Energy, Power, Rate

__all__ = ["Section", "Int", "Float", "section", "runtime", "exposed_fields", "field_error"]

_UNIT_TYPES = {"duration": Duration, "energy": Energy, "power": Power, "rate": Rate}


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read true as 1
        raise ValueError(f"expected a number, got {value!r}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
"""An integer field: booleans refused."""
Float = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]
"""A real field: booleans, infinities and NaN refused."""
_NUMBER_TYPES: dict[Any, Any] = {int: Int, float: Float, int | None: Int | None, float | None: Float | None}
_QUOTED = re.compile(r'^"(\w+)"')


def field_error(field: str, message: str) -> PydanticCustomError:
    """An error raised by a model validator that belongs to one of the model's fields."""
    return PydanticCustomError("scenario_field", "{message}", {"field": field, "message": message})


class Section(BaseModel):
    """A scenario section: frozen, unknown keys refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    __sources__: typing.ClassVar[tuple[type, ...]] = ()

    @model_validator(mode="after")
    def _runtime_checks(self) -> Section:
        for cls in type(self).__sources__:
            try:
                runtime(cls, self)
            except ValueError as exc:
                message = str(exc)
                match = _QUOTED.match(message)
                name = match.group(1) if match else next(iter(exposed_fields(cls)))
                text = message[match.end():].lstrip(": ") if match else message
                raise field_error(name, text.rstrip(".")) from None
        return self


def exposed_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The parameters of ``cls`` a scenario file may set: init fields whose metadata names a
    ``source`` (a parameter, not state), unless marked ``scenario=False``."""
    return {f.name: f for f in dataclasses.fields(cls)
            if f.init and "source" in f.metadata and f.metadata.get("scenario", True)}


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return ...


def section(name: str, *sources: type, module: str, exclude: tuple[str, ...] = (),
            annotations: dict[str, Any] | None = None, extra: dict[str, tuple[Any, Any]] | None = None,
            order: tuple[str, ...] = (), base: type[Section] = Section, doc: str = "") -> type[Section]:
    """A pydantic section with the fields of ``sources`` (dataclasses), ``extra`` fields
    (``name: (annotation, FieldInfo)``) and per-field annotation overrides. Bind the result to
    ``name`` in ``module`` (pickle finds classes by module and name: worker processes need it)."""
    fields: dict[str, tuple[Any, Any]] = {}
    for cls in sources:
        hints = typing.get_type_hints(cls)
        for field_name, f in exposed_fields(cls).items():
            if field_name in exclude:
                continue
            meta = f.metadata
            annotation = (annotations or {}).get(field_name) or _UNIT_TYPES.get(meta.get("unit")) \
                or _NUMBER_TYPES.get(hints[field_name], hints[field_name])
            bounds = {k: meta[k] for k in ("ge", "gt", "le") if meta.get(k) is not None}
            fields[field_name] = (annotation, Field(_default(f), description=meta.get("source") or None, **bounds))
    fields.update(extra or {})
    ordered = {k: fields[k] for k in order if k in fields} | fields
    model = create_model(name, __base__=base, __module__=module,
                         __doc__=doc or (sources[0].__doc__ if sources else None), **ordered)
    model.__sources__ = sources
    return model


def runtime(cls: type, section_: BaseModel, **fixed: Any) -> Any:
    """The dataclass ``cls`` from a validated section (the fields it shares with ``cls``)."""
    values = {name: getattr(section_, name) for name in exposed_fields(cls) if name in type(section_).model_fields}
    return cls(**(values | fixed))
