"""The layers of the tree and the direction of their imports (docs/architecture.md):

    units, params  <-  device  <-  toolchain  <-  chip  <-  scenario.build  <-  study, report, simulate  <-  cli
    traffic: its model (parameters, service, arrivals, metrics) on units and toolchain.specs; its engine on chip events
    firmware_model: pure logic, imports none of them

Each rule imports a layer in a fresh interpreter and asserts what must not be loaded is absent
from ``sys.modules`` (what actually got imported, transitively, not a grep of import lines).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def loaded_by(modules: list[str]) -> set[str]:
    """Top-level and dotted module names in sys.modules after importing ``modules`` afresh."""
    code = ("import importlib, json, sys\n"
            f"for name in {modules!r}: importlib.import_module(name)\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return set(json.loads(out.stdout))


def firmware_modules() -> list[str]:
    return [f"firmware_model.{p.stem}" for p in sorted((ROOT / "firmware_model").glob("*.py")) if p.stem != "__init__"]


def layer_modules(package: str) -> list[str]:
    folder = ROOT / package.replace(".", "/")
    return [f"{package}.{p.stem}" for p in sorted(folder.glob("*.py")) if p.stem != "__init__"]


def forbidden_in(loaded: set[str], forbidden: set[str]) -> set[str]:
    return {name for name in loaded if name.split(".")[0] in forbidden or name in forbidden
            or any(name.startswith(f + ".") for f in forbidden)}


RULES = [
    # (what is imported, what must not be loaded by it)
    ("firmware_model", firmware_modules(), {"simpy", "torch", "twin"}),
    ("device", layer_modules("twin.device"), {"simpy", "pydantic", "twin.toolchain", "twin.chip", "twin.scenario",
                                              "twin.study", "twin.report", "twin.cli"}),
    ("toolchain", [m for m in layer_modules("twin.toolchain") if m != "twin.toolchain.aihwkit_bridge"],
     {"simpy", "pydantic", "twin.chip", "twin.scenario", "twin.study", "twin.report", "twin.cli"}),
    ("chip", layer_modules("twin.chip"), {"pydantic", "twin.scenario", "twin.study", "twin.report", "twin.cli",
                                          "rich"}),
    ("traffic model", ["twin.traffic.parameters", "twin.traffic.service", "twin.traffic.arrivals",
                       "twin.traffic.metrics", "twin.traffic.records"],
     {"torch", "simpy", "pydantic", "twin.chip", "twin.scenario", "twin.study", "twin.report", "twin.cli"}),
    ("traffic shapes", ["twin.traffic.shapes", "twin.traffic.service"],
     {"simpy", "pydantic", "twin.chip", "twin.scenario", "twin.study", "twin.report", "twin.cli"}),
    ("traffic engine", ["twin.traffic.engine", "twin.traffic.setup"],
     {"torch", "pydantic", "twin.scenario", "twin.study", "twin.report", "twin.cli"}),
    ("scenario schema", ["twin.scenario.schema", "twin.scenario.bounds", "twin.scenario.policies", "twin.scenario.loader",
                         "twin.scenario.derive", "twin.scenario.quantities", "twin.scenario.traffic",
                         "twin.scenario.faults", "twin.scenario.errors"],
     {"torch", "simpy", "twin.chip.chip", "twin.toolchain.training", "twin.study", "twin.report", "twin.cli"}),
    ("report", layer_modules("twin.report"), {"twin.cli", "twin.study"}),
    ("foundations", ["twin.units", "twin.params", "twin.atomic", "twin.run_folder", "twin.intervals", "twin.seeding"],
     {"torch", "simpy", "pydantic", "numpy", "twin.device", "twin.toolchain", "twin.chip", "twin.scenario"}),
    ("study and facade", layer_modules("twin.study") + ["twin.simulate", "twin.resume"], {"twin.cli"}),
]


@pytest.mark.parametrize("name,modules,forbidden", RULES, ids=[r[0] for r in RULES])
def test_layer_loads_nothing_it_must_not(name, modules, forbidden):
    assert len(modules) >= 2, f"layer {name} has no modules to check"
    loaded = loaded_by(modules)
    assert set(modules) <= loaded
    assert not forbidden_in(loaded, forbidden), f"{name} loads {sorted(forbidden_in(loaded, forbidden))}"


def test_the_rule_checker_sees_transitive_imports():
    """A module that imports torch only through another module is still caught."""
    loaded = loaded_by(["twin.toolchain.networks"])
    assert forbidden_in(loaded, {"torch"}) and "twin.units" not in forbidden_in(loaded, {"torch"})
