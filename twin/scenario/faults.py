"""The scenario's ``faults`` section: hard faults injected into the chip (docs/faults.md).

Absent (the default), nothing is injected and a run is exactly what it was without this section.
The fractions and probabilities come from ``twin.chip.parameters.FaultParameters`` (same names,
bounds and defaults); ``dead_tiles`` lists tiles that die at a time. Whether a dead tile exists
on the chip is checked against the whole scenario (:func:`faults_problem`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from twin.chip.parameters import FaultParameters
from twin.scenario.derive import Int, runtime, section
from twin.scenario.quantities import Duration
from twin.toolchain.specs import TileGeometry, tiles_needed
from twin.units import duration_label

if TYPE_CHECKING:
    from twin.scenario.schema import Scenario

__all__ = ["DeadTile", "FaultsConfig", "faults_problem", "fault_parameters", "faults_line"]


class DeadTile(BaseModel):
    """A tile that dies at ``at``: from then on it reads the ADC floor and pulses do nothing."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tile: Int = Field(ge=0)
    at: Duration = Field(ge=0)


FaultsConfig = section(
    "FaultsConfig", FaultParameters, module=__name__,
    extra={"dead_tiles": (tuple[DeadTile, ...], Field((), description="tiles that die, each at its time"))},
    doc="Hard faults injected into the chip (docs/faults.md).")


def fault_parameters(faults: Any) -> FaultParameters:
    """The runtime parameters of a validated ``faults`` section."""
    return runtime(FaultParameters, faults, dead_tiles=tuple((d.tile, d.at) for d in faults.dead_tiles))


def faults_problem(scenario: Scenario) -> tuple[str, str] | None:
    """``(field, message)`` when the ``faults`` section does not fit the rest of the scenario."""
    faults = scenario.faults
    if faults is None:
        return None
    chip = scenario.chip
    tiles = chip.tiles
    if tiles == "auto":
        geometry = TileGeometry(chip.rows, chip.cols, chip.reference_cells)
        tiles = tiles_needed(scenario.network.architecture, geometry) * scenario.replicas
    seen: set[int] = set()
    for i, dead in enumerate(faults.dead_tiles):
        if dead.tile >= tiles:
            return (f"faults.dead_tiles.{i}.tile", f"tile {dead.tile} does not exist: the chip has {tiles} tiles "
                    f"(0 .. {tiles - 1})")
        if dead.tile in seen:
            return f"faults.dead_tiles.{i}.tile", f"tile {dead.tile} is listed twice (a tile dies once)"
        if dead.at > scenario.duration:
            return (f"faults.dead_tiles.{i}.at", f"{duration_label(dead.at)} is beyond the duration "
                    f"{duration_label(scenario.duration)}")
        seen.add(dead.tile)
    return None


def faults_line(faults: Any) -> str:
    """One line for ``twin validate``."""
    dead = ", ".join(f"tile {d.tile} at {duration_label(d.at)}" for d in faults.dead_tiles) or "none"
    return (f"faults       stuck low {faults.stuck_low_fraction:g}, stuck high {faults.stuck_high_fraction:g} "
            f"of used devices; pulse failure {faults.pulse_failure_probability:g}, probe read error "
            f"{faults.probe_error_probability:g}; dead tiles: {dead}")
