"""Observers: what turns the chip's events into a run's results (desmod's probes and tracers).

Each is attached to the chip's bus from outside (``twin.scenario.build``) and keeps its own
state, so a snapshot can save and restore it (``state`` / ``load_state``). Two of them are the
experimenter, not the chip: :class:`ScoringObserver` holds the original levels (the truth the
firmware never sees) and :class:`AccuracyObserver` (twin.chip.accuracy) holds the test set.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from twin.chip.events import TRACE_MAX_ROWS, Busy, Charge, Command, Decision, Event, EventBus, Power, ProgramRounds, Programmed
from twin.chip.ledger import Ledger
from twin.intervals import intersected, merged
from twin.chip.accuracy import AccuracyObserver, CheckpointRow, UnmaintainedBaselines

if TYPE_CHECKING:  # twin.chip.faults imports this module
    from twin.chip.faults import FaultScorer

__all__ = ["CampaignRow", "CampaignTable", "ScoringObserver", "CheckpointRow", "AccuracyObserver",
           "WearObserver", "AvailabilityObserver", "TRACE_MAX_ROWS", "EventTrace", "Observers"]


@dataclass
class CampaignRow:
    """One tile's part of one correction campaign (a row of campaigns.csv)."""

    campaign: int
    tile: int
    start_ns: int = 0
    end_ns: int = 0
    reads: int = 0  # row reads (probe + verify)
    partial_set: int = 0
    reset: int = 0
    energy: dict[str, float] = field(default_factory=dict)
    unavailable_ns: int = 0  # the tile held from inference traffic (probe and program-and-verify)
    holds: list[tuple[int, int]] = field(default_factory=list)  # those [start, end) intervals
    devices_corrected: int = 0
    corrected: bool = False
    drift_metric: float = 0.0


class CampaignTable:
    """Rows per (campaign, tile): timing from commands, costs from charges naming them, the
    firmware's verdicts from its decisions."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, int], CampaignRow] = {}

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._command, Command)
        bus.attach(self._charge, Charge)
        bus.attach(self._decision, Decision)
        bus.attach(self._busy, Busy)

    def _busy(self, event: Busy) -> None:
        if event.campaign is not None:
            row = self._row(event.campaign, event.tile)
            row.unavailable_ns += event.end_ns - event.t_ns
            row.holds.append((event.t_ns, event.end_ns))

    def _row(self, campaign: int, tile: int) -> CampaignRow:
        key = (campaign, tile)
        if key not in self.rows:
            self.rows[key] = CampaignRow(campaign, tile)
        return self.rows[key]

    def _command(self, event: Command) -> None:
        row = self._row(event.campaign, event.tile)
        if event.kind == "probe" and not event.done:
            row.start_ns = event.t_ns
        if event.done:
            row.end_ns = event.t_ns

    def _charge(self, event: Charge) -> None:
        if event.campaign is None or event.tile is None:
            return
        row = self._row(event.campaign, event.tile)
        for component, joules in event.energy:
            row.energy[component] = row.energy.get(component, 0.0) + joules
        row.reads += event.counts.get("probe_row_reads", 0) + event.counts.get("verify_row_reads", 0)
        row.partial_set += event.counts.get("partial_set", 0)
        row.reset += event.counts.get("reset", 0)

    def _decision(self, event: Decision) -> None:
        row = self._row(event.campaign, event.tile)
        row.devices_corrected += int(event.decision.devices.size)
        row.corrected = event.decision.corrected
        row.drift_metric = float(event.decision.decoded.drift_metric)

    def ordered(self) -> list[CampaignRow]:
        return list(self.rows.values())

    def state(self) -> dict:
        return {"rows": copy.deepcopy(self.rows)}

    def load_state(self, state: dict) -> None:
        self.rows = copy.deepcopy(state["rows"])


class ScoringObserver:
    """Scores the firmware's decoding against the truth, never shown to the firmware.

    ``misread``: weight devices whose decoded level differs from the level they were last
    programmed to (what this campaign's read got wrong; reference cells are not counted: the
    firmware knows their levels and restores them whatever they decode to); ``displaced``: used
    devices the firmware now holds at a level other than their original one (the errors
    accumulated so far, reference cells included). With analog targets (``levels_scored``
    False) a decoded code is no level, so misreads are not counted (:meth:`misreads` is None).
    """

    def __init__(self, original_levels: torch.Tensor, devices_per_tile: int, used: list[torch.Tensor],
                 weights: np.ndarray, levels_scored: bool = True) -> None:
        self.levels_scored = levels_scored
        self._original = original_levels.to(torch.int16).numpy().copy()
        self.programmed = self._original.copy()  # the level each device was last programmed to
        self.held = self._original.copy()  # the level the firmware holds each device to (its last decision)
        self.devices_per_tile = devices_per_tile
        self._used = np.concatenate([u.numpy() + t * devices_per_tile for t, u in enumerate(used)]) \
            if used else np.zeros(0, dtype=np.int64)
        self._is_weight = np.zeros(self._original.size, dtype=bool)
        self._is_weight[weights] = True
        self.scores: dict[tuple[int, int], dict[str, int]] = {}

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._decision, Decision)
        bus.attach(self._programmed, Programmed)

    def _decision(self, event: Decision) -> None:
        index = event.local + event.tile * self.devices_per_tile
        decoded = event.decision.decoded.levels.astype(np.int16)[event.local]
        assigned = event.decision.assigned.astype(np.int16)[event.local]
        score = self.scores.setdefault((event.campaign, event.tile), {"misread": 0, "displaced": 0})
        score["misread"] += int(((decoded != self.programmed[index]) & self._is_weight[index]).sum())
        score["displaced"] += int((assigned != self._original[index]).sum())
        self.held[index] = assigned

    def _programmed(self, event: Programmed) -> None:
        if not event.initial:
            self.programmed[event.index] = event.levels

    def misread_of(self, tile: int, local: np.ndarray, decoded: np.ndarray) -> np.ndarray:
        """Which of ``local`` (devices of ``tile``, decoded to ``decoded``) are weight devices read
        off the level they were last programmed to (twin.chip.faults: misreads a fault caused)."""
        index = local + tile * self.devices_per_tile
        return (decoded != self.programmed[index]) & self._is_weight[index]

    def lost_to_faults(self, stuck_low: np.ndarray, stuck_high: np.ndarray, dead: np.ndarray,
                       top_level: int) -> dict[str, int]:
        """Weight devices lost at the end (per-device masks of the injected faults): those on a dead
        tile, and those stuck elsewhere at a conductance other than their original level's."""
        off = (stuck_low & (self._original > 0)) | (stuck_high & (self._original < top_level))
        return {"dead_tile_weights": int((self._is_weight & dead).sum()),
                "stuck_weights": int((self._is_weight & ~dead & off).sum())}

    @property
    def used_devices(self) -> np.ndarray:
        """Chip-wide numbers of the weight and reference devices of the mapped tiles."""
        return self._used

    @property
    def weight_devices(self) -> int:
        """Devices that hold weights (what a campaign can misread)."""
        return int(self._is_weight.sum())

    def misreads(self) -> int | None:
        return sum(s["misread"] for s in self.scores.values()) if self.levels_scored else None

    def displaced_now(self) -> int:
        """Used devices held at a level other than their original one, now."""
        return int((self.held[self._used] != self._original[self._used]).sum())

    def state(self) -> dict:
        return {"programmed": self.programmed.copy(), "held": self.held.copy(), "scores": copy.deepcopy(self.scores)}

    def load_state(self, state: dict) -> None:
        self.programmed, self.held = state["programmed"].copy(), state["held"].copy()
        self.scores = copy.deepcopy(state["scores"])


