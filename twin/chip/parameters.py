"""The chip's own parameters: size, level count, pulse channels, and the cost of every operation
(per-op durations and energies). No simpy or torch here: the scenario schema derives its ``chip``,
``timing`` and ``energy`` sections from these dataclasses, field by field, with the same names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from twin.device.parameters import G_MAX_US
from twin.params import check_bounds, param
from twin.toolchain.quantize import DEFAULT_LEVELS
from twin.units import parse_duration, parse_energy, parse_power

__all__ = ["ChipSpec", "PulseChannels", "TimingCosts", "EnergyCosts", "FaultParameters"]


@dataclass(frozen=True)
class ChipSpec:
    """How many tiles, how many levels per device, how weights become conductances, the conductance
    of the top level, and the width of the digital unit that accumulates partial sums and applies
    biases, activations and pooling. With ``encoding: analog`` the weights are continuous and
    ``levels`` only places the reference cells (at k * g_max / K, as with levels)."""

    tiles: int | Literal["auto"] = param("auto", source="auto: as many as the network needs")
    levels: int = param(DEFAULT_LEVELS, ge=1, le=32767, source="K of arXiv 2310.00337 (at most 32,767: int16 levels)")
    encoding: Literal["levels", "analog"] = param(
        "levels", source="levels: the paper's w = k+ step - k- step; analog: aihwkit's one pair per weight, "
                         "continuous targets (docs/analog.md)")
    g_max_us: float = param(G_MAX_US, gt=0, source="aihwkit pcm_inference (Nandakumar 2019, Joshi 2020)")
    digital_lanes: int = param(256, ge=1, source="assumption: one element operation per tile column per cycle "
                                                 "(docs/service-model.md)")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.tiles != "auto" and not (isinstance(self.tiles, int) and not isinstance(self.tiles, bool)
                                         and self.tiles >= 1):
            raise ValueError(f'"tiles" must be \'auto\' or a positive integer, got {self.tiles!r}')
        if self.encoding not in ("levels", "analog"):
            raise ValueError(f'"encoding" must be levels or analog, got {self.encoding!r}')


@dataclass(frozen=True)
class PulseChannels:
    """Pulses the on-chip pulse generator can drive at once."""

    channels: int = param(16, ge=1, source="assumption")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class TimingCosts:
    """Duration of every chip operation, integer nanoseconds."""

    read_cycle: int = param(parse_duration("100 ns"), unit="duration", gt=0,
                            source="assumption (PCM read ~50 ns, J. Nanomaterials 2013)")
    partial_set_pulse: int = param(parse_duration("150 ns"), unit="duration", gt=0,
                                   source="SET pulse, Lee et al. ISCA 2009")
    reset_pulse: int = param(parse_duration("40 ns"), unit="duration", gt=0, source="Lee et al. ISCA 2009")
    controller_step: int = param(parse_duration("1 us"), unit="duration", gt=0, source="assumption")
    mvm: int = param(parse_duration("133 ns"), unit="duration", gt=0,
                     source="Le Gallo et al., Nature Electronics 2023: 131,072 ops / (63.1 TOPS / 64 cores) "
                            "= 133 ns per 256x256 MVM (docs/service-model.md)")
    digital_op: int = param(parse_duration("1 ns"), unit="duration", gt=0,
                            source="assumption: one cycle of the digital unit at 1 GHz, as HERMES "
                                   "(Khaddam-Aljameh et al., JSSC 2022; docs/service-model.md)")
    offchip_per_byte: int = param(parse_duration("1 ns"), unit="duration", ge=0, source="assumption")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class EnergyCosts:
    """Energy of every chip operation, joules; static power, watts."""

    read_per_device: float = param(parse_energy("2 pJ"), unit="energy", ge=0, source="Lee et al. ISCA 2009")
    partial_set_pulse: float = param(parse_energy("5 pJ"), unit="energy", ge=0, source="assumption: not published")
    reset_pulse: float = param(parse_energy("16.82 pJ"), unit="energy", ge=0,
                               source="write energy per bit attributed to Lee et al. ISCA 2009")
    mvm: float = param(parse_energy("13.4 nJ"), unit="energy", ge=0,
                       source="Le Gallo et al., Nature Electronics 2023: 131,072 ops / 9.76 TOPS/W "
                              "= 13.4 nJ per 256x256 MVM (docs/service-model.md)")
    digital_op: float = param(parse_energy("0.1 pJ"), unit="energy", ge=0,
                              source="assumption: one element operation (add, compare, ReLU) ~ a 32-bit integer "
                                     "add, ~0.1 pJ at 45 nm (Horowitz, ISSCC 2014; docs/service-model.md)")
    offchip_per_byte: float = param(parse_energy("160 pJ"), unit="energy", ge=0, source="assumption (~20 pJ/bit DRAM)")
    controller_step: float = param(parse_energy("10 pJ"), unit="energy", ge=0, source="assumption")
    static_power: float = param(parse_power("1 mW"), unit="power", ge=0, source="assumption")

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class FaultParameters:
    """Hard faults injected into the chip (docs/faults.md); none by default. Fractions are of the
    used (weight and reference) devices of the mapped tiles; probabilities are per pulse and per
    device reading of a probe. ``dead_tiles``: ``(tile, at_ns)`` pairs, set by the scenario's
    ``faults.dead_tiles`` list."""

    stuck_low_fraction: float = param(0.0, ge=0, le=1, source="assumption: no stuck devices unless asked")
    stuck_high_fraction: float = param(0.0, ge=0, le=1, source="assumption: no stuck devices unless asked")
    pulse_failure_probability: float = param(0.0, ge=0, le=1, source="assumption: every pulse acts unless asked")
    probe_error_probability: float = param(0.0, ge=0, le=1, source="assumption: the periphery reads right unless asked")
    dead_tiles: tuple[tuple[int, int], ...] = param((), scenario=False, source="the scenario's faults.dead_tiles")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.stuck_low_fraction + self.stuck_high_fraction > 1:
            raise ValueError('"stuck_high_fraction": stuck_low_fraction + stuck_high_fraction must be <= 1 '
                             f"(a device is stuck one way), got {self.stuck_low_fraction:g} + "
                             f"{self.stuck_high_fraction:g}")
        tiles = [tile for tile, _ in self.dead_tiles]
        if len(set(tiles)) != len(tiles):
            raise ValueError(f'"dead_tiles": a tile dies once, got tiles {tiles}')
        if any(tile < 0 or at < 0 for tile, at in self.dead_tiles):
            raise ValueError(f'"dead_tiles": tiles and times must be >= 0, got {list(self.dead_tiles)}')
