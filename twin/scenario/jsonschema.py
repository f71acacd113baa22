"""The JSON Schema (draft 2020-12) of scenario files as users write them (``twin schema``).

Generated from the same pydantic models that validate a file (:class:`twin.scenario.schema.Scenario`
and its sections), never copied by hand: a field added to a model appears here. pydantic alone would
describe what the models hold, not what a file says: a duration as integer nanoseconds, an energy as
float joules. :class:`FileSchema` (a ``GenerateJsonSchema`` hook) writes every quantity as the unit
string a file holds, with a regular expression derived from the parser's (:data:`twin.units._QUANTITY`
and the unit tables of :mod:`twin.units`) and its default in the same unit form.

What a JSON Schema cannot say is left to ``twin validate``: bounds of quantities (a duration
``> 0``, at most 292 y: they are named in the description), and checks across fields (enough
tiles for the network, checkpoints within the duration). A file that passes the schema may
still be refused by ``twin validate``; a file the schema refuses is always refused.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from twin.scenario.quantities import Duration, Energy, Power, Rate
from twin.units import _QUANTITY, UNITS, Kind, format_quantity

__all__ = ["DRAFT", "QUANTITY_EXAMPLES", "FileSchema", "quantity_pattern", "quantity_kind_of_pattern",
           "scenario_json_schema", "schema_text"]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
QUANTITY_EXAMPLES: dict[str, str] = {"duration": "250 ns", "energy": "2 pJ", "power": "1 mW", "rate": "1000 /s"}

_UNIT_GROUP = r"(/?[A-Za-zµμ]+)"  # the unit part of twin.units._QUANTITY, replaced by the known units
_PARSERS: dict[Any, Kind] = {}
for _kind, _type in (("duration", Duration), ("energy", Energy), ("power", Power), ("rate", Rate)):
    # the BeforeValidator of each quantity type: how the hook recognises a quantity in pydantic's core schema
    _PARSERS[_type.__metadata__[0].func] = _kind  # type: ignore[index]


def quantity_pattern(kind: Kind) -> str:
    """The regular expression of a ``kind`` as a file writes it: the parser's own expression with
    its unit part narrowed to the units it knows (longest first, so ``min`` is not read as ``m``)."""
    if _UNIT_GROUP not in _QUANTITY.pattern:  # twin.units changed its expression: derive anew
        raise RuntimeError(f"twin.units._QUANTITY no longer holds the unit group {_UNIT_GROUP}")
    units = sorted(UNITS[kind], key=lambda unit: (-len(unit), unit))
    return _QUANTITY.pattern.replace(_UNIT_GROUP, "(" + "|".join(re.escape(u) for u in units) + ")")


def quantity_kind_of_pattern(pattern: str | None) -> Kind | None:
    """The quantity a schema's ``pattern`` describes (for the generated reference), or None."""
    return next((kind for kind in QUANTITY_EXAMPLES if quantity_pattern(kind) == pattern), None)  # type: ignore[misc]


def _quantity_kind(schema: Any) -> Kind | None:
    """The quantity a core schema parses (looking through wrapping validators), or None."""
    while isinstance(schema, dict):
        function = schema.get("function")
        if isinstance(function, dict) and function.get("function") in _PARSERS:
            return _PARSERS[function["function"]]
        schema = schema.get("schema")
    return None


_BOUND_WORDS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_BOUND_KEYWORDS = {"ge": "minimum", "gt": "exclusiveMinimum", "le": "maximum", "lt": "exclusiveMaximum"}


def _quantity_schema(kind: Kind, bounds: dict[str, Any]) -> dict[str, Any]:
    limits = "".join(f"; {_BOUND_WORDS[k]} {format_quantity(v, kind)}" for k, v in bounds.items())
    return {"type": "string", "pattern": quantity_pattern(kind), "examples": [QUANTITY_EXAMPLES[kind]],
            "$comment": f"{kind} with a unit, e.g. '{QUANTITY_EXAMPLES[kind]}'{limits}"}


