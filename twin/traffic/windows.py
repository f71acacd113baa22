"""Multi-scale simulation windows of the traffic engine (docs/traffic.md, "Windows").

The arrival source runs only while a window is open: around every controller wake-up (from
``warmup`` before it until the controller sleeps again, ``tail`` more and an empty system), around
every power-off, and ``steady`` sampled steady-state windows; ``full`` mode opens one window over
the whole run. Each window records what part of it is *counted*; twin.traffic.metrics weights the
counted requests into run totals. A mixin of :class:`twin.traffic.engine.TrafficEngine`, whose
state (``env``, ``records``, ``in_system``, ``windowing`` ...) it uses.
"""

from __future__ import annotations

from collections.abc import Generator

import simpy

__all__ = ["WindowsMixin"]


class WindowsMixin:
    def _open_window(self) -> None:
        self._open += 1
        if self._open == 1:
            self.records.simulated.append((self.env.now, -1))
            self.env.process(self._source(self._window_epoch))

    def _close_window(self) -> None:
        self._open -= 1
        if self._open == 0:
            start, _ = self.records.simulated[-1]
            self.records.simulated[-1] = (start, self.env.now)
            self._window_epoch += 1

    def _window_at(self, open_ns: int, counted_from: int, until: int | None = None,
                   done: simpy.Event | None = None) -> Generator[simpy.Event, None, None]:
        """A maintenance or power window: simulated from ``open_ns``, counted from ``counted_from``
        until ``until`` (power) or ``done`` (the controller asleep again), then ``tail`` more and
        until the system is empty, so the backlog maintenance left is inside the window."""
        env = self.env
        yield env.timeout(max(0, open_ns - env.now))
        self._open_window()
        token = object()
        self._counting[token] = max(counted_from, 0)  # closed by finish() if the run ends first
        if until is not None:
            yield env.timeout(max(0, until - env.now))
        if done is not None:
            yield done
        yield env.timeout(self.windowing.tail)
        if self.in_system:
            drained = env.event()
            self._drained.append(drained)
            yield drained
        self.records.counted["maintenance"].append((self._counting.pop(token), env.now))
        self._close_window()

    def controller_wakes(self) -> None:
        """The chip's controller is awake (a campaign may run): its window stays open."""
        if self._awake is None:
            self._awake = self._pending if self._pending is not None else self.env.event()
            self._pending = None

    def controller_sleeps(self, until_ns: int | None) -> None:
        """The controller sleeps until ``until_ns`` (None: for good): close the window of its last
        activity and open one ``warmup`` before it wakes."""
        if self._awake is not None:
            self._awake.succeed()
            self._awake = None
        if self.windowed and until_ns is not None and until_ns < self.duration_ns:
            self._pending = self.env.event()
            self.env.process(self._window_at(until_ns - self.windowing.warmup, until_ns, done=self._pending))

    def _steady_windows(self) -> Generator[simpy.Event, None, None]:
        """One steady-state window in each of ``steady`` equal stretches of the run, at a random
        place inside it (stratified sampling): warm-up, then ``length`` counted."""
        env, w = self.env, self.windowing
        n, span = w.steady, w.warmup + w.length
        stretch = self.duration_ns // n
        starts = [i * stretch + int(self.rng.integers(0, max(1, stretch - span))) for i in range(n)]
        for start in starts:
            if start + span > self.duration_ns:
                break
            yield env.timeout(max(0, start - env.now))
            self._open_window()
            yield env.timeout(span)
            self.records.counted["steady"].append((start + w.warmup, env.now))
            self._close_window()
