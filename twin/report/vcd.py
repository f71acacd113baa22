"""Waveforms: the chip's signals over a window of simulated time, as a VCD file (``waveform.vcd``).

:class:`WaveformRecorder` is an observer on the chip's bus (``outputs.vcd: {start, stop}``,
docs/waveforms.md): the controller's FSM state, each tile's busy / probe / program signals, the
pulse generator's program-and-verify rounds (and, with ``simulation.granularity: pulse``, every
pulse on its channel), the power and, with traffic, the requests in the system. Events arrive in
simulated-time order but some carry earlier or later times (a busy interval is told at its end,
a session's rounds at its start), so value changes are kept as ``(t, signal, value)`` rows and
sorted when the file is written. Changes at or before ``start`` are folded into each signal's
value at ``start`` (so the first values are right), changes at or after ``stop`` are ignored, and
at most ``max_changes`` rows are kept (memory and file size bounded, like the event trace's
``TRACE_MAX_ROWS``): past that the file ends at the earliest change left out, and the summary
says how many were dropped. Times are integer nanoseconds (timescale 1 ns).
"""

from __future__ import annotations

import io
from array import array
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from vcd.writer import VCDWriter

from twin.chip.events import Busy, EventBus, Power, ProgramRounds, Programmed, Pulse, StateChange
from twin.units import duration_label

if TYPE_CHECKING:
    from twin.scenario.build import Assembly
    from twin.scenario.outputs import VcdWindow

__all__ = ["VCD_MAX_CHANGES", "VCD_MAX_TILES", "VCD_MAX_CHANNELS", "PULSE_CODES", "Signal", "WaveformRecorder",
           "attach_recorder"]

VCD_MAX_CHANGES = 1_000_000
"""Value changes a waveform keeps (24 MB of rows, a VCD of about 20 MB); later ones are counted, not kept."""
VCD_MAX_TILES = 256
"""Tiles that get signals (a chip of tiny tiles could have millions); the others are left out."""
VCD_MAX_CHANNELS = 64
"""Pulse channels that get a signal of their own; ``active`` counts every channel."""
PULSE_CODES = {"partial_set": 1, "reset": 2}
"""A channel's value while it drives a pulse (0: idle)."""


@dataclass(frozen=True)
class Signal:
    scope: str
    name: str
    var_type: str  # VCD: wire, integer or string
    size: int
    count: bool = False  # the value counts overlapping intervals (+1 / -1); a wire is high while any holds

    @property
    def path(self) -> str:
        return f"{self.scope}.{self.name}"


def _signals(tiles: int, channels: int, traffic: bool) -> list[Signal]:
    out = [Signal("chip.controller", "state", "string", 1), Signal("chip.controller", "campaign", "integer", 32),
           Signal("chip", "power", "wire", 1)]
    for name in ("round", "partial_set", "reset", "verify_rows"):
        out.append(Signal("chip.pulse_generator", name, "integer", 32))
    if channels:
        out.append(Signal("chip.pulse_generator", "active", "integer", 32, count=True))
        out += [Signal("chip.pulse_generator", f"channel{c}", "wire", 2) for c in range(channels)]
    for t in range(tiles):
        out += [Signal(f"chip.tile{t}", name, "wire", 1, count=True) for name in ("busy", "probe", "program")]
    if traffic:
        out += [Signal("chip.traffic", "in_system", "integer", 32), Signal("chip.traffic", "simulated", "wire", 1)]
    return out


