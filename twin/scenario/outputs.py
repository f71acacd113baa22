"""The scenario's ``outputs`` section: which optional files a run writes (docs/scenarios.md).

``vcd`` (absent by default: no waveform file, and no key in the resolved scenario, so the hash
of older files holds) asks for ``waveform.vcd`` over the window ``[start, stop)`` of simulated
time (docs/waveforms.md). Whether the window lies within the run is checked against the whole
scenario (:func:`vcd_problem`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, model_validator

from twin.scenario.derive import field_error
from twin.scenario.quantities import Duration
from twin.units import duration_label

if TYPE_CHECKING:
    from twin.scenario.schema import Scenario

__all__ = ["VcdWindow", "OutputsConfig", "vcd_problem"]


class VcdWindow(BaseModel):
    """The stretch of simulated time ``waveform.vcd`` covers: from ``start`` to ``stop``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: Duration = Field(ge=0, description="first instant recorded (signal values at it included)")
    stop: Duration = Field(gt=0, description="end of the window (not included); at most the scenario's duration")

    @model_validator(mode="after")
    def _ordered(self) -> VcdWindow:
        if self.stop <= self.start:
            raise field_error("stop", f"{duration_label(self.stop)} must be after start "
                                      f"({duration_label(self.start)})")
        return self


class OutputsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    per_device_pulses: bool = True
    progress: bool = True
    trace: bool = False  # trace.csv: every controller state change, command, busy interval and P&V round
    vcd: VcdWindow | None = Field(None, description="waveform.vcd over this window of simulated time "
                                                    "(docs/waveforms.md); absent: no file")


def vcd_problem(scenario: Scenario) -> tuple[str, str] | None:
    """``(field, message)`` when the waveform window does not lie within the run."""
    vcd = scenario.outputs.vcd
    if vcd is not None and vcd.stop > scenario.duration:
        return ("outputs.vcd.stop", f"{duration_label(vcd.stop)} is beyond the duration "
                                    f"{duration_label(scenario.duration)}")
    return None