class WearObserver:
    """Pulses per device, initial programming and maintenance apart."""

    def __init__(self, n_devices: int) -> None:
        self.initial = np.zeros(n_devices, dtype=np.int64)
        self.maintenance = np.zeros(n_devices, dtype=np.int64)

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._programmed, Programmed)

    def _programmed(self, event: Programmed) -> None:
        (self.initial if event.initial else self.maintenance)[event.index] += event.pulses

    def state(self) -> dict:
        return {"initial": self.initial.copy(), "maintenance": self.maintenance.copy()}

    def load_state(self, state: dict) -> None:
        self.initial, self.maintenance = state["initial"].copy(), state["maintenance"].copy()


class AvailabilityObserver:
    """Busy intervals of every tile and the chip's power-off intervals, for time availability:
    the share of time a complete replica of the network can serve (every tile of at least one
    replica free, and the chip on). ``replica_of[t]`` is tile t's replica (spare tiles: none)."""

    def __init__(self, replica_of: list[int] | None = None, replicas: int = 1) -> None:
        self.replica_of = replica_of
        self.replicas = replicas
        self.busy: list[tuple[int, int, int]] = []  # (start, end, tile)
        self.off: list[tuple[int, int]] = []
        self._off_since: int | None = None

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._busy, Busy)
        bus.attach(self._power, Power)

    def _busy(self, event: Busy) -> None:
        self.busy.append((event.t_ns, event.end_ns, event.tile))

    def _power(self, event: Power) -> None:
        if not event.on:
            self._off_since = event.t_ns
        elif self._off_since is not None:
            self.off.append((self._off_since, event.t_ns))
            self._off_since = None

    def unavailable(self, duration_ns: int) -> list[tuple[int, int]]:
        """Disjoint [start, end) intervals when no complete replica can serve."""
        per_replica: list[list[tuple[int, int]]] = [[] for _ in range(self.replicas)]
        for start, end, tile in self.busy:
            replica = 0 if self.replica_of is None else (self.replica_of[tile] if tile < len(self.replica_of) else None)
            if replica is not None:
                per_replica[replica].append((start, end))
        down = merged(per_replica[0])
        for intervals in per_replica[1:]:
            down = intersected(down, merged(intervals))
        off = list(self.off) + ([(self._off_since, duration_ns)] if self._off_since is not None else [])
        return [(max(a, 0), min(b, duration_ns)) for a, b in merged(down + off) if a < duration_ns]

    def availability(self, duration_ns: int) -> float:
        return 1.0 - sum(b - a for a, b in self.unavailable(duration_ns)) / duration_ns

    def longest_unavailability_ns(self, duration_ns: int | None = None) -> int:
        end = max((b for _, b, _ in self.busy), default=0) if duration_ns is None else duration_ns
        return max((b - a for a, b in self.unavailable(max(end, 1))), default=0)

    def state(self) -> dict:
        return {"busy": list(self.busy), "off": list(self.off), "off_since": self._off_since}

    def load_state(self, state: dict) -> None:
        self.busy, self.off, self._off_since = list(state["busy"]), list(state["off"]), state["off_since"]


