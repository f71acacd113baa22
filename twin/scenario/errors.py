"""pydantic's validation errors as the scenario's: one ``dotted.field.path: message`` per field,
without the union tags pydantic inserts, with a did-you-mean for a misspelt key."""

from __future__ import annotations

from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, Tag, ValidationError

from twin.scenario.loader import ScenarioError, did_you_mean

__all__ = ["scenario_error"]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _is_union(annotation: Any) -> bool:
    """A union pydantic tags in loc (not ``X | None``, which it validates without a tag)."""
    return get_origin(annotation) in (Union, UnionType) and \
        len([a for a in get_args(annotation) if a is not type(None)]) > 1


def _tagged(annotation: Any, tag: str) -> list[type[BaseModel]] | None:
    """The models of the union member that carries ``Tag(tag)`` (the policy a name selects)."""
    for arg in get_args(annotation):
        if get_origin(arg) is Annotated and any(isinstance(m, Tag) and m.tag == tag for m in arg.__metadata__):
            return _models_in(arg)
        found = _tagged(arg, tag) if get_args(arg) else None
        if found:
            return found
    return None


def _walk(loc: tuple[int | str, ...], root: type[BaseModel]) -> tuple[list[str], list[type[BaseModel]]]:
    """Pydantic's loc without the union/discriminator tags it inserts ('periodic', 'config'), and
    the models of the section it ends in (a tag narrows a union to its member)."""
    models: list[type[BaseModel]] = [root]
    out: list[str] = []
    union: Any = None
    for part in loc:
        if union is not None and isinstance(part, str):
            models, union = _tagged(union, part) or models, None
            continue
        out.append(str(part))
        owner = next((m for m in models if isinstance(part, str) and part in m.model_fields), None)
        annotation = owner.model_fields[str(part)].annotation if owner else None
        models, union = _models_in(annotation), (annotation if _is_union(annotation) else None)
    return out, models


def scenario_error(exc: ValidationError, root: type[BaseModel]) -> ScenarioError:
    """pydantic's errors as one ScenarioError of ``dotted.field.path: message`` (tags dropped, did-you-mean added)."""
    merged: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        parts = _walk(err["loc"], root)[0]
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "scenario_field":
            parts.append(err["ctx"]["field"])
        elif err["type"] == "extra_forbidden" and parts:
            section = _walk(err["loc"][:-1], root)[1]
            message += did_you_mean(parts[-1], sorted({f.alias or name for m in section
                                                       for name, f in m.model_fields.items()}))
        elif err["type"] == "model_attributes_type" and parts == ["policy"]:
            message = "expected a mapping such as {name: periodic, interval: 1 d}"
        messages = merged.setdefault(".".join(parts) or "scenario", [])
        if message not in messages:
            messages.append(message)
    return ScenarioError([(path, "; ".join(messages)) for path, messages in merged.items()])
