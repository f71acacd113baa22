"""``simulation.device``: what a scenario may ask of the torch device it runs on."""

from __future__ import annotations

from typing import Any

__all__ = ["device_problem"]


def device_problem(scenario: Any) -> tuple[str, str] | None:
    """(field, message) when ``scenario`` asks cuda for what keeps its state on the cpu: the
    round-by-round program-and-verify model (``granularity: round | pulse``, adaptive steps,
    several verify reads), injected faults and inference traffic; None when it can run."""
    if scenario.simulation.device != "cuda":
        return None
    pulses = scenario.chip.pulse_generator
    unsupported = [(scenario.simulation.granularity != "campaign", "simulation.granularity",
                    f"{scenario.simulation.granularity} runs the round-by-round model"),
                   (pulses.partial_set_step_mode != "fixed", "chip.pulse_generator.partial_set_step_mode",
                    "adaptive steps run the round-by-round model"),
                   (pulses.verify_reads != 1, "chip.pulse_generator.verify_reads",
                    "several verify reads run the round-by-round model"),
                   (scenario.faults is not None, "faults", "injected faults"),
                   (scenario.traffic is not None, "traffic", "inference traffic")]
    for bad, field, why in unsupported:
        if bad:
            return field, f"{why}, which simulation.device: cuda does not support yet; use simulation.device: cpu"
    return None
