"""The request-level traffic engine: requests queue for the chip's tiles, maintenance and power-off
take the tiles away from them (docs/traffic.md).

Contention is SimPy's: each *service unit* (the tiles a request holds together: a whole replica
in sequential mode, one layer of a replica in pipelined mode) is a ``PreemptiveResource``.
Requests ask for it at priority ``TRAFFIC``; maintenance (probe, program-and-verify) and power-off
at priority ``MAINTENANCE``, preempting a request in service (it restarts) or, in ``wait`` mode,
waiting for it to finish and going before every waiting request.

Multi-scale: the arrival source runs only inside *windows* (``Windowing``): around every
controller wake-up (from ``warmup`` before it until the controller sleeps again, ``tail`` more and
an empty system), around every power-off, and ``steady`` sampled steady-state windows; or over the
whole run (``full``). :mod:`twin.traffic.metrics` weights the windows into run totals.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np
import simpy

from firmware_model.interface import Load
from twin.chip.events import EventBus, Power
from twin.traffic.arrivals import ArrivalStream
from twin.traffic.metrics import traffic_figures
from twin.traffic.records import AFFECTED, PREEMPTED, TrafficRecords
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.service import ServiceModel
from twin.traffic.windows import WindowsMixin

__all__ = ["POWER", "MAINTENANCE", "TRAFFIC", "ServiceUnit", "TrafficEngine", "Claim"]

POWER = -2  # priorities on a service unit (lower goes first): power-off, maintenance, requests
MAINTENANCE = -1
TRAFFIC = 0


class ServiceUnit:
    """Tiles that serve a request together, behind one SimPy resource."""

    def __init__(self, env: simpy.Environment, replica: int, stage: int, tiles: tuple[int, ...],
                 service_ns: int) -> None:
        self.resource = simpy.PreemptiveResource(env, capacity=1)
        self.replica, self.stage, self.tiles, self.service_ns = replica, stage, tiles, service_ns
        self.queue: deque[list] = deque()  # requests waiting for this stage (stage 0: the shared queue)
        self.wake: simpy.Event | None = None


@dataclass
class Claim:
    """Maintenance's hold on a service unit (returned to :meth:`TrafficEngine.release`)."""

    unit: ServiceUnit
    request: simpy.resources.resource.PriorityRequest