_OBSERVERS = ("campaigns", "scoring", "accuracy", "wear", "availability", "trace", "faults", "baselines", "waveforms")

class EventTrace:
    """Every event of the chosen types as a flat row (``outputs.trace``: trace.csv), the first
    ``max_rows`` of them; ``dropped`` counts the rest."""

    def __init__(self, kinds: tuple[type, ...], max_rows: int = TRACE_MAX_ROWS) -> None:
        self.kinds = kinds
        self.max_rows = max_rows
        self.rows: list[dict] = []
        self.dropped = 0

    def attach(self, bus: EventBus) -> None:
        bus.attach(self._event, *self.kinds)

    def _event(self, event: Event) -> None:
        if isinstance(event, ProgramRounds):  # a row per round, as if each were its own event
            for i, t_ns in enumerate(event.starts_ns().tolist()):
                self._row(int(t_ns), event.scope, "ProgramRound",
                          f"tile={event.tile} duration_ns={event.duration_ns[i]} partial_set={event.partial_set[i]} "
                          f"reset={event.reset[i]} verify_rows={event.verify_rows[i]} "
                          f"verify_devices={event.verify_devices[i]} initial={event.initial}")
            return
        fields = {k: v for k, v in vars(event).items() if k not in ("t_ns", "scope")}
        detail = " ".join(f"{k}={v}" for k, v in fields.items() if not isinstance(v, (np.ndarray, dict, tuple)))
        self._row(event.t_ns, event.scope, type(event).__name__, detail)

    def _row(self, t_ns: int, scope: str, kind: str, detail: str) -> None:
        if len(self.rows) >= self.max_rows:
            self.dropped += 1
            return
        self.rows.append({"t_ns": t_ns, "scope": scope, "event": kind, "detail": detail})

    def state(self) -> dict:
        return {"rows": list(self.rows), "dropped": self.dropped}

    def load_state(self, state: dict) -> None:
        self.rows, self.dropped = list(state["rows"]), state["dropped"]


@dataclass
class Observers:
    """The observers a run attaches, by name (the ledger first: others read its totals)."""

    ledger: Ledger
    campaigns: CampaignTable
    scoring: ScoringObserver
    accuracy: AccuracyObserver
    wear: WearObserver
    availability: AvailabilityObserver
    trace: EventTrace | None = None
    faults: FaultScorer | None = None  # injected faults and what became of them (docs/faults.md)
    baselines: UnmaintainedBaselines | None = None  # the same programming left alone (twin.chip.accuracy)
    waveforms: Any = None  # twin.report.vcd's recorder when outputs.vcd is set (docs/waveforms.md)

    def attach(self, bus: EventBus) -> None:
        bus.attach(self.ledger, Charge)
        for name in _OBSERVERS:
            observer = getattr(self, name)
            if observer is not None:
                observer.attach(bus)

    def state(self) -> dict:
        out = {"ledger": copy.deepcopy(self.ledger)}
        for name in _OBSERVERS:
            observer = getattr(self, name)
            out[name] = None if observer is None else observer.state()
        return out

    def load_state(self, state: dict) -> None:
        self.ledger._energy = copy.deepcopy(state["ledger"]._energy)
        self.ledger.counts = dict(state["ledger"].counts)
        for name in _OBSERVERS:
            observer = getattr(self, name)
            if observer is not None:
                if state.get(name) is None:  # a snapshot of a run without this observer
                    raise ValueError(f"the snapshot holds no state of the {name} observer this run has")
                observer.load_state(state[name])
