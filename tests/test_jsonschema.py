"""`twin schema`: the JSON Schema of scenario files as users write them (twin/scenario/jsonschema.py).

Every shipped scenario passes it, and so does every resolved scenario the twin writes; bad files
fail it; quantities are unit strings whose pattern accepts exactly what the parser reads; every
field of the models is in it (a new field appears without a hand edit)."""

import itertools
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import BaseModel

from twin.scenario.jsonschema import quantity_pattern, scenario_json_schema
from twin.scenario.schema import Scenario, load_scenario
from twin.units import UNITS, parse_quantity

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "bad_scenarios"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = scenario_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)  # a valid draft 2020-12 schema
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def shipped_scenarios() -> list[Path]:
    """Scenario files among the shipped YAML (sweep and compare files name a `scenario:` instead)."""
    files = sorted([*ROOT.glob("scenarios/*.yaml"), *ROOT.glob("docs/examples/*.yaml"),
                    *ROOT.glob("docs/experiments/*.yaml")])
    return [f for f in files if "scenario" not in yaml.safe_load(f.read_text())]


def errors(validator, document) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]


def test_the_schema_is_draft_2020_12_and_describes_files(validator):
    schema = scenario_json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["duration"]["type"] == "string"  # not the model's integer nanoseconds
    assert schema["properties"]["duration"]["default"] == "1 y"
    assert "name" not in schema.get("required", [])  # a file may leave it out: named after the file


