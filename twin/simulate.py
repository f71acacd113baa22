"""``simulate(scenario) -> Result``: the Python entry point the CLI is built on (the facade).

    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate, write_outputs
    scenario = load_scenario("scenarios/default.yaml")
    result = simulate(scenario)          # build, run, collect
    write_outputs(result, scenario, "out/")

Building happens in :mod:`twin.scenario.build`, records in :mod:`twin.report.records`, files in
:mod:`twin.report.writers`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from twin.log import attach_chip_log
from twin.report.records import SCHEMA_VERSION, Result, collect
from twin.report.writers import OUTPUT_FILES, write_outputs
from twin.scenario.build import Assembly, ScenarioBuildError, build
from twin.scenario.schema import Scenario

__all__ = ["Result", "SCHEMA_VERSION", "OUTPUT_FILES", "Assembly", "ScenarioBuildError", "build", "simulate",
           "write_outputs"]


def simulate(scenario: Scenario, progress: Callable[[int], None] | None = None) -> Result:
    """Build the chip for ``scenario``, run the whole deployment, return the results."""
    started = time.perf_counter()
    assembly = build(scenario, progress)
    chip_log = attach_chip_log(assembly, logging.DEBUG)  # a child of compare or sweep: its campaigns with -v only
    assembly.run()
    if chip_log is not None:
        chip_log.finish()
    return collect(assembly, time.perf_counter() - started)
