"""Resumable runs: checkpoints of a run at campaign boundaries, and a run continued from one.

A checkpoint is :meth:`Assembly.snapshot` (devices, random generators, controller, ledger and
every observer, so the results so far) plus the wall time spent, pickled to ``checkpoint.pkl``
atomically. It is taken only when the controller goes to sleep after a campaign (the chip's
:class:`~twin.chip.events.Waiting` event): no command is in flight then, and taking it changes
nothing the run computes, so a run with checkpoints gives the same ``summary.json`` as one
without (apart from ``wall_s``), and so does a run resumed from any of them (``events``
included: ``Chip.load_state`` does not count the restart's own bookkeeping).

Runs with inference traffic cannot be snapshotted yet (requests in flight): for them no
checkpoint is taken. (Not to be confused with the scenario's ``checkpoints``: evaluation times.)
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from twin.atomic import atomic_write_with
from twin.chip.events import Waiting
from twin.log import attach_chip_log
from twin.report.records import Result, collect
from twin.scenario.build import Assembly, build
from twin.scenario.schema import Scenario

__all__ = ["CHECKPOINT_FILE", "CheckpointSchedule", "Checkpointer", "ResumeError", "load_checkpoint",
           "run_checkpointed"]

CHECKPOINT_FILE = "checkpoint.pkl"
FORMAT = 3  # of the pickled checkpoint; another format is refused, not guessed at (3: with the unmaintained
# baselines and the waveform recorder; 2: the state inline)


class ResumeError(ValueError):
    """A checkpoint that cannot be used: unreadable, of another format, or of another run."""


@dataclass(frozen=True)
class CheckpointSchedule:
    """When to checkpoint, looked at each time the controller goes to sleep after a campaign:
    every ``every_campaigns`` campaigns and every ``every_seconds`` of wall time, whichever
    comes first (0 switches either off)."""

    every_campaigns: int = 0
    every_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.every_campaigns < 0:
            raise ValueError(f"--checkpoint-every-campaigns must be >= 0 (0: off), got {self.every_campaigns}")
        if not self.every_seconds >= 0:  # also NaN
            raise ValueError(f"--checkpoint-every-seconds must be >= 0 (0: off), got {self.every_seconds}")

    @property
    def enabled(self) -> bool:
        return self.every_campaigns > 0 or self.every_seconds > 0


class Checkpointer:
    """Listens for the controller's :class:`Waiting` on the chip's bus; when a checkpoint is due,
    hands ``write`` the checkpoint (a dict whose device arrays share the live memory: ``write``
    must serialise it before returning). The snapshot is taken inside the controller's SimPy
    step, before its wait is scheduled: the restored controller schedules that same wait."""

    def __init__(self, assembly: Assembly, schedule: CheckpointSchedule, write: Callable[[dict], None],
                 wall_before_s: float = 0.0, started: float | None = None,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.assembly = assembly
        self.schedule = schedule
        self.write = write
        self.clock = clock
        self.wall_before_s = wall_before_s  # wall time of the runs this one continues, up to its checkpoint
        self.started = clock() if started is None else started  # this process's run, build included
        self.written = 0
        self._last_campaigns = assembly.chip.controller.campaigns
        self._last_wall = self.started
        assembly.chip.bus.attach(self._waiting, Waiting)

    def _waiting(self, event: Waiting) -> None:
        # A wait of zero ends at once: the restored controller would start the next campaign without
        # it, one SimPy event fewer. Such a point is skipped; the next one serves.
        if event.until_ns <= event.t_ns:
            return
        campaigns = self.assembly.chip.controller.campaigns  # the chip's controller: load_state replaces it
        s = self.schedule
        due = (s.every_campaigns > 0 and campaigns - self._last_campaigns >= s.every_campaigns) or \
              (s.every_seconds > 0 and self.clock() - self._last_wall >= s.every_seconds)
        if due:
            self.save()

    def save(self) -> None:
        chip = self.assembly.chip
        payload = {"format": FORMAT, "state": self.assembly.state(copy=False),
                   "wall_s": self.wall_before_s + self.clock() - self.started,
                   "t_ns": chip.env.now, "campaigns": chip.controller.campaigns}
        self.write(payload)
        self.written += 1
        self._last_campaigns = chip.controller.campaigns
        self._last_wall = self.clock()


def write_checkpoint(path: Path, payload: dict) -> None:
    """Pickle ``payload`` straight into ``path``, atomically: no bytes copy of the whole state in
    memory (chip64's device state is 0.8 GB), the device arrays written from where they live."""
    atomic_write_with(path, lambda handle: pickle.dump(payload, handle, protocol=pickle.HIGHEST_PROTOCOL))


def load_checkpoint(path: Path) -> dict:
    """The checkpoint in ``path`` (a pickle: resume only folders you trust)."""
    try:
        payload = pickle.loads(Path(path).read_bytes())
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError, ValueError) as exc:
        raise ResumeError(f"--resume: {path} cannot be read ({type(exc).__name__}: {exc}); "
                          "start afresh with --force") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ResumeError(f"--resume: {path} is not a checkpoint of this version of pcm-twin (format "
                          f"{payload.get('format') if isinstance(payload, dict) else '?'}, expected {FORMAT}); "
                          "start afresh with --force")
    return payload


def run_checkpointed(scenario: Scenario, folder: Path, schedule: CheckpointSchedule, *, resume: bool = False,
                     progress: Callable[[int], None] | None = None,
                     log: Callable[[str], None] = lambda line: None) -> Result:
    """Build and run ``scenario``, checkpointing into ``folder / checkpoint.pkl`` as ``schedule``
    says; with ``resume`` continue from that checkpoint if there is one (else from the start)."""
    started = time.perf_counter()
    checkpoint = Path(folder) / CHECKPOINT_FILE
    wall_before = 0.0
    restored = resume and checkpoint.exists()
    payload = load_checkpoint(checkpoint) if restored else None  # an unreadable one before the build
    assembly = build(scenario, progress)
    chip_log = attach_chip_log(assembly)  # campaigns and faults on stderr (twin.log); reads events only
    if payload is not None:
        try:
            assembly.restore(payload["state"])
        except ValueError as exc:  # the snapshot of another scenario or network
            raise ResumeError(f"--resume: {checkpoint}: {exc}; start afresh with --force") from None
        wall_before = payload["wall_s"]
        log(f"resuming from {checkpoint}: {payload['campaigns']} campaigns done, simulated time "
            f"{payload['t_ns'] / 1e9:.6g} s of {scenario.duration / 1e9:.6g} s")
    elif resume:
        log(f"no checkpoint in {folder}: the run starts again from the beginning")
    if schedule.enabled and assembly.traffic is None:
        Checkpointer(assembly, schedule, lambda payload: write_checkpoint(checkpoint, payload), wall_before, started)
    try:
        if restored:
            assembly.resume()
        else:
            assembly.run()
    except OSError as exc:  # a checkpoint write failed inside the controller's SimPy step
        # SimPy re-raises a copy of a process's exception, without its file name: raise the original
        raise exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
    if chip_log is not None:
        chip_log.finish()
    return collect(assembly, wall_before + time.perf_counter() - started)
