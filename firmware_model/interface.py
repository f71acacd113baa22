"""The narrow interface between the controller firmware and the chip.

The firmware sees only what is defined here: its own stored configuration
(:class:`FirmwareConfig`: level count, g_max, which cells of each tile hold weights, where the
reference cells are and which levels they were programmed to) and the observations the
hardware returns (:class:`ProbeReading`, :class:`ProgramReport`). It never sees the simulator's
true levels, the original weights or the device state. It answers with commands
(:class:`Wait`, :class:`Probe`, :class:`Program`, :class:`OffchipRead`, :class:`Halt`).

Device addressing inside a tile: ``local = sign * rows * cols + row * cols + col`` with
sign 0 for the G+ array and 1 for the G- array, the same order as the chip's global numbering.
This module imports neither simpy nor twin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["TileLayout", "FirmwareConfig", "ProbeReading", "ProgramReport", "OffchipData", "Load",
           "Wait", "Probe", "Program", "OffchipRead", "Halt", "Command", "Observation"]


@dataclass(frozen=True, eq=False)
class TileLayout:
    """What the firmware stores about one tile (configuration, not weight values). Never changed
    once the firmware holds it: the decoders keep what they derive from a layout for as long as it lives."""

    tile: int
    rows: int
    cols: int
    weight_cells: np.ndarray  # bool (rows, cols): True where a unit cell holds a weight
    reference_cells: np.ndarray  # int (n_ref,): flat cell index row * cols + col
    reference_levels: np.ndarray  # int (n_ref,): the known level of both devices of each reference cell

    @property
    def devices(self) -> int:
        return 2 * self.rows * self.cols


@dataclass(frozen=True, eq=False)
class FirmwareConfig:
    levels: int  # K: device levels are k * g_max / K, k = 0..K
    g_max_us: float
    tiles: tuple[TileLayout, ...]

    @property
    def level_spacing_us(self) -> float:
        return self.g_max_us / self.levels

    def nominal_conductance(self, level: np.ndarray) -> np.ndarray:
        return np.asarray(level, dtype=np.float64) * self.level_spacing_us


# --- observations ---------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class ProbeReading:
    """An identity probe of one tile: every device's read-back conductance (uS)."""

    tile: int
    t_ns: int
    g_pos: np.ndarray  # (rows, cols) float
    g_neg: np.ndarray  # (rows, cols) float

    def devices(self) -> np.ndarray:
        """All readings in local device order (G+ array, then G- array), flat."""
        return np.concatenate([self.g_pos.ravel(), self.g_neg.ravel()])

    def take(self, local: np.ndarray) -> np.ndarray:
        """``devices()[local]`` for integer ``local`` (numpy's indexing rules), without building the
        whole flat array: what a firmware step that looks at a few devices of a tile costs."""
        local = np.asarray(local)
        if local.dtype.kind not in "iu":
            raise TypeError(f"local device indices must be integers, not {local.dtype}")
        pos, neg = self.g_pos.reshape(-1), self.g_neg.reshape(-1)
        n = pos.size
        local = local.astype(np.int64, copy=False)
        if local.size and local.min() < 0:  # counted from the end of the flat array, as devices()[local]
            local = np.where(local < 0, local + (n + neg.size), local)
            if local.min() < 0:
                raise IndexError(f"local device index out of bounds for {n + neg.size} devices")
        on_neg = local >= n
        split = local.size - int(np.count_nonzero(on_neg))
        if local.ndim == 1 and not on_neg[:split].any():  # G+ devices first (ascending indices are)
            return np.concatenate([pos[local[:split]], neg[local[split:] - n]])  # past the G- array: IndexError
        out = np.empty(local.shape, dtype=np.result_type(pos, neg))
        out[~on_neg] = pos[local[~on_neg]]
        out[on_neg] = neg[local[on_neg] - n]
        return out


@dataclass(frozen=True, eq=False)
class ProgramReport:
    """What the pulse generator reports after program-and-verify of a set of devices."""

    tile: int
    t_ns: int
    devices: np.ndarray  # local device indices that were programmed
    converged: np.ndarray  # bool per device: within tolerance when the loop stopped
    final_read_us: np.ndarray  # the last verify reading of each device
    pulses: int


@dataclass(frozen=True, eq=False)
class OffchipData:
    """Levels fetched from an off-chip copy of the weights (only after an ``OffchipRead``)."""

    tile: int
    levels: np.ndarray  # int, one per local device (unused devices 0)


@dataclass(frozen=True)
class Load:
    """The service's state when the controller is stepped: how many inference requests wait
    (not counting those in service). The only thing the firmware learns about traffic; a chip
    without traffic reports none (``Controller.step(..., load=None)``)."""

    t_ns: int
    queue_length: int


Observation = ProbeReading | ProgramReport | OffchipData | None


# --- commands ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wait:
    until_ns: int
    deferred: bool = False  # a due campaign put off because requests wait (the controller is still awake)


@dataclass(frozen=True)
class Probe:
    tile: int


@dataclass(frozen=True, eq=False)
class Program:
    """Program-and-verify ``devices`` (local indices) of ``tile`` to ``levels``."""

    tile: int
    devices: np.ndarray
    levels: np.ndarray


@dataclass(frozen=True)
class OffchipRead:
    """Fetch ``tile``'s weights (``n_bytes``) from an off-chip copy (only for policies that declare it)."""

    tile: int
    n_bytes: int


@dataclass(frozen=True)
class Halt:
    reason: str = field(default="deployment over")


Command = Wait | Probe | Program | OffchipRead | Halt