@pytest.mark.parametrize("path", shipped_scenarios(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_shipped_scenario_passes(validator, path):
    assert errors(validator, yaml.safe_load(path.read_text())) == []


def test_the_shipped_scenarios_are_found():
    names = {p.name for p in shipped_scenarios()}
    assert {"default.yaml", "faults.yaml", "traffic.yaml", "chip64.yaml", "replicas_p99.yaml"} <= names
    assert "sweep.yaml" not in names


def self_contained(path: Path) -> bool:
    """Loads without files from elsewhere (paper_mnist.yaml needs the MNIST files: its text is checked above)."""
    return (yaml.safe_load(path.read_text()).get("network") or {}).get("dataset") != "mnist"


@pytest.mark.parametrize("path", [p for p in sorted(ROOT.glob("scenarios/*.yaml")) if self_contained(p)],
                         ids=lambda p: p.name)
def test_resolved_scenarios_pass(validator, path):
    """What `scenario.resolved.yaml` holds: every field, canonical unit strings."""
    assert errors(validator, load_scenario(path).resolved_dict()) == []


@pytest.mark.parametrize("document, where", [
    ({"duration": "ten days"}, "duration"),
    ({"duration": "3 fortnights"}, "duration"),
    ({"duration": 5}, "duration"),  # a bare number: units are required
    ({"chip": {"rowz": 3}}, "chip"),  # an unknown key
    ({"durations": "1 y"}, ""),
    ({"chip": {"rows": "many"}}, "chip.rows"),  # a wrong type
    ({"chip": {"levels": True}}, "chip.levels"),  # a boolean is not an integer
    ({"seed": -1}, "seed"),
    ({"energy": {"read_per_device": "2 pW"}}, "energy.read_per_device"),  # a power where an energy goes
    ({"policy": {"name": "sometimes"}}, "policy"),
    ({"policy": {"name": "none", "interval": "1 d"}}, "policy"),  # a key of another policy
    ({"policy": {"interval": "1 d", "threshold": 0.1}}, "policy"),  # no name: periodic, which has no threshold
    ({"policy": {"name": "custom"}}, "policy"),  # a user policy needs its class
    ({"checkpoints": ["1 s", "forever"]}, "checkpoints"),
])
def test_bad_files_fail(validator, document, where):
    found = errors(validator, document)
    assert found and any(e.startswith(where) for e in found), found


@pytest.mark.parametrize("document", [
    {"policy": {"interval": "12 h"}},  # no name: the periodic policy
    {"policy": {"name": "threshold", "threshold": 0.1, "interval": "1 d"}},
    {"policy": {"class": "my_pkg.policies:Weekly", "weekday": 3}},  # a user's class takes any other key
    {"checkpoints": ["1 s", "1 d", "10 y"]},
    {"checkpoints": {"count": 3, "spacing": "linear"}},
    {"traffic": None, "faults": {"dead_tiles": [{"tile": 0, "at": "2 d"}]}},
    {"duration": "1.5y", "energy": {"static_power": "2.5 mW"}, "timing": {"read_cycle": " 1e2 ns "}},
])
def test_good_files_pass(validator, document):
    assert errors(validator, document) == []


CLASSES_A_SCHEMA_CATCHES = {"bool_as_int", "levels_overflow", "seed_range", "unknown_key", "unknown_unit"}


def corpus_cases() -> list[dict]:
    cases = yaml.safe_load((CORPUS / "manifest.yaml").read_text())["cases"]
    return [c for c in cases if c["class"] in CLASSES_A_SCHEMA_CATCHES and c.get("file")
            and c["command"] == "validate {file}"]


@pytest.mark.parametrize("case", corpus_cases(), ids=lambda c: c["id"])
def test_the_bad_scenario_corpus_fails_where_a_schema_can_tell(validator, case):
    """The corpus's files of the classes a schema can express (docs/errors.md) fail it too."""
    assert errors(validator, yaml.safe_load((CORPUS / case["file"]).read_text())) != []


def test_the_corpus_selection_is_not_empty():
    assert {c["class"] for c in corpus_cases()} == CLASSES_A_SCHEMA_CATCHES


NUMBERS = ["1", "2.5", ".5", "1e3", "1E-2", "0", "-1", "1.", "1e", "ten", ""]
JUNK_UNITS = ["fortnights", "parsecs", "m", "S", "NS", "mhz", "/week", "J/s", ""]


@pytest.mark.parametrize("kind", sorted(UNITS))
def test_a_quantity_pattern_accepts_exactly_what_the_parser_reads(kind):
    """Derived from the parser's own expression: it matches a string iff the parser understands
    its form (ranges, such as a duration of 1.5 ns or past 292 y, are the validator's)."""
    import re
    pattern = re.compile(quantity_pattern(kind))
    units = sorted({u for table in UNITS.values() for u in table}) + JUNK_UNITS
    for number, unit, space in itertools.product(NUMBERS, units, ["", " ", "  "]):
        text = f"{number}{space}{unit}"
        for padded in (text, f" {text} "):
            try:
                parse_quantity(padded, kind)
                understood = True
            except ValueError as exc:
                understood = not ("cannot parse" in str(exc) or "unit" in str(exc))
            assert bool(pattern.match(padded)) == understood, (kind, padded)


def model_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every field of the scenario models, as dotted paths (the file's keys)."""
    from typing import get_args
    paths = set()
    for name, field in model.model_fields.items():
        key = field.alias or name
        path = f"{prefix}{key}"
        paths.add(path)
        stack, seen = [field.annotation], set()
        while stack:
            annotation = stack.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                if annotation not in seen:
                    seen.add(annotation)
                    paths |= model_paths(annotation, path + ".")
            else:
                stack.extend(get_args(annotation))
    return paths


def schema_paths(schema: dict, node: dict | None = None, prefix: str = "") -> set[str]:
    node = schema if node is None else node
    if "$ref" in node:
        node = schema["$defs"][node["$ref"].removeprefix("#/$defs/")] | {k: v for k, v in node.items() if k != "$ref"}
    paths = set()
    for key, child in node.get("properties", {}).items():
        paths.add(prefix + key)
        paths |= schema_paths(schema, child, prefix + key + ".")
    for key in ("anyOf", "oneOf", "allOf"):
        for member in node.get(key, []):
            paths |= schema_paths(schema, member, prefix)
    if "items" in node and isinstance(node["items"], dict):
        paths |= schema_paths(schema, node["items"], prefix)
    return paths


def test_every_field_of_the_models_is_in_the_schema():
    expected = model_paths(Scenario)
    assert {"duration", "policy.interval", "policy.class", "outputs.progress", "faults.dead_tiles.at",
            "traffic.power.intervals"} <= expected
    assert expected - schema_paths(scenario_json_schema()) == set()