class WaveformRecorder:
    """Value changes of the chip's signals within ``[start_ns, stop_ns)``, written by :meth:`vcd_file`."""

    def __init__(self, start_ns: int, stop_ns: int, *, tiles: int, channels: int, pulses: bool, traffic: bool,
                 initial_state: str = "IDLE", title: str = "", max_changes: int = VCD_MAX_CHANGES) -> None:
        if not 0 <= start_ns < stop_ns:
            raise ValueError(f"a waveform window needs 0 <= start < stop, got [{start_ns}, {stop_ns})")
        self.start_ns, self.stop_ns, self.max_changes, self.title = start_ns, stop_ns, max_changes, title
        self.tiles = tiles
        self.channels = min(channels, VCD_MAX_CHANNELS) if pulses else 0  # per-pulse signals: pulse mode only
        self.signals = _signals(min(tiles, VCD_MAX_TILES), self.channels, traffic)
        self._id = {s.path: i for i, s in enumerate(self.signals)}
        self.strings = [initial_state]  # string values by code
        self.initial = [0] * len(self.signals)  # each signal's value at start (a count for counted ones)
        self.initial[self._id["chip.power"]] = 1
        self._initial_t = [-1] * len(self.signals)  # the time of the level change that set it
        self.t, self.sig, self.value = array("q"), array("q"), array("q")
        self.dropped = 0
        self.cut_ns: int | None = None  # the earliest change left out (the file ends there)
        self._round = 0  # rounds of the current program-and-verify session so far
        self._channel_end = [0] * self.channels  # when each shown channel's pulse ends

    # --- events -------------------------------------------------------------------------------
    def attach(self, bus: EventBus) -> None:
        bus.attach(self._state, StateChange)
        bus.attach(self._busy, Busy)
        bus.attach(self._rounds, ProgramRounds)
        bus.attach(self._programmed, Programmed)
        bus.attach(self._power, Power)
        if self.channels:
            bus.attach(self._pulse, Pulse)

    def _change(self, t_ns: int, path: str, value: int) -> None:
        s = self._id.get(path)
        if s is None or t_ns >= self.stop_ns:  # a tile past VCD_MAX_TILES, or after the window
            return
        if t_ns <= self.start_ns:  # before the window: only its effect on the value at start is kept
            if self.signals[s].count:
                self.initial[s] += value
            elif t_ns >= self._initial_t[s]:  # the latest change wins (ties: the later one told)
                self.initial[s], self._initial_t[s] = value, t_ns
            return
        if len(self.t) >= self.max_changes:
            self.dropped += 1
            self.cut_ns = t_ns if self.cut_ns is None else min(self.cut_ns, t_ns)
            return
        self.t.append(t_ns)
        self.sig.append(s)
        self.value.append(value)

    def _interval(self, start_ns: int, end_ns: int, path: str) -> None:
        self._change(start_ns, path, 1)
        self._change(end_ns, path, -1)

    def _state(self, event: StateChange) -> None:
        if event.state not in self.strings:
            self.strings.append(event.state)
        self._change(event.t_ns, "chip.controller.state", self.strings.index(event.state))
        self._change(event.t_ns, "chip.controller.campaign", event.campaign)

    def _busy(self, event: Busy) -> None:
        scope = f"chip.tile{event.tile}"
        self._interval(event.t_ns, event.end_ns, f"{scope}.busy")
        if event.activity in ("probe", "program"):
            self._interval(event.t_ns, event.end_ns, f"{scope}.{event.activity}")

    def _rounds(self, event: ProgramRounds) -> None:
        """Each round's number in its session and its pulses and verify line reads, from its start.
        Only rounds that start in the window, and the last one before it, can show."""
        starts = event.starts_ns()[:len(event.duration_ns)]  # (a session of no rounds has no start)
        first = max(int(np.searchsorted(starts, self.start_ns, side="right")) - 1, 0)
        last = int(np.searchsorted(starts, self.stop_ns, side="left"))
        for i in range(first, last):
            t = int(starts[i])
            self._change(t, "chip.pulse_generator.round", self._round + i + 1)
            self._change(t, "chip.pulse_generator.partial_set", int(event.partial_set[i]))
            self._change(t, "chip.pulse_generator.reset", int(event.reset[i]))
            self._change(t, "chip.pulse_generator.verify_rows", int(event.verify_rows[i]))
        self._round += len(starts)

    def _programmed(self, event: Programmed) -> None:
        """The session is over: the pulse generator is idle."""
        for name in ("round", "partial_set", "reset", "verify_rows"):
            self._change(event.t_ns, f"chip.pulse_generator.{name}", 0)
        self._round = 0

    def _pulse(self, event: Pulse) -> None:
        """The pulse takes the lowest-numbered free channel (the chip's channels are a pool: which
        one drives it is a picture, not a model); past the shown channels it is counted only."""
        self._interval(event.t_ns, event.end_ns, "chip.pulse_generator.active")
        for c, end in enumerate(self._channel_end):
            if end <= event.t_ns:
                self._channel_end[c] = event.end_ns
                self._change(event.t_ns, f"chip.pulse_generator.channel{c}", PULSE_CODES[event.kind])
                self._change(event.end_ns, f"chip.pulse_generator.channel{c}", 0)
                return

    def _power(self, event: Power) -> None:
        self._change(event.t_ns, "chip.power", int(event.on))

    def in_system(self, t_ns: int, requests: int) -> None:
        """The traffic engine's hook (``TrafficEngine.watch``): requests queued or in service."""
        self._change(t_ns, "chip.traffic.in_system", requests)

    # --- snapshots ------------------------------------------------------------------------------
    def state(self) -> dict:
        return {"strings": list(self.strings), "initial": list(self.initial), "initial_t": list(self._initial_t),
                "t": array("q", self.t), "sig": array("q", self.sig), "value": array("q", self.value),
                "dropped": self.dropped, "cut_ns": self.cut_ns, "round": self._round,
                "channel_end": list(self._channel_end)}

    def load_state(self, state: dict) -> None:
        self.strings, self.initial, self._initial_t = list(state["strings"]), list(state["initial"]), \
            list(state["initial_t"])
        self.t, self.sig, self.value = array("q", state["t"]), array("q", state["sig"]), array("q", state["value"])
        self.dropped, self.cut_ns, self._round = state["dropped"], state["cut_ns"], state["round"]
        self._channel_end = list(state["channel_end"])

    # --- the file ---------------------------------------------------------------------------------
    def vcd_file(self, traffic_windows: list[tuple[int, int]] | None = None) -> tuple[str, dict]:
        """The VCD text and its summary (summary.json ``vcd``). ``traffic_windows``: the stretches
        the traffic engine simulated (``records.simulated``), shown as ``chip.traffic.simulated``."""
        t, sig, value = (np.frombuffer(a, dtype=np.int64) if len(a) else np.zeros(0, np.int64)
                         for a in (self.t, self.sig, self.value))
        initial = list(self.initial)
        simulated = self._id.get("chip.traffic.simulated")
        if simulated is not None and traffic_windows:
            edges = [(a, 1) for a, _ in traffic_windows] + [(b, 0) for _, b in traffic_windows if b >= 0]
            edges.sort()  # at one ns a close (0) before an open (1): a window opening as one closes stays open
            for a, on in edges:
                if a <= self.start_ns:
                    initial[simulated] = on
            inside = [(a, on) for a, on in edges if self.start_ns < a < self.stop_ns]
            t = np.concatenate([t, np.array([a for a, _ in inside], dtype=np.int64)])
            sig = np.concatenate([sig, np.full(len(inside), simulated, dtype=np.int64)])
            value = np.concatenate([value, np.array([on for _, on in inside], dtype=np.int64)])
        end_ns = self.stop_ns if self.cut_ns is None else self.cut_ns
        order = np.argsort(t, kind="stable")
        keep = order[t[order] < end_ns]  # past a cut, the file stops: every change before it was kept
        buffer = io.StringIO()
        writer = VCDWriter(buffer, timescale="1 ns", date="", init_timestamp=self.start_ns,
                           comment=f"{self.title}\nwindow [{self.start_ns}, {self.stop_ns}) ns: "
                                   f"{duration_label(self.start_ns)} to {duration_label(self.stop_ns)}".strip(),
                           version="pcm-twin (docs/waveforms.md)")
        current = initial[:]  # counts for counted signals, else values
        shown = [self._shown(s, v) for s, v in enumerate(current)]
        variables = [writer.register_var(s.scope, s.name, s.var_type, size=s.size, init=self._text(s, shown[i]))
                     for i, s in enumerate(self.signals)]
        changes = 0
        touched: list[int] = []
        times, signals, values = t[keep].tolist(), sig[keep].tolist(), value[keep].tolist()
        for k, (now, s, v) in enumerate(zip(times, signals, values)):
            current[s] = current[s] + v if self.signals[s].count else v
            touched.append(s)
            if k + 1 < len(times) and times[k + 1] == now:
                continue  # the value at an instant is the one after all its changes
            for s in dict.fromkeys(touched):
                new = self._shown(s, current[s])
                if new != shown[s]:
                    writer.change(variables[s], now, self._text(self.signals[s], new))
                    shown[s] = new
                    changes += 1
            touched.clear()
        writer.close(end_ns)
        summary = {"start_ns": self.start_ns, "stop_ns": self.stop_ns, "end_ns": end_ns, "changes": changes,
                   "dropped": self.dropped + int(len(order) - len(keep)), "signals": len(self.signals),
                   "tiles": min(self.tiles, VCD_MAX_TILES), "tiles_left_out": max(self.tiles - VCD_MAX_TILES, 0)}
        return buffer.getvalue(), summary

    def _shown(self, s: int, value: int) -> int:
        """What a signal shows for its value (a counted wire: high while any interval holds)."""
        signal = self.signals[s]
        return int(value > 0) if signal.count and signal.var_type == "wire" else value

    def _text(self, signal: Signal, value: int) -> int | str:
        return self.strings[value] if signal.var_type == "string" else value


def attach_recorder(assembly: Assembly, window: VcdWindow) -> WaveformRecorder:
    """The recorder for ``outputs.vcd`` on a built run, attached to its bus (and traffic engine),
    kept as ``observers.waveforms`` so that snapshots save and restore it."""
    chip, scenario = assembly.chip, assembly.scenario
    title = "" if scenario is None else f"pcm-twin scenario {scenario.name} (sha256 {scenario.sha256()})"
    recorder = WaveformRecorder(window.start, window.stop, tiles=chip.layout.tiles, channels=chip.costs.channels,
                                pulses=chip.granularity == "pulse", traffic=chip.traffic is not None,
                                initial_state=chip.controller.state.value, title=title)
    assembly.observers.waveforms = recorder
    recorder.attach(chip.bus)
    if chip.traffic is not None:
        chip.traffic.watch = recorder.in_system
    return recorder
