"""Logging of the ``twin`` commands (structlog): readable lines or JSON lines on stderr, never stdout.

:func:`configure` is called once by the command line: ``-q`` keeps warnings and errors, the default
adds what a run is doing (info), ``-v`` every campaign and every tile (debug); ``--log-json``
writes one JSON object per line instead. Library code asks :func:`get_logger` for a logger bound
to a scope (``twin.cli``, ``chip.controller``, ``chip.tile3``): until the command line configures
logging it stays silent, so ``simulate()`` in a notebook or on a Dask worker prints nothing.

:class:`ChipLog` logs a run's correction campaigns and faults from its chip's event bus, attached
from outside the chip (``twin.simulate``, ``twin.resume``): the chip knows nothing of logging. A
ten-year run holds thousands of campaigns, so they are summarised (docs/cli.md "Logging"):

* info: one line per tenth of the deployment (the campaigns of that stretch together: tiles
  probed and corrected, devices corrected, pulses, misreads), the end of deployment, and the
  first injected fault of each kind on each tile;
* warning: a tile given up (dead: the firmware's ``TILE_FAULT``), and the first time devices of a
  tile are given up after their retries (``FAULT``; later ones at debug);
* debug: every campaign (``chip.controller``), every tile of it (``chip.tileN``), every fault.

A listener only reads events: logging never changes what a run computes or writes.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from twin.units import format_duration as duration_label  # short human labels (logs are for reading)

if TYPE_CHECKING:
    from twin.chip.events import Deployed, Fault, StateChange
    from twin.scenario.build import Assembly

__all__ = ["QUIET", "NORMAL", "VERBOSE", "configure", "unconfigure", "configured", "settings_json", "get_logger", "say", "ChipLog",
           "attach_chip_log", "INFO_LINES_PER_RUN"]

QUIET, NORMAL, VERBOSE = -1, 0, 1
"""Verbosity: ``-q`` (warnings and errors), the default (info), ``-v`` (debug)."""
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}
INFO_LINES_PER_RUN = 10
"""Campaign summary lines at info per run: one per tenth of the deployment."""


@dataclass
class _Settings:
    level: int = logging.WARNING
    json_lines: bool = False
    configured: bool = False


_settings = _Settings()


class _Stderr:
    """Writes each line to the ``sys.stderr`` of the moment (a live progress bar swaps in a proxy
    that prints above the bar), flushed: a line is never held back behind a long simulation."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


def configure(verbosity: int = NORMAL, json_lines: bool = False) -> None:
    """Set up structlog for this process: the level of ``verbosity``, readable or JSON lines, on stderr."""
    level = _LEVELS[max(QUIET, min(VERBOSE, verbosity))]
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    if json_lines:
        renderer: Any = structlog.processors.JSONRenderer(sort_keys=True)
        processors = [structlog.processors.add_log_level, timestamper, structlog.processors.format_exc_info, renderer]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty(), sort_keys=False)
        processors = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="%H:%M:%S"), renderer]
    structlog.configure(processors=processors, wrapper_class=structlog.make_filtering_bound_logger(level),
                        logger_factory=lambda *args: _Stderr(), cache_logger_on_first_use=False)
    _settings.level, _settings.json_lines, _settings.configured = level, json_lines, True


def unconfigure() -> None:
    """Back to silence (the end of an in-process ``twin.cli.main``: later library use logs nothing)."""
    _settings.configured = False


def configured() -> bool:
    """Whether the command line has set up logging in this process (else twin code logs nothing)."""
    return _settings.configured


def settings_json() -> bool:
    """Whether messages are JSON lines (``--log-json``)."""
    return _settings.configured and _settings.json_lines


def get_logger(scope: str) -> Any:
    """A logger bound to ``scope``; silent until :func:`configure` (library use prints nothing)."""
    if not _settings.configured:
        return _SILENT
    return structlog.get_logger().bind(scope=scope)


class _Silent:
    """A logger that drops everything (``info``, ``warning``, ``log``, ``bind`` ...)."""

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **fields: self if name == "bind" else None


_SILENT = _Silent()


def say(text: str, event: str = "message", **fields: Any) -> None:
    """A message for the person at the terminal (a table, ``results: DIR/``): printed as it is on
    stderr, or as one JSON line with ``--log-json``; nothing with ``-q``."""
    if not _settings.configured or _settings.level > logging.INFO:
        return
    if _settings.json_lines:
        get_logger("twin.cli").info(event, text=text, **fields)
    else:
        print(text, file=sys.stderr, flush=True)


