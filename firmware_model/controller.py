"""The controller firmware's state machine: IDLE -> PROBE -> DECODE -> CORRECT -> VERIFY.

Pure logic: the chip calls :meth:`Controller.step` with the current time and the last
observation, and gets the next command. The controller decides from probe readings and its
own configuration only (docs/controller.md has the transition table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from firmware_model.decoder import DecodeResult, make_decoder
from firmware_model.interface import (Command, FirmwareConfig, Halt, Load, Observation, OffchipData, OffchipRead,
                                      Probe, ProbeReading, Program, ProgramReport, TileLayout, Wait)
from firmware_model.policies import Policy, call_policy, checked_next_campaign, checked_tiles, checked_verdict

__all__ = ["State", "Controller", "Transition", "MAX_DEFER_CHECKS"]

MAX_DEFER_CHECKS = 10_000_000  # the defaults (1 h, re-checked every 1 ms) take 3.6 million
"""Queue re-checks one deferred campaign may take (bounds the work a deferral makes the chip do)."""


class State(str, Enum):
    IDLE = "IDLE"
    PROBE = "PROBE"
    DECODE = "DECODE"
    CORRECT = "CORRECT"
    VERIFY = "VERIFY"
    FAULT = "FAULT"
    TILE_FAULT = "TILE_FAULT"  # a probe reading says the tile is dead: it is skipped from then on
    OFFCHIP = "OFFCHIP"  # waiting for weights from an off-chip copy (full_refresh only)


@dataclass(frozen=True)
class Transition:
    t_ns: int
    state: State
    tile: int | None
    campaign: int = 0  # the campaign the transition belongs to (0: before the first)


@dataclass
class TileDecision:
    """What the controller concluded about one tile in one campaign (for the chip's records)."""

    tile: int
    decoded: DecodeResult
    corrected: bool
    devices: np.ndarray  # local devices sent to program-and-verify
    levels: np.ndarray  # the levels they were sent to
    assigned: np.ndarray  # the level the firmware holds each local device to (decoded or fetched)
    campaign: int = 0


@dataclass
class Controller:
    config: FirmwareConfig
    policy: Policy
    # Settings a scenario's policy section sets (same names there; these are the defaults).
    decoder: str = field(default="drift_aware", metadata={"source": "docs/decoder.md"})
    correction_tolerance: float = field(default=0.25, metadata={  # a fraction of the level spacing
        "gt": 0, "le": 0.5, "source": "assumption: a device is corrected beyond it"})
    max_retries: int = field(default=1, metadata={"ge": 0, "source": "assumption"})
    # Deferral under load (docs/traffic.md): a due campaign waits while more than ``defer_queue``
    # requests are queued, re-checking every ``defer_recheck``, for at most ``max_defer``.
    defer_queue: int | None = field(default=None, metadata={
        "ge": 0, "source": "None = never defer; else defer while more requests than this wait"})
    max_defer: int = field(default=3_600 * 10**9, metadata={
        "unit": "duration", "gt": 0, "source": "assumption: a campaign is put off by at most 1 h"})
    defer_recheck: int = field(default=10**6, metadata={
        "unit": "duration", "gt": 0, "source": "assumption: the queue is looked at again after 1 ms"})
    # Dead-tile check on every probe reading (docs/faults.md): a tile is given up when at least
    # dead_tile_fraction of its reference devices of known level > 0 read at or below dead_tile_floor x g_max.
    # Firmware constants, not scenario keys (a scenario that sets none keeps its hash).
    dead_tile_floor: float = field(default=0.01, metadata={
        "gt": 0, "le": 0.5, "scenario": False,
        "source": "assumption: a live reference reads far above 1% of g_max (drift and noise included)"})
    dead_tile_fraction: float = field(default=0.5, metadata={
        "gt": 0, "le": 1, "scenario": False,
        "source": "assumption: half the references at the floor (a few stuck or misread ones do not kill a tile)"})
    state: State = State.IDLE
    trace: list[Transition] = field(default_factory=list)
    faulty: dict[int, set[int]] = field(default_factory=dict)  # tile -> local devices given up on
    dead_tiles: dict[int, int] = field(default_factory=dict)  # tile -> when it was given up (ns): never probed again
    decisions: list[TileDecision] = field(default_factory=list)  # drained by the chip
    campaigns: int = 0  # campaigns started so far
    _queue: list[int] = field(default_factory=list)
    _tile: int | None = None
    _retries: int = 0
    _pending: TileDecision | None = None
    _reading: ProbeReading | None = None  # the probe being acted on (kept while waiting for off-chip data)
    _decoded: DecodeResult | None = None
    _correct_tile: bool = False  # the policy's verdict on the tile being handled
    deferrals: int = 0  # times a due campaign was put off because requests waited
    _due_since: int | None = None  # when the campaign being deferred fell due
    _load: Load | None = None  # the load at the last step

    def __post_init__(self) -> None:
        if not 0 < self.correction_tolerance <= 0.5:
            raise ValueError('"correction_tolerance" must be in (0, 0.5].')
        if self.defer_queue is not None and self.defer_queue < 0:
            raise ValueError('"defer_queue" must be >= 0.')
        if self.defer_queue is not None and self.max_defer // self.defer_recheck > MAX_DEFER_CHECKS:
            raise ValueError(f'"defer_recheck": max_defer / defer_recheck exceeds {MAX_DEFER_CHECKS:,} looks at '
                             "the queue per deferred campaign; re-check less often")
        if not 0 < self.dead_tile_floor <= 0.5 or not 0 < self.dead_tile_fraction <= 1:
            raise ValueError('"dead_tile_floor" must be in (0, 0.5] and "dead_tile_fraction" in (0, 1].')
        self._decoder = make_decoder(self.decoder)

    # ------------------------------------------------------------------------------------
    def _enter(self, now_ns: int, state: State) -> None:
        self.state = state
        self.trace.append(Transition(now_ns, state, self._tile, self.campaigns))

    def steps_since(self, index: int) -> int:
        """Number of state transitions after ``index`` (the chip charges each as a controller step)."""
        return len(self.trace) - index

    def step(self, now_ns: int, observation: Observation, load: Load | None = None) -> Command:
        self._load = load
        if self.state == State.IDLE:
            return self._idle(now_ns, load)
        if self.state == State.PROBE:
            if not isinstance(observation, ProbeReading):
                raise RuntimeError("PROBE expects a probe reading")
            return self._decode(now_ns, observation)
        if self.state == State.CORRECT:
            if not isinstance(observation, ProgramReport):
                raise RuntimeError("CORRECT expects a program report")
            return self._verify(now_ns, observation)
        if self.state == State.OFFCHIP:
            if not isinstance(observation, OffchipData):
                raise RuntimeError("OFFCHIP expects off-chip data")
            return self._correct(now_ns, self._reading, observation.levels.astype(np.int16))
        raise RuntimeError(f"controller stepped in state {self.state}")

    def _idle(self, now_ns: int, load: Load | None = None) -> Command:
        start = checked_next_campaign(call_policy(self.policy, "next_campaign", now_ns), now_ns)
        if start is None:
            return Halt("policy schedules no further campaign")
        if start > now_ns:
            return Wait(start)
        if self._defer(now_ns, load):
            self.deferrals += 1
            return Wait(now_ns + self.defer_recheck, deferred=True)
        self._due_since = None
        self._queue = checked_tiles(call_policy(self.policy, "tiles", now_ns, len(self.config.tiles)),
                                    len(self.config.tiles))
        if not self._queue:
            return Halt("policy started a campaign with no tiles")
        self._queue = [tile for tile in self._queue if tile not in self.dead_tiles]  # dead tiles are skipped
        if not self._queue:  # every tile the policy asked for is dead: no campaign, and no recursion
            call_policy(self.policy, "campaign_finished", now_ns)
            if len(self.dead_tiles) >= len(self.config.tiles):
                return Halt("every tile is dead: nothing left to correct")
            return Wait(now_ns + 1)  # ask the policy again, never twice in the same instant
        self.campaigns += 1
        return self._next_tile(now_ns)

    def _defer(self, now_ns: int, load: Load | None) -> bool:
        """Put a due campaign off while too many requests wait, for at most ``max_defer``."""
        if self.defer_queue is None or load is None or load.queue_length <= self.defer_queue:
            return False
        if self._due_since is None:
            self._due_since = now_ns
        return now_ns - self._due_since < self.max_defer

    def _next_tile(self, now_ns: int) -> Command:
        if not self._queue:
            self._tile = None
            call_policy(self.policy, "campaign_finished", now_ns)
            self._enter(now_ns, State.IDLE)
            return self._idle(now_ns, self._load)  # a campaign due at once may be deferred too
        self._tile = self._queue.pop(0)
        self._retries = 0
        self._enter(now_ns, State.PROBE)
        return Probe(self._tile)

    def _decode(self, now_ns: int, reading: ProbeReading) -> Command:
        self._enter(now_ns, State.DECODE)
        layout = self.config.tiles[reading.tile]
        if self._reads_dead(reading, layout):  # nothing to decode: keep serving the other tiles
            self.dead_tiles[reading.tile] = now_ns
            self._enter(now_ns, State.TILE_FAULT)
            return self._next_tile(now_ns)
        self._decoded = self._decoder.decode(reading, layout, self.config)
        self._correct_tile = checked_verdict(call_policy(self.policy, "should_correct", reading.tile, self._decoded))  # once per tile
        if self.policy.uses_offchip and self._correct_tile:
            # The levels come from the off-chip copy instead of the decoder; the transfer is paid.
            self._reading = reading
            self._enter(now_ns, State.OFFCHIP)
            n_weights = int(layout.weight_cells.sum())
            return OffchipRead(reading.tile, n_weights * getattr(self.policy, "bytes_per_weight", 1))
        return self._correct(now_ns, reading, self._decoded.levels.astype(np.int16))  # astype copies

    def _reads_dead(self, reading: ProbeReading, layout: TileLayout) -> bool:
        """Whether the tile's reference devices of known level > 0 read at the floor (too many of
        them to be stuck devices or misreads): a dead tile, or its periphery. Without such
        references nothing tells a dead tile from one holding zeros: never."""
        cells = np.asarray(layout.reference_cells, dtype=np.int64)[np.asarray(layout.reference_levels) > 0]
        if cells.size == 0:
            return False
        reads = reading.take(np.concatenate([cells, cells + layout.rows * layout.cols]))
        return bool(np.mean(reads <= self.dead_tile_floor * self.config.g_max_us) >= self.dead_tile_fraction)

    def _correct(self, now_ns: int, reading: ProbeReading, levels: np.ndarray) -> Command:
        layout = self.config.tiles[reading.tile]
        decoded = self._decoded
        # Reference cells hold known levels: restore them to those, whatever they decode to.
        n_cells = layout.rows * layout.cols
        for sign in (0, 1):
            levels[sign * n_cells + layout.reference_cells] = layout.reference_levels
        devices = np.zeros(0, dtype=np.int64)
        corrected = self._correct_tile
        if corrected:
            tolerance = self.correction_tolerance * self.config.level_spacing_us
            if 4 * np.count_nonzero(decoded.used) > decoded.used.size:  # a mostly used tile: whole arrays
                off = np.abs(reading.devices() - self.config.nominal_conductance(levels))
                devices = np.flatnonzero(decoded.used & (off > tolerance))
            else:  # only used devices can need a correction: look at those alone
                used = np.flatnonzero(decoded.used)
                off = np.abs(reading.take(used) - self.config.nominal_conductance(levels[used]))
                devices = used[off > tolerance]
            faulty = self.faulty.get(reading.tile)
            if faulty:  # given up on: never sent again
                devices = devices[~np.isin(devices, np.fromiter(faulty, dtype=np.int64, count=len(faulty)))]
        self._pending = TileDecision(reading.tile, decoded, corrected, devices, levels[devices], levels, self.campaigns)
        self.decisions.append(self._pending)
        if devices.size == 0:
            return self._next_tile(now_ns)
        self._enter(now_ns, State.CORRECT)
        return Program(reading.tile, devices, levels[devices])

    def _verify(self, now_ns: int, report: ProgramReport) -> Command:
        self._enter(now_ns, State.VERIFY)
        failed = report.devices[~report.converged]
        if failed.size and self._retries < self.max_retries:
            self._retries += 1
            target = dict(zip(self._pending.devices.tolist(), self._pending.levels.tolist()))
            self._enter(now_ns, State.CORRECT)
            return Program(report.tile, failed, np.array([target[d] for d in failed.tolist()], dtype=np.int16))
        if failed.size:
            self._enter(now_ns, State.FAULT)
            self.faulty.setdefault(report.tile, set()).update(failed.tolist())
        return self._next_tile(now_ns)
