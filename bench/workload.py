"""The work sequence of a run, recorded from the chip's event bus (a bench tool, not a twin observer).

:class:`WorkRecorder` listens to a built run's bus and keeps, in the order the chip did them:

- every program-and-verify round of every tile: its partial-SET and RESET pulses, verify device
  reads and verify line passes, and whether it belongs to the initial programming. It accepts both
  forms of the event: the per-round ``ProgramRound`` (scalar fields) and the per-session
  ``ProgramRounds`` (numpy int64 arrays, one entry per round);
- every identity probe (a ``Command`` of kind ``probe`` as it starts): the devices the twin draws
  for it (the tile's ever-programmed devices, ``chip.layout.used``; the others read exactly 0) and
  the devices it charges (the ``probe_devices`` counter of the probe's ``Charge``: 2 x rows x cols);
- every accuracy sample: each ``Checkpoint`` times the accuracy observer's samples per checkpoint.

:meth:`WorkRecorder.sequence` turns that into a :class:`WorkSequence` (flat arrays, replayed by
``bench/floor.py``) with totals to check against the run's ledger. With ``timing`` it also notes
the wall clock when deployment ends (the first probe) and the wall time spent measuring accuracy
at checkpoints (to extrapolate a shortened run, bench/chip64.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from twin.chip import events as _events

__all__ = ["OP_PV", "OP_PROBE", "OP_ACCURACY", "WorkSequence", "WorkRecorder", "program_round_types"]

OP_PV, OP_PROBE, OP_ACCURACY = 0, 1, 2
OP_NAMES = {OP_PV: "pv_round", OP_PROBE: "probe", OP_ACCURACY: "accuracy_forward"}


def program_round_types() -> tuple[type, ...]:
    """The program-and-verify event types this twin emits: ``ProgramRounds`` (per session, arrays)
    and/or ``ProgramRound`` (per round, scalars), whichever exist."""
    return tuple(getattr(_events, name) for name in ("ProgramRounds", "ProgramRound") if hasattr(_events, name))


BASELINE_FORWARDS = 2
"""Forward passes per accuracy sample of the unmaintained baselines (left alone, GDC only)."""


@dataclass(frozen=True)
class WorkSequence:
    """One run's work, in order. ``kind[i]`` is an OP_* code and ``size[i]`` the devices it touches:
    for a P&V round max(pulses, verify device reads), for a probe the devices drawn, for an
    accuracy forward pass its images (per sample the run's and the two baselines', each its own entry)."""

    kind: np.ndarray  # int8
    size: np.ndarray  # int64
    pulses: np.ndarray  # int64, per P&V round (partial-SET + RESET), in round order
    initial: np.ndarray  # bool, per P&V round
    totals: dict[str, int]

    def __len__(self) -> int:
        return int(self.kind.size)

    def counts(self) -> dict[str, int]:
        return {OP_NAMES[k]: int((self.kind == k).sum()) for k in OP_NAMES}


@dataclass
class WorkRecorder:
    """Attach with :meth:`attach` (or :meth:`for_assembly`) before the run."""

    used_per_tile: list[int] = field(default_factory=list)  # devices drawn per probe of tile t
    samples: int = 1  # accuracy samples per checkpoint
    images: int = 0  # images of one forward pass (reported only)
    timing: bool = False
    _kind: list[np.ndarray] = field(default_factory=list)
    _size: list[np.ndarray] = field(default_factory=list)
    _pulses: list[np.ndarray] = field(default_factory=list)
    _initial: list[np.ndarray] = field(default_factory=list)
    _t: dict[str, int] = field(default_factory=dict)
    deployed_at_s: float | None = None  # perf_counter when the first probe started (timing)
    checkpoint_s: float = 0.0  # wall seconds inside checkpoint observers (timing)
    checkpoint_s_at_deploy: float = 0.0  # of which before the first probe
    _checkpoint_started: float | None = None

    @classmethod
    def for_assembly(cls, assembly, timing: bool = False) -> WorkRecorder:
        """A recorder for a built run (``twin.scenario.build.build``), attached to its bus."""
        accuracy = assembly.observers.accuracy
        used = [int(u.numel()) for u in assembly.chip.layout.used]
        recorder = cls(used, int(accuracy.samples), int(accuracy.x_test.shape[0]), timing)
        recorder.attach(assembly.chip.bus)
        return recorder

    def attach(self, bus) -> None:
        rounds = program_round_types()
        if not rounds:
            raise RuntimeError("twin.chip.events has neither ProgramRounds nor ProgramRound")
        if self.timing:  # first in line for checkpoints: the accuracy observer runs after this
            try:
                bus._observers.insert(0, ((_events.Checkpoint,), self._checkpoint_begins))
            except AttributeError:  # another bus: no checkpoint timing
                self.timing = False
        bus.attach(self.on_rounds, *rounds)
        bus.attach(self.on_command, _events.Command)
        bus.attach(self.on_charge, _events.Charge)
        bus.attach(self.on_checkpoint, _events.Checkpoint)

    # --- handlers --------------------------------------------------------------------------
    def _add(self, key: str, n: int) -> None:
        self._t[key] = self._t.get(key, 0) + int(n)

    def on_rounds(self, event) -> None:
        ps = np.atleast_1d(np.asarray(event.partial_set, dtype=np.int64))
        rs = np.atleast_1d(np.asarray(event.reset, dtype=np.int64))
        vd = np.atleast_1d(np.asarray(event.verify_devices, dtype=np.int64))
        vr = np.atleast_1d(np.asarray(event.verify_rows, dtype=np.int64))
        pulses = ps + rs
        self._kind.append(np.full(pulses.size, OP_PV, dtype=np.int8))
        self._size.append(np.maximum(pulses, vd))
        self._pulses.append(pulses)
        self._initial.append(np.full(pulses.size, bool(event.initial)))
        prefix = "initial_" if event.initial else ""
        self._add(prefix + "partial_set", ps.sum())
        self._add(prefix + "reset", rs.sum())
        self._add(prefix + "verify_devices", vd.sum())
        self._add(prefix + "verify_rows", vr.sum())
        self._add(prefix + "rounds", pulses.size)
        self._add(prefix + "round_events", 1)  # one per session (ProgramRounds, campaign mode) or per round

    def on_command(self, event) -> None:
        if event.kind != "probe" or event.done:
            return
        if self.timing and self.deployed_at_s is None:
            self.deployed_at_s = time.perf_counter()
            self.checkpoint_s_at_deploy = self.checkpoint_s  # checkpoints before the first campaign
        drawn = self.used_per_tile[event.tile] if event.tile < len(self.used_per_tile) else 0
        self._kind.append(np.array([OP_PROBE], dtype=np.int8))
        self._size.append(np.array([drawn], dtype=np.int64))
        self._add("probes", 1)
        self._add("probe_devices_drawn", drawn)

    def on_charge(self, event) -> None:
        if event.scope == "chip.probe":
            self._add("probe_devices_charged", event.counts.get("probe_devices", 0))

    def _checkpoint_begins(self, event) -> None:
        self._checkpoint_started = time.perf_counter()

    def on_checkpoint(self, event) -> None:
        if self._checkpoint_started is not None:
            self.checkpoint_s += time.perf_counter() - self._checkpoint_started
            self._checkpoint_started = None
        # per sample: the run's forward pass and the unmaintained baselines' two (twin.chip.accuracy:
        # without and with GDC); the baselines' device reads are left out, as the run's are
        forwards = self.samples * (1 + BASELINE_FORWARDS)
        self._kind.append(np.full(forwards, OP_ACCURACY, dtype=np.int8))
        self._size.append(np.full(forwards, self.images, dtype=np.int64))
        self._add("checkpoints", 1)
        self._add("accuracy_samples", self.samples)
        self._add("baseline_forwards", self.samples * BASELINE_FORWARDS)

    # --- result ----------------------------------------------------------------------------
    def sequence(self) -> WorkSequence:
        def cat(parts: list[np.ndarray], dtype) -> np.ndarray:
            return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype=dtype)

        totals = dict.fromkeys(("partial_set", "reset", "verify_devices", "verify_rows", "rounds", "round_events",
                                "initial_partial_set", "initial_reset", "initial_verify_devices",
                                "initial_verify_rows", "initial_rounds", "initial_round_events", "probes",
                                "probe_devices_drawn", "probe_devices_charged", "checkpoints",
                                "accuracy_samples", "baseline_forwards"), 0)
        totals.update(self._t)
        totals["pulses"] = totals["partial_set"] + totals["reset"]
        totals["initial_pulses"] = totals["initial_partial_set"] + totals["initial_reset"]
        return WorkSequence(cat(self._kind, np.int8), cat(self._size, np.int64), cat(self._pulses, np.int64),
                            cat(self._initial, bool), totals)
