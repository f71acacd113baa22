"""What the chip's blocks emit, and the bus that carries it to observers attached from outside.

Every block has a dotted scope (``chip.tile3``, ``chip.pulse_generator``, ``chip.controller``),
as in desmod. Blocks never append to result tables: they emit typed events, and observers
(``twin.chip.observers``: the ledger, the campaign table, the truth scoring, accuracy, wear,
availability; later tracers and waveform writers) turn them into what a run reports. An
operation's cost travels in a :class:`Charge` that names the campaign and tile it belongs to,
explicitly (``None`` for work outside any campaign), so no one reads a "current record".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["TRACE_MAX_ROWS", "Event", "Charge", "StateChange", "Command", "Busy", "ProgramRounds", "Programmed", "Decision", "Checkpoint",
           "Deployed", "Pulse", "Power", "Fault", "Waiting", "Observer", "EventBus"]


@dataclass(frozen=True)
class Event:
    t_ns: int
    scope: str


@dataclass(frozen=True)
class Charge(Event):
    """The cost of one operation: energy per ledger component, counters, and who pays."""

    energy: tuple[tuple[str, float], ...]  # (component, joules), in the order they are booked
    counts: Mapping[str, int]
    campaign: int | None = None  # the correction campaign the work belongs to; None = none
    tile: int | None = None


@dataclass(frozen=True)
class StateChange(Event):
    """The controller entered ``state`` (handling ``tile`` of ``campaign``)."""

    state: str
    tile: int | None
    campaign: int


@dataclass(frozen=True)
class Command(Event):
    """The chip started (``done`` False) or finished (``done`` True) a firmware command on a tile."""

    kind: str  # "probe", "program" or "offchip_read"
    campaign: int
    tile: int
    done: bool


@dataclass(frozen=True)
class Busy(Event):
    """A tile was held from ``t_ns`` to ``end_ns`` for ``activity`` (probe or program)."""

    end_ns: int
    tile: int
    activity: str
    campaign: int | None = None


@dataclass(frozen=True, eq=False)
class ProgramRounds(Event):
    """Program-and-verify rounds on one tile, back to back from ``t_ns``: a whole session
    (campaign granularity) or one round (round and pulse granularities). Per round, int64
    arrays of equal length: its duration (ns), pulses of each kind, verify line passes and
    verify device reads."""

    tile: int
    duration_ns: np.ndarray
    partial_set: np.ndarray
    reset: np.ndarray
    verify_rows: np.ndarray
    verify_devices: np.ndarray
    initial: bool

    def starts_ns(self) -> np.ndarray:
        """Each round's start time (int64 ns)."""
        return self.t_ns + np.concatenate(([0], np.cumsum(self.duration_ns)[:-1])).astype(np.int64)


@dataclass(frozen=True, eq=False)
class Programmed(Event):
    """A program-and-verify session ended: ``index`` (chip-wide device numbers) were sent to
    ``levels`` with ``pulses`` each."""

    tile: int
    index: np.ndarray
    levels: np.ndarray
    pulses: np.ndarray
    initial: bool
    campaign: int | None = None


@dataclass(frozen=True, eq=False)
class Decision(Event):
    """What the firmware concluded about a probed tile (its levels, decoded and held)."""

    campaign: int
    tile: int
    decision: Any  # firmware_model.controller.TileDecision
    local: np.ndarray  # the tile's weight and reference devices (local indices)


@dataclass(frozen=True)
class Pulse(Event):
    """One pulse on a channel of the pulse generator, ``t_ns`` to ``end_ns``, of ``kind``
    (``partial_set`` or ``reset``) for ``tile``: emitted in ``simulation.granularity: pulse`` only
    (the other granularities model rounds, not pulses; docs/waveforms.md)."""

    end_ns: int
    tile: int
    kind: str


@dataclass(frozen=True)
class Power(Event):
    """The chip powered off (``on`` False) or back on (the power schedule, docs/traffic.md)."""

    on: bool


@dataclass(frozen=True, eq=False)
class Fault(Event):
    """An injected fault acted (docs/faults.md; only with a ``faults`` section): ``kind``
    ``probe_read`` (``count`` readings of a probe replaced by garbage, ``index`` their local
    devices) or ``pulse`` (``count`` pulses of a program-and-verify session failed on ``devices``
    devices, ``recovered`` of which converged all the same; ``index`` chip-wide)."""

    kind: str
    tile: int
    count: int
    index: np.ndarray
    campaign: int | None = None
    devices: int = 0
    recovered: int = 0
    initial: bool = False


@dataclass(frozen=True)
class Checkpoint(Event):
    """An evaluation time of the experiment (the chip does nothing then but refresh GDC)."""


@dataclass(frozen=True)
class Deployed(Event):
    """The first programming is over: every mapped tile holds its weights (before any correction)."""


@dataclass(frozen=True)
class Waiting(Event):
    """The controller goes to sleep until ``until_ns`` (the firmware's ``Wait``): no command of
    the firmware is in flight, so a run can be snapshotted here (``Assembly.snapshot``)."""

    until_ns: int


TRACE_MAX_ROWS = 1_000_000
"""Rows the event trace (twin.chip.observers.EventTrace) keeps (about 200 MB of rows at most); later
events are counted, not kept. Here, with the events, so that readers of the outputs (the data
dictionary) need not load the chip."""

Observer = Callable[[Event], None]


@dataclass
class EventBus:
    """Delivers each event to the observers attached for its type, in attachment order."""

    _observers: list[tuple[tuple[type, ...], Observer]] = field(default_factory=list)

    def attach(self, observer: Observer, *kinds: type) -> None:
        """Call ``observer(event)`` for every event of the given types (all events if none)."""
        self._observers.append((kinds or (Event,), observer))

    def emit(self, event: Event) -> None:
        for kinds, observer in self._observers:
            if isinstance(event, kinds):
                observer(event)