class FileSchema(GenerateJsonSchema):
    """pydantic's generator, writing quantities as the unit strings of a file."""

    def function_before_schema(self, schema: core_schema.BeforeValidatorFunctionSchema) -> JsonSchemaValue:
        kind = _PARSERS.get(schema["function"]["function"])
        if kind is None:
            return super().function_before_schema(schema)
        inner = schema["schema"]
        bounds = {k: inner[k] for k in _BOUND_WORDS if isinstance(inner, dict) and k in inner}  # type: ignore[misc]
        return _quantity_schema(kind, bounds)

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        json_schema = super().default_schema(schema)
        kind = _quantity_kind(schema["schema"])
        if kind is not None and isinstance(json_schema.get("default"), (int, float)):
            json_schema["default"] = format_quantity(json_schema["default"], kind)  # as a file writes it
        return json_schema

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False  # "Prog Noise Scale" says nothing the key does not; descriptions carry the meaning


def _bounds_as_keywords(node: Any) -> None:
    """pydantic leaves a bound it cannot place (a ``Field(gt=0)`` around a validated type) as its
    own ``ge``/``gt`` key, which JSON Schema ignores: a keyword on numbers, words on quantities."""
    if isinstance(node, list):
        for item in node:
            _bounds_as_keywords(item)
        return
    if not isinstance(node, dict):
        return
    for key in list(_BOUND_WORDS):
        if key in node and not isinstance(node[key], dict):
            value = node.pop(key)
            kind = quantity_kind_of_pattern(node.get("pattern"))
            if kind is not None:
                node["$comment"] = node.get("$comment", "") + f"; {_BOUND_WORDS[key]} {format_quantity(value, kind)}"
            else:
                node[_BOUND_KEYWORDS[key]] = value
    for value in node.values():
        _bounds_as_keywords(value)


def _comments_into_descriptions(node: Any) -> None:
    """The unit hint of a quantity joins the field's description (what an editor shows on hover)."""
    if isinstance(node, list):
        for item in node:
            _comments_into_descriptions(item)
    elif isinstance(node, dict):
        hint = node.pop("$comment", None)
        if hint:
            node["description"] = f"{node['description']} ({hint})" if node.get("description") else hint
        for value in node.values():
            _comments_into_descriptions(value)


def _name_selects_the_policy(schema: dict[str, Any], default_policy: str) -> None:
    """A tagged union of sections told apart by a constant ``name`` (the policies): every member
    requires its ``name``, so exactly one matches; a section without ``name`` or ``class`` is the
    default policy (``Scenario._policy_name_defaults_to_periodic``)."""
    defs = schema["$defs"]

    def target(ref: dict[str, Any]) -> dict[str, Any] | None:
        return defs.get(ref.get("$ref", "").removeprefix("#/$defs/"))

    def visit(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                visit(item)
            return
        if not isinstance(node, dict):
            return
        members = node.get("oneOf")
        if isinstance(members, list) and members and all("$ref" in m for m in members):
            names = {id(m): (target(m) or {}).get("properties", {}).get("name", {}).get("const") for m in members}
            if any(names.values()):
                unnamed = []
                for i, member in enumerate(members):
                    if names[id(member)] is not None:
                        # allOf, not siblings of $ref: draft-07 readers (editors) ignore a $ref's siblings
                        members[i] = {"allOf": [member], "required": ["name"]}
                        if names[id(member)] == default_policy:
                            unnamed.append({"allOf": [dict(member)], "not": {"required": ["name"]}})
                members.extend(unnamed)
        for value in list(node.values()):
            visit(value)

    visit(schema)


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of a scenario file (a fresh dict)."""
    from twin.scenario.schema import Scenario
    schema = copy.deepcopy(Scenario.model_json_schema(mode="validation", schema_generator=FileSchema))
    _bounds_as_keywords(schema)
    _comments_into_descriptions(schema)
    _name_selects_the_policy(schema, Scenario.model_fields["policy"].default_factory().name)
    # a file may leave out its name: load_scenario names it after the file
    schema["required"] = [key for key in schema.get("required", []) if key != "name"]
    schema["properties"]["name"]["description"] = "the scenario's name; default: the file's name without .yaml"
    if not schema["required"]:
        del schema["required"]
    head = {"$schema": DRAFT, "title": "pcm-twin scenario file",
            "description": "A scenario of the pcm-twin digital twin (docs/scenarios.md, docs/scenario-reference.md). "
                           "Quantities are strings with a unit ('1 y', '250 ns', '16.82 pJ', '1 mW'). "
                           "Checks across fields are made by `twin validate`."}
    schema.pop("title", None)
    return head | schema


def schema_text() -> str:
    """:func:`scenario_json_schema` as the text ``twin schema`` writes (fields in the models' order)."""
    return json.dumps(scenario_json_schema(), indent=2, ensure_ascii=False) + "\n"