@dataclass
class _Totals:
    campaigns: int = 0
    first: int = 0
    probed: int = 0
    corrected: int = 0
    devices: int = 0
    pulses: int = 0
    misread: int = 0
    faults: int = 0

    def add(self, other: _Totals) -> None:
        if not self.campaigns:
            self.first = other.first
        for name in ("campaigns", "probed", "corrected", "devices", "pulses", "misread", "faults"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


class ChipLog:
    """A run's campaigns and faults as log lines (the levels: this module's docstring). Reads the
    campaign table and the truth scoring the observers keep, when a campaign ends (the controller
    returns to ``IDLE``), so it adds no work per pulse or per charge."""

    def __init__(self, assembly: Assembly, summary_level: int = logging.INFO) -> None:
        from twin.chip.events import Deployed, Fault, StateChange
        self.assembly = assembly
        self.summary_level = summary_level
        self.duration_ns = assembly.chip.duration_ns
        self.tiles = len(assembly.chip.tiles)
        self.controller = get_logger("chip.controller")
        self.debug = _settings.level <= logging.DEBUG
        self._window = _Totals()
        self._faults = 0
        self._next_mark = 1  # the next tenth of the deployment that gets an info line
        self._first_faults: set[tuple[str, int]] = set()
        self._tiles_giving_up: set[int] = set()
        bus = assembly.chip.bus
        bus.attach(self._state, StateChange)
        bus.attach(self._fault, Fault)
        bus.attach(self._deployed, Deployed)

    def _scored(self, misread: int) -> int | None:
        """Misreads as logged: None where there are no levels to misread (analog weights), as in
        campaigns.csv and summary.json."""
        return misread if self.assembly.observers.scoring.levels_scored else None

    def _deployed(self, event: Deployed) -> None:
        self.controller.log(self.summary_level, "deployed", t=duration_label(event.t_ns), tiles=self.tiles)

    def _state(self, event: StateChange) -> None:
        if event.state == "IDLE" and event.tile is None and event.campaign > 0:
            self._campaign_done(event.campaign, event.t_ns)
        elif event.state == "TILE_FAULT" and event.tile is not None:
            get_logger(f"chip.tile{event.tile}").warning(
                "tile given up: its reference devices read at the floor (dead tile or periphery); never probed again",
                campaign=event.campaign, t=duration_label(event.t_ns))
        elif event.state == "FAULT" and event.tile is not None:
            given_up = len(self.assembly.chip.controller.faulty.get(event.tile, ()))
            first = event.tile not in self._tiles_giving_up
            self._tiles_giving_up.add(event.tile)
            if first or self.debug:  # a worn chip gives up devices in every campaign: once a tile at warning
                get_logger(f"chip.tile{event.tile}").log(
                    logging.WARNING if first else logging.DEBUG,
                    "devices given up after their retries" + (" (first time on this tile; later ones at debug)"
                                                              if first else ""),
                    campaign=event.campaign, t=duration_label(event.t_ns), devices_given_up=given_up)

    def _campaign_done(self, campaign: int, t_ns: int) -> None:
        table = self.assembly.observers.campaigns.rows
        scores = self.assembly.observers.scoring.scores
        totals = _Totals(campaigns=1, first=campaign, faults=self._faults)
        self._faults = 0
        start = t_ns
        for tile in range(self.tiles):
            row = table.get((campaign, tile))
            if row is None:
                continue
            misread = scores.get((campaign, tile), {}).get("misread", 0)
            pulses = row.partial_set + row.reset
            totals.probed += 1
            totals.corrected += int(row.corrected)
            totals.devices += row.devices_corrected
            totals.pulses += pulses
            totals.misread += misread
            start = min(start, row.start_ns)
            if self.debug:
                get_logger(f"chip.tile{tile}").debug(
                    "tile corrected" if row.corrected else "tile probed", campaign=campaign,
                    devices_corrected=row.devices_corrected, pulses=pulses, misread=self._scored(misread),
                    drift_metric=round(row.drift_metric, 6))
        if self.debug:
            self.controller.debug("campaign", campaign=campaign, t=duration_label(start),
                                  took=duration_label(t_ns - start), tiles_probed=totals.probed,
                                  tiles_corrected=totals.corrected, devices_corrected=totals.devices,
                                  pulses=totals.pulses, misread=self._scored(totals.misread), faults=totals.faults)
        self._window.add(totals)
        tenth = t_ns * INFO_LINES_PER_RUN // max(1, self.duration_ns)
        if tenth >= self._next_mark:
            self._summary(t_ns)
            self._next_mark = tenth + 1

    def _summary(self, t_ns: int) -> None:
        w = self._window
        if w.campaigns:
            span = f"{w.first}" if w.campaigns == 1 else f"{w.first}-{w.first + w.campaigns - 1}"
            self.controller.log(self.summary_level, "campaigns", campaigns=span,
                                t=f"{duration_label(t_ns)} of {duration_label(self.duration_ns)}",
                                tiles_probed=w.probed, tiles_corrected=w.corrected, devices_corrected=w.devices,
                                pulses=w.pulses, misread=self._scored(w.misread), faults=w.faults)
        self._window = _Totals()

    def _fault(self, event: Fault) -> None:
        if event.campaign is not None:  # counted in its campaign's line (not those of the first programming)
            self._faults += event.count
        key = (event.kind, event.tile)
        first = key not in self._first_faults
        self._first_faults.add(key)
        if first or self.debug:
            fields = {"kind": event.kind, "count": event.count, "campaign": event.campaign,
                      "t": duration_label(event.t_ns), "source": event.scope}
            if event.kind == "pulse":
                fields |= {"devices": event.devices, "recovered": event.recovered}
            logger = get_logger(f"chip.tile{event.tile}")
            if first:
                logger.info("injected fault (first of its kind on this tile; later ones at debug)", **fields)
            else:
                logger.debug("injected fault", **fields)

    def finish(self) -> None:
        """The campaigns since the last summary line (the end of the run)."""
        self._summary(self.assembly.chip.env.now)


def attach_chip_log(assembly: Assembly, summary_level: int = logging.INFO) -> ChipLog | None:
    """A :class:`ChipLog` on ``assembly``'s bus (call its :meth:`~ChipLog.finish` after the run),
    or None when the command line has not configured logging (library use: no listener, no cost)."""
    return ChipLog(assembly, summary_level) if _settings.configured else None