class TrafficEngine(WindowsMixin):
    """Arrivals, the queue, the service units and the power schedule of one chip."""

    scope = "chip.traffic"

    def __init__(self, env: simpy.Environment, service: ServiceModel, workload: Workload, power: PowerSchedule,
                 windowing: Windowing, duration_ns: int, tiles_per_replica: int, rng: np.random.Generator,
                 trace_ns: np.ndarray | None = None, bus: EventBus | None = None, windowed: bool = False) -> None:
        self.env, self.service, self.workload, self.power, self.windowing = env, service, workload, power, windowing
        self.duration_ns, self.tiles_per_replica, self.rng = duration_ns, tiles_per_replica, rng
        self.bus = EventBus() if bus is None else bus
        self.windowed = windowed
        self.stream = ArrivalStream(workload, rng, trace_ns)
        self.records = TrafficRecords()
        self.off_intervals = power.off_intervals(duration_ns)
        self.units: list[list[ServiceUnit]] = []
        self._unit_of_tile: dict[int, ServiceUnit] = {}
        self._build_units()
        self.queue = self.units[0][0].queue if len(self.units) == 1 else deque()
        for replica in self.units:
            replica[0].queue = self.queue  # every replica's first stage serves the shared queue
        self._first_stages = [replica[0] for replica in self.units]
        self.in_system = 0
        self._last_change = 0
        self.watch: Callable[[int, int], None] | None = None  # told (t_ns, in_system) at each change: waveforms
        self._down = [0] * len(self.units)  # maintenance holds per replica
        self._taken = [0] * len(self.units)  # times each replica was taken for maintenance
        self._replicas_down = 0
        self.power_off = False
        self._power_on: simpy.Event | None = None
        self.outage_epoch = 0
        self._open = 0  # windows open (the source runs while > 0)
        self._window_epoch = 0
        self._pending: simpy.Event | None = None  # the window of the controller's next wake-up
        self._awake: simpy.Event | None = None  # the window of its current activity
        self._drained: list[simpy.Event] = []
        self._counting: dict[object, int] = {}  # open maintenance windows: counted from

    # --- structure ---------------------------------------------------------------------------
    def _build_units(self) -> None:
        layers = self.service.layers
        for r in range(self.workload.replicas):
            base = r * self.tiles_per_replica
            if self.workload.layers == "sequential":
                tiles = tuple(base + t for layer in layers for t in layer.tiles)
                stages = [ServiceUnit(self.env, r, 0, tiles, self.service.sequential_ns)]
            else:
                stages = [ServiceUnit(self.env, r, i, tuple(base + t for t in layer.tiles), self.service.stage_ns(i))
                          for i, layer in enumerate(layers)]
            self.units.append(stages)
            for unit in stages:
                for tile in unit.tiles:
                    self._unit_of_tile[tile] = unit

    @property
    def outage(self) -> bool:
        """No complete replica can serve (maintenance on every replica, or the chip is off)."""
        return self.power_off or self._replicas_down == len(self.units)

    def load(self) -> Load:
        """What the firmware may see: the number of requests waiting (docs/traffic.md)."""
        return Load(self.env.now, len(self.queue))

    # --- processes -----------------------------------------------------------------------------
    def start(self) -> None:
        for replica in self.units:
            for unit in replica:
                self.env.process(self._server(unit, replica))
        if self.off_intervals:
            self.env.process(self._power())
        if self.windowed:
            self.env.process(self._steady_windows())
        else:
            self._open_window()

    def _source(self, epoch: int) -> Generator[simpy.Event, None, None]:
        """Arrivals for one simulated stretch (a window, or the whole run): a new process each
        time the source turns on, so a stretch that opens while an old one sleeps loses nothing."""
        env = self.env
        self.stream.restart(env.now)
        while True:
            t = self.stream.next()
            if t >= self.duration_ns:
                return
            if t > env.now:
                yield env.timeout(t - env.now)
            if self._window_epoch != epoch:
                return  # the window closed before this arrival: it falls in an aggregated gap
            self._arrive()
            if self.power_off and (self.power.off_arrivals == "drop" or self._queue_full()):
                self._skip_while_refused()  # nothing can enter until power returns

    def _queue_full(self) -> bool:
        """No room: ``queue_capacity`` requests wait, beyond those an idle server is about to take."""
        capacity = self.workload.queue_capacity
        if capacity is None or len(self.queue) < capacity:
            return False
        idle = sum(1 for u in self._first_stages if u.wake is not None and not u.wake.triggered
                   and (self._down[u.replica] == 0 or 0 not in self._down))  # ... and would take one
        return len(self.queue) >= capacity + idle

    def _skip_while_refused(self) -> None:
        """While the chip is off and refuses requests (drop mode, or a full queue in hold mode:
        nothing leaves it until power returns), count the arrivals until it is back on instead of
        generating them (exact in law; docs/traffic.md)."""
        back = next((b for a, b in self.off_intervals if a <= self.env.now < b), self.env.now)
        count = self.stream.skip(min(back, self.duration_ns), self.env.now + 1)
        if count:
            self.records.bulk_drops.append((self.env.now, count))

    def _arrive(self) -> None:
        rec = self.records
        now = self.env.now
        if (self.power_off and self.power.off_arrivals == "drop") or self._queue_full():
            rec.arrival.append(now)
            rec.start.append(-1)
            rec.end.append(-1)
            rec.flags.append(AFFECTED if self.power_off else 0)
            return
        self._in_system_by(1)
        # [arrival, outage epoch at arrival (-1: arrived in an outage), flags, times its replica had been
        #  taken for maintenance when it entered (set at its first stage)]
        self.queue.append([now, -1 if self.outage else self.outage_epoch, 0, 0])
        self._wake(self._first_stages)

    def _wake(self, stages: list[ServiceUnit]) -> None:
        """Wake one idle server of ``stages``, one whose tiles are free if there is one."""
        idle = [u for u in stages if u.wake is not None and not u.wake.triggered]
        if idle:
            def free(units: list[ServiceUnit]) -> list[ServiceUnit]:
                return [u for u in units if not u.resource.users and not u.resource.queue]
            up = [u for u in idle if self._down[u.replica] == 0]
            (free(up) or up or free(idle) or idle)[0].wake.succeed()

    def _server(self, unit: ServiceUnit, replica: list[ServiceUnit]) -> Generator[simpy.Event, None, None]:
        env, last = self.env, unit.stage == len(replica) - 1
        queue = unit.queue
        while True:
            if not queue or (unit.stage == 0 and self._down[unit.replica] and 0 in self._down):
                # nothing to do, or this replica is being corrected while another is whole: leave it the work
                unit.wake = env.event()
                yield unit.wake
                unit.wake = None
                continue
            hold = unit.resource.request(priority=TRAFFIC, preempt=False)
            try:
                yield hold
            except simpy.Interrupt:  # granted and preempted in the same instant: nothing started
                continue
            if not queue:
                unit.resource.release(hold)
                continue
            request = queue.popleft()
            start = env.now
            if unit.stage == 0:
                request[3] = self._taken[unit.replica]
            if last and (request[1] < 0 or request[1] != self.outage_epoch or request[3] != self._taken[unit.replica]):
                # an outage came between its arrival and this (final) start, or its replica was
                # taken for maintenance while the request was inside it (pipelined)
                request[2] |= AFFECTED
            try:
                yield env.timeout(unit.service_ns)
                unit.resource.release(hold)
            except simpy.Interrupt:  # preempted: its inference restarts (this stage, pipelined) ...
                if env.now - start < unit.service_ns:  # ... unless it finished at that very instant
                    self._preempted(request, queue, env.now - start)
                    continue
            if last:
                self._depart(request, start)
            else:
                replica[unit.stage + 1].queue.append(request)
                self._wake([replica[unit.stage + 1]])
            if queue and unit.stage == 0 and len(self.units) > 1:
                self._wake(self._first_stages)

    def _preempted(self, request: list, queue: deque, served_ns: int) -> None:
        """Maintenance or power-off took the tiles: the request restarts (or is lost with the power)."""
        request[2] |= PREEMPTED
        self.records.preemptions += 1
        self.records.wasted_requests += served_ns / self.service.sequential_ns
        if self.power_off and self.power.off_arrivals == "drop":
            self._drop(request)  # power lost: the request in service is lost with it
        else:
            queue.appendleft(request)

    def _depart(self, request: list, start: int) -> None:
        rec = self.records
        self._in_system_by(-1)
        flags = request[2]
        if flags & PREEMPTED:
            flags |= AFFECTED
        rec.arrival.append(request[0])
        rec.start.append(start)
        rec.end.append(self.env.now)
        rec.flags.append(flags)
        self._check_drained()

    def _check_drained(self) -> None:
        if self.in_system == 0 and self._drained:
            for event in self._drained:
                event.succeed()
            self._drained.clear()

    def _count_change(self) -> None:
        now = self.env.now
        self.records.area_in_system += self.in_system * (now - self._last_change)
        self._last_change = now

    def _in_system_by(self, delta: int) -> None:
        self._count_change()
        self.in_system += delta
        if self.watch is not None:
            self.watch(self.env.now, self.in_system)

    # --- maintenance ---------------------------------------------------------------------------
    def claim(self, tile: int) -> Generator[simpy.Event, None, Claim | None]:
        """Take ``tile``'s service unit away from traffic for maintenance (None: not a served tile)."""
        unit = self._unit_of_tile.get(tile)
        if unit is None:
            return None
        request = unit.resource.request(priority=MAINTENANCE, preempt=self.workload.maintenance == "preempt")
        yield request
        self._replica_down(unit.replica, +1)
        if self.queue and len(self.units) > 1:
            self._wake(self._first_stages)  # another replica takes over the waiting requests
        return Claim(unit, request)

    def hold_all(self) -> list[list[Claim]]:
        """Every service unit taken from traffic at once, per replica (the deployment at t = 0:
        the units are free, so the claims are granted at once)."""
        held = []
        for replica in self.units:
            claims = []
            for unit in replica:
                request = unit.resource.request(priority=MAINTENANCE, preempt=True)
                assert request.triggered, "hold_all needs free service units"
                self._replica_down(unit.replica, +1)
                claims.append(Claim(unit, request))
            held.append(claims)
        return held

    def release_all(self, claims: list[Claim]) -> None:
        for claim in claims:
            self.release(claim)

    def release(self, claim: Claim | None) -> None:
        if claim is None:
            return
        claim.unit.resource.release(claim.request)
        self._replica_down(claim.unit.replica, -1)

    def _replica_down(self, replica: int, delta: int) -> None:
        was_out = self.outage
        before = self._down[replica]
        self._down[replica] += delta
        if before == 0 and delta > 0:
            self._replicas_down += 1
            self._taken[replica] += 1
        elif self._down[replica] == 0 and delta < 0:
            self._replicas_down -= 1
            if self.queue:
                self._wake([self.units[replica][0]])  # back in service: take a share of the queue
        if self.outage and not was_out:
            self.outage_epoch += 1

    # --- power -------------------------------------------------------------------------------
    def _power(self) -> Generator[simpy.Event, None, None]:
        env = self.env
        for off_start, off_end in self.off_intervals:
            if self.windowed:
                env.process(self._window_at(off_start - self.windowing.warmup, off_start, until=off_end))
                yield env.timeout(0)  # let the window open first
            yield env.timeout(off_start - env.now)
            was_out = self.outage
            self.power_off = True
            self._power_on = env.event()
            if not was_out:
                self.outage_epoch += 1
            self.bus.emit(Power(env.now, "chip.power", False))
            if self.power.off_arrivals == "drop":
                self._drop_queue()
            # Ahead of any maintenance claim already waiting (priority POWER); preempting a request
            # in service, never a maintenance operation in progress (it completes first).
            claims = [unit.resource.request(priority=POWER, preempt=not self._maintenance_holds(unit))
                      for replica in self.units for unit in replica]
            yield env.timeout(off_end - env.now)
            for unit, claim in zip((u for replica in self.units for u in replica), claims):
                if claim.triggered:
                    unit.resource.release(claim)
                else:
                    claim.cancel()
            self.power_off = False
            self._power_on.succeed()
            self.bus.emit(Power(env.now, "chip.power", True))

    @staticmethod
    def _maintenance_holds(unit: ServiceUnit) -> bool:
        return any(user.priority == MAINTENANCE for user in unit.resource.users)

    def _drop_queue(self) -> None:
        """Power lost (``drop`` mode): the requests waiting are lost with it; those in service are
        preempted by the power-off and dropped by their server."""
        for replica in self.units:
            for unit in replica:
                while unit.queue:
                    self._drop(unit.queue.popleft())

    def _drop(self, request: list) -> None:
        rec = self.records
        self._in_system_by(-1)
        rec.arrival.append(request[0])
        rec.start.append(-1)
        rec.end.append(-1)
        rec.flags.append(AFFECTED | request[2])
        self._check_drained()

    def wait_for_power(self) -> Generator[simpy.Event, None, None]:
        """The controller pauses while the chip is off (a campaign due then runs when it is back)."""
        while self.power_off:
            yield self._power_on

    def on_time_ns(self) -> int:
        return self.duration_ns - sum(b - a for a, b in self.off_intervals)

    def finish(self) -> tuple[tuple[tuple[str, float], ...], dict[str, int]]:
        """Close the books: the run's traffic figures (``self.figures``) and the inference energy
        to charge (served requests and the work lost to preemption)."""
        self._count_change()
        for counted_from in self._counting.values():  # windows the end of the run cut short
            self.records.counted["maintenance"].append((counted_from, self.env.now))
        self._counting.clear()
        if self.records.simulated and self.records.simulated[-1][1] < 0:
            start, _ = self.records.simulated[-1]
            self.records.simulated[-1] = (start, self.env.now)
        self.figures = traffic_figures(self.records, self.duration_ns, self.windowed, self.in_system)
        served = self.figures["requests"]["served"] + self.records.wasted_requests
        service = self.service
        energy = (("mvm", served * service.mvm_energy_j), ("digital", served * service.digital_energy_j))
        counts = {"mvm": round(served * service.mvms_per_inference * service.batch),
                  "inferences": round(self.figures["requests"]["served"] * service.batch)}
        return energy, counts
