"""Behaviour tests of the inference-traffic engine (twin/traffic/engine.py) and what feeds it:
queue capacity, preemption and waiting, replicas, the power schedule, deferral in the firmware,
the arrival processes, pipelining, determinism and the multi-scale (windowed) method.

Each test states the rule it guards. Standalone tests drive a ``TrafficEngine`` on a plain SimPy
environment, with maintenance "held by a test process" that claims a tile through the engine's
API exactly as the chip's probe does (``claim = yield from engine.claim(tile)`` ... ``release``);
chip-level tests run the tiny chip of tests/tiny_chip.py with traffic. Service model unless
stated: one 8 x 8 layer on one 16 x 8 tile, 100 ns per MVM, no digital work, so a request takes
``100 * positions`` ns exactly.

The last tests pin rules the first version of the engine broke (capacity 0, arrivals still queued at
the end, trace line numbers, periodic and MMPP skips, pipelined affected flags and drops).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import simpy

from firmware_model.controller import Controller
from firmware_model.interface import FirmwareConfig, Load, Probe, TileLayout, Wait
from firmware_model.policies import Periodic
from tiny_chip import COSTS, tiny_chip
from twin.device.parameters import PCMParameters
from twin.toolchain.specs import TileGeometry
from twin.traffic.arrivals import ArrivalStream, read_trace
from twin.traffic.engine import TrafficEngine
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.records import AFFECTED, PREEMPTED
from twin.traffic.service import LayerShape, ServiceModel, service_model
from twin.traffic.setup import TrafficSetup

SECOND = 10**9
MS = 10**6
US = 10**3
GEOMETRY = TileGeometry(rows=16, cols=8, reference_cells=8)
TRACE = Path("unused.csv")  # Workload needs a path with arrivals="trace"; the engine is given the times


# ----------------------------------------------------------------------------------- helpers
def service(*positions: int) -> ServiceModel:
    """One 8 x 8 layer (one tile) per entry, ``100 * positions`` ns each."""
    svc = service_model([LayerShape(f"l{i}", 8, 8, positions=p, digital_ops=0) for i, p in enumerate(positions)],
                        GEOMETRY, mvm_ns=100, mvm_j=1e-9, digital_op_ns=1, digital_op_j=0.0, lanes=256)
    assert [svc.stage_ns(i) for i in range(len(positions))] == [100 * p for p in positions]
    return svc


def make_engine(svc: ServiceModel, duration_ns: int, seed: int = 0, power: PowerSchedule = PowerSchedule(),
                windowing: Windowing = Windowing(), windowed: bool = False, trace_ns: np.ndarray | None = None,
                **workload) -> tuple[simpy.Environment, TrafficEngine]:
    if trace_ns is not None:
        workload = {"arrivals": "trace", "trace": TRACE} | workload
    env = simpy.Environment()
    engine = TrafficEngine(env, svc, Workload(**workload), power, windowing, duration_ns, svc.n_tiles,
                           np.random.default_rng(seed), trace_ns=trace_ns, windowed=windowed)
    return env, engine


def finish(env: simpy.Environment, engine: TrafficEngine, duration_ns: int) -> dict:
    env.run(until=duration_ns)
    engine.finish()
    return engine.figures


def run_engine(svc: ServiceModel, duration_ns: int, holds=(), **kwargs) -> TrafficEngine:
    """Run an engine to the end; ``holds``: (tile, at, duration) maintenance held by test processes."""
    env, engine = make_engine(svc, duration_ns, **kwargs)
    engine.start()
    for tile, at, length in holds:
        env.process(hold(env, engine, tile, at, length))
    finish(env, engine, duration_ns)
    return engine


def hold(env, engine, tile, at, length, log: dict | None = None):
    """Maintenance held by a test process: claim ``tile`` at ``at`` for ``length`` ns."""
    yield env.timeout(at - env.now)
    claim = yield from engine.claim(tile)
    if log is not None:
        log["granted"] = env.now
    yield env.timeout(length)
    engine.release(claim)
    if log is not None:
        log["released"] = env.now


def columns(engine: TrafficEngine) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """arrival, start (of the last stage; -1 dropped), end (-1 dropped), flags of every record."""
    rec = engine.records
    return (np.frombuffer(rec.arrival, dtype=np.int64).copy(), np.frombuffer(rec.start, dtype=np.int64).copy(),
            np.frombuffer(rec.end, dtype=np.int64).copy(), np.frombuffer(bytes(rec.flags), dtype=np.uint8).copy())


def periodic_count(rate: float, t0: int, t1: int) -> int:
    """Periodic arrivals (the k-th at ceil(k / rate)) in [t0, t1), counted by brute force."""
    period = SECOND / rate
    return sum(1 for k in range(int(t1 / period) + 2) if t0 <= math.ceil(k * period - 1e-9) < t1)


# tiny chip: one 6 -> 4 layer on two 4 x 4 tiles per replica; 101 ns per request
TINY_SERVICE = service_model([LayerShape("fc", 4, 6, 1, 0)], TileGeometry(4, 4, 2), mvm_ns=100, mvm_j=1e-9,
                             digital_op_ns=1, digital_op_j=0.0, lanes=256)
TINY_DURATION = 2_500_000  # tiny_chip's default; Periodic(1 ms) campaigns at 1 ms and 2 ms


def tiny(replicas: int = 1, power: PowerSchedule = PowerSchedule(), pcm: PCMParameters | None = None, **workload):
    assert TINY_SERVICE.n_tiles == 2
    setup = TrafficSetup(TINY_SERVICE, Workload(replicas=replicas, **workload), power, Windowing(), windowed=False)
    return tiny_chip(traffic=setup, tiles=2 * replicas, **({} if pcm is None else {"pcm": pcm}))


def merged_length(intervals) -> int:
    total, end = 0, None
    for a, b in sorted(intervals):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


# ---------------------------------------------------------------------------- 1. queue capacity
@pytest.mark.parametrize("capacity", [1, 3])
def test_queue_capacity_bounds_the_waiting_room_and_drops_only_when_full(capacity):
    """Poisson load 2 on a queue of capacity c (requests waiting, not counting the one in service):
    arrivals are dropped, the queue (rebuilt from the records) never holds more than c and every
    dropped arrival found it full; no accepted request waits c service times or more."""
    s, duration = 1000, 10 * MS
    engine = run_engine(service(10), duration, rate=2e6, queue_capacity=capacity)
    f = engine.figures
    arrival, start, _, _ = columns(engine)
    accepted = start >= 0
    assert f["requests"]["dropped"] > 0.3 * f["requests"]["arrived"]
    a_acc, s_acc = np.sort(arrival[accepted]), np.sort(start[accepted])
    assert ((start - arrival)[accepted] < capacity * s).all()

    def waiting(t, arrivals_inclusive, starts_inclusive):  # accepted requests waiting at t
        return (np.searchsorted(a_acc, t, side="right" if arrivals_inclusive else "left")
                - np.searchsorted(s_acc, t, side="right" if starts_inclusive else "left"))

    early = arrival < duration - 10 * s  # requests still in the system at the end have no record
    # right after an accepted arrival: at most c wait (starts at that instant counted as done)
    assert waiting(arrival[accepted & early], True, True).max() == capacity
    # at a dropped arrival exactly c waited, whatever the order of events at that instant
    t = arrival[~accepted & early]
    low, high = waiting(t, False, True), waiting(t, True, False)
    assert (low <= capacity).all() and (high >= capacity).all()
    assert np.mean(low == capacity) > 0.95


def test_every_arrival_is_served_dropped_or_still_in_the_system():
    """Conservation against an independent count: periodic arrivals at 2e6/s for 10 ms are
    exactly 20,000; each is served, dropped, or in the system at the end."""
    engine = run_engine(service(10), 10 * MS, arrivals="periodic", rate=2e6, queue_capacity=3)
    r = engine.figures["requests"]
    assert r["dropped"] > 0 and r["in_system_at_end"] == engine.in_system > 0
    assert r["served"] + r["dropped"] + r["in_system_at_end"] == 20_000


def test_capacity_zero_serves_requests_that_find_a_server_idle():
    engine = run_engine(service(10), 1 * MS, arrivals="periodic", rate=1e4, queue_capacity=0)  # s = 1 us, every 100 us
    assert engine.figures["requests"]["arrived"] == 10
    assert engine.figures["requests"]["dropped"] == 0


def test_arrived_counts_the_requests_still_in_the_system():
    engine = run_engine(service(10), 10 * MS, arrivals="periodic", rate=2e6, queue_capacity=3)
    assert engine.figures["requests"]["in_system_at_end"] > 0
    assert engine.figures["requests"]["arrived"] == 20_000


# --------------------------------------------------------------------- 2. preempt versus wait
LONG = 100_000  # ns: one request of 1000 MVMs


def maintenance_on_a_long_request(mode: str) -> tuple[TrafficEngine, dict]:
    """Requests at 1 us (in service when maintenance comes), 60 us and 70 us (waiting); maintenance
    claims the tile at 50 us for 30 us."""
    env, engine = make_engine(service(1000), 1 * MS, trace_ns=np.array([1_000, 60_000, 70_000]), maintenance=mode)
    log: dict = {}
    engine.start()
    env.process(hold(env, engine, 0, 50_000, 30_000, log))
    finish(env, engine, 1 * MS)
    return engine, log


def test_preempt_mode_restarts_the_request_in_service():
    """preempt: maintenance takes the tile at once; the request in service loses its work and
    restarts from scratch when the tile is back: latency = (50 - 1) + 30 + 100 us > s + D."""
    engine, log = maintenance_on_a_long_request("preempt")
    arrival, start, end, flags = columns(engine)
    assert log == {"granted": 50_000, "released": 80_000}
    assert arrival.tolist() == [1_000, 60_000, 70_000]
    assert start.tolist() == [80_000, 180_000, 280_000] and end.tolist() == [180_000, 280_000, 380_000]
    assert end[0] - arrival[0] == 179_000 > LONG + 30_000
    assert flags[0] & PREEMPTED and flags[0] & AFFECTED and not (flags[1:] & PREEMPTED).any()
    assert engine.records.preemptions == 1 and engine.figures["requests"]["preempted"] == 1
    assert engine.records.wasted_requests == pytest.approx(49_000 / LONG)


def test_wait_mode_lets_the_request_finish_and_goes_before_the_queue():
    """wait: the claim is granted when the request in service ends (no preemption), and the
    requests that were waiting do not overtake it: they start when the maintenance releases."""
    engine, log = maintenance_on_a_long_request("wait")
    arrival, start, end, flags = columns(engine)
    assert log == {"granted": 1_000 + LONG, "released": 1_000 + LONG + 30_000}
    assert start.tolist() == [1_000, 131_000, 231_000] and end.tolist() == [101_000, 231_000, 331_000]
    assert flags.tolist() == [0, AFFECTED, AFFECTED]
    assert engine.records.preemptions == 0 and engine.records.wasted_requests == 0


def test_wait_mode_a_later_claim_still_goes_before_the_queue():
    """wait: 18 requests queue behind the one in service; a claim made after all of them is
    granted when the tile frees, before the next request, which starts when it is released."""
    arrivals = np.arange(1_000, 21_000, 1_000)  # 20 requests of 100 us: a long queue
    env, engine = make_engine(service(1000), 10 * MS, trace_ns=arrivals, maintenance="wait")
    log: dict = {}
    engine.start()
    env.process(hold(env, engine, 0, 150_000, 10_000, log))  # request 1 in service since 101 us
    finish(env, engine, 10 * MS)
    _, start, _, _ = columns(engine)
    assert log["granted"] == 201_000  # the end of request 1, before request 2
    assert start[2] == 201_000 + 10_000 and (np.diff(start)[2:] == LONG).all()


@pytest.mark.parametrize("mode", ["preempt", "wait"])
def test_maintenance_goes_before_a_request_already_waiting_for_the_tile(mode):
    """Priority: while the chip is off (hold mode) a request waits for the tile; maintenance
    claims it later, still during the off time. At power-on the maintenance gets the tile first;
    the request starts when it is released."""
    env, engine = make_engine(service(10), 1 * MS, trace_ns=np.array([4_000]), maintenance=mode,
                              power=PowerSchedule(schedule="intervals", intervals=((3_000, 10_000),),
                                                  off_arrivals="hold"))
    log: dict = {}
    engine.start()
    env.process(hold(env, engine, 0, 6_000, 3_000, log))
    finish(env, engine, 1 * MS)
    _, start, end, _ = columns(engine)
    assert log == {"granted": 10_000, "released": 13_000}
    assert start.tolist() == [13_000] and end.tolist() == [14_000]


def test_nothing_is_served_while_off_even_when_maintenance_frees_the_tile():
    """A maintenance operation in progress at power-off completes (it is not cut); when it
    releases the tile during the off time, the power-off takes it, not the waiting request."""
    env, engine = make_engine(service(10), 1 * MS, trace_ns=np.array([2_000]),
                              power=PowerSchedule(schedule="intervals", intervals=((3_000, 10_000),),
                                                  off_arrivals="hold"))
    log: dict = {}
    engine.start()
    env.process(hold(env, engine, 0, 1_000, 4_000, log))  # 1 us .. 5 us, across the power-off
    finish(env, engine, 1 * MS)
    _, start, _, _ = columns(engine)
    assert log == {"granted": 1_000, "released": 5_000}
    assert start.tolist() == [10_000]


# --------------------------------------------------------------------------------- 3. replicas
def test_a_second_replica_serves_while_the_first_is_maintained():
    """Two replicas, maintenance on replica 0 for 5 ms at light periodic load: the request in
    service on replica 0 restarts on replica 1 at once; every later arrival is served without
    waiting. With one replica the same arrivals wait for the maintenance to end."""
    s, at, length = 1000, 1_000_500, 5 * MS  # arrivals every 10 us; the one at 1 ms is in service
    two = run_engine(service(10), 10 * MS, holds=[(0, at, length)], arrivals="periodic", rate=1e5, replicas=2)
    arrival, start, end, flags = columns(two)
    during = (arrival >= 1 * MS) & (arrival < at + length)
    assert during.sum() == 501
    cut = arrival == 1 * MS
    assert flags[cut] & PREEMPTED and start[cut] == at and end[cut] == at + s  # moved to replica 1 at once
    later = during & ~cut
    assert (start[later] == arrival[later]).all() and (flags[later] == 0).all()
    assert two.figures["availability_requests"] == 1 - 1 / 1000  # only the preempted one is affected

    one = run_engine(service(10), 10 * MS, holds=[(0, at, length)], arrivals="periodic", rate=1e5)
    arrival, start, _, flags = columns(one)
    during = (arrival >= 1 * MS) & (arrival < at + length)
    assert (start[during] >= at + length).all() and (flags[during] & AFFECTED).all()
    assert one.figures["availability_requests"] == pytest.approx(1 - 501 / 1000)


def test_a_replica_under_maintenance_does_not_take_requests_from_the_queue():
    """Two replicas, replica 0 held: while replica 1 is busy, requests wait for replica 1 (FIFO)
    and none is ever started on the held replica before the maintenance ends."""
    arrivals = np.arange(10_000, 20_000, 200)  # 50 requests 200 ns apart, s = 1000: they queue
    env, engine = make_engine(service(10), 1 * MS, trace_ns=arrivals, replicas=2)
    engine.start()
    env.process(hold(env, engine, 0, 5_000, 500_000))  # replica 0 down before any arrives
    finish(env, engine, 1 * MS)
    arrival, start, end, _ = columns(engine)
    order = np.argsort(arrival)
    assert (np.diff(start[order]) == 1000).all()  # one server only: back-to-back, in arrival order
    assert start[order][0] == 10_000


def test_chip_time_availability_replicas_corrected_one_at_a_time():
    """Tiny chip, drifting devices (probes and program-and-verify), periodic policy.

    Two replicas: nothing serves until the first replica is programmed; after that the controller
    handles one tile at a time, so the replicas are never down together and the only unavailable
    stretch is [0, first replica deployed). One replica: time availability is exactly 1 - (union
    of the busy windows) / duration, and that union equals, in integer ns, the deployment plus the
    campaign rows' unavailable_ns (the campaign windows are disjoint)."""
    two = tiny(replicas=2, pcm=PCMParameters(), rate=1e6)
    two.run()
    rows = two.observers.campaigns.ordered()
    assert {r.tile for r in rows} == {0, 1, 2, 3} and {r.campaign for r in rows} == {1, 2}
    assert any(r.unavailable_ns > 800 for r in rows)  # some tiles were programmed, not only probed
    observer = two.observers.availability
    deployed = two.chip.deployed_at_ns
    [(zero, ready)] = observer.unavailable(TINY_DURATION)
    assert zero == 0 and 0 < ready < deployed and ready in {b for _, b, t in observer.busy if t == 1}
    assert observer.availability(TINY_DURATION) == 1.0 - ready / TINY_DURATION
    campaign_busy = {r: [(a, b) for a, b, t in observer.busy if t // 2 == r and a >= deployed] for r in (0, 1)}
    assert campaign_busy[0] and campaign_busy[1]
    assert all(b0 <= a1 or b1 <= a0 for a0, b0 in campaign_busy[0] for a1, b1 in campaign_busy[1])

    one = tiny(replicas=1, pcm=PCMParameters(), rate=1e6)
    one.run()
    rows = one.observers.campaigns.ordered()
    observer = one.observers.availability
    deployed = one.chip.deployed_at_ns
    campaign_busy = [(a, b) for a, b, _ in observer.busy if a >= deployed]
    assert merged_length(campaign_busy) == sum(b - a for a, b in campaign_busy)  # disjoint windows
    union = merged_length([(a, b) for a, b, _ in observer.busy])
    assert union == deployed + sum(r.unavailable_ns for r in rows)
    assert sum(b - a for a, b in observer.unavailable(TINY_DURATION)) == union
    assert observer.availability(TINY_DURATION) == 1.0 - union / TINY_DURATION


# --------------------------------------------------------------------------- 4. power schedule
OFF = (2_000_500, 5_000_500)  # a request (periodic, every 10 us) is in service at power-off


@pytest.mark.parametrize("arrivals", ["periodic", "poisson"])
def test_power_off_drop_refuses_the_arrivals_and_serves_nothing(arrivals):
    """drop: arrivals in [a, b) are dropped and counted (periodic: exactly the grid points in
    [a, b), most of them counted in bulk); the queue and the request in service at a are lost;
    nothing starts in [a, b)."""
    a, b = OFF
    engine = run_engine(service(10), 10 * MS, arrivals=arrivals, rate=1e5,
                        power=PowerSchedule(schedule="intervals", intervals=(OFF,), off_arrivals="drop"))
    arrival, start, end, flags = columns(engine)
    f = engine.figures["requests"]
    bulk = sum(n for _, n in engine.records.bulk_drops)
    refused = int(((arrival >= a) & (arrival < b)).sum()) + bulk
    assert bulk > 0
    assert not ((start >= a) & (start < b)).any() and not ((end > a) & (end <= b)).any()
    in_service = (arrival < a) & (start < 0)  # cut by the power-off, then lost
    assert f["dropped"] == refused + in_service.sum()
    if arrivals == "periodic":
        assert refused == periodic_count(1e5, a, b) == 300
        assert in_service.sum() == 1 and arrival[in_service] == 2_000_000 and flags[in_service] & AFFECTED
        assert f["arrived"] == 1000 and f["served"] == 699


def test_power_off_hold_serves_the_held_requests_after_power_returns():
    """hold: nothing is dropped; the requests arriving while off (and the one cut at a) start at
    or after b, back to back in arrival order, and are affected."""
    a, b = OFF
    engine = run_engine(service(10), 10 * MS, arrivals="periodic", rate=1e5,
                        power=PowerSchedule(schedule="intervals", intervals=(OFF,), off_arrivals="hold"))
    arrival, start, end, flags = columns(engine)
    f = engine.figures["requests"]
    assert f["dropped"] == 0 and f["served"] == f["arrived"] == 1000
    held = (arrival >= a - 1000) & (arrival < b)
    assert held.sum() == 301
    assert (start[held] >= b).all() and (flags[held] & AFFECTED).all()
    assert np.sort(start[held])[0] == b and (np.diff(np.sort(start[held])) == 1000).all()
    assert not ((start >= a) & (start < b)).any()


def test_chip_power_off_static_energy_availability_and_a_campaign_due_while_off():
    """Tiny chip off in [0.9 ms, 1.2 ms): the campaign due at 1 ms runs when power returns; time
    availability counts the off time (exactly: off + initial programming + campaign windows);
    static energy is charged for the on time only; arrivals while off are dropped."""
    a, b = 900_000, 1_200_000
    run = tiny(power=PowerSchedule(schedule="intervals", intervals=((a, b),), off_arrivals="drop"), rate=1e6)
    run.run()
    rows = run.observers.campaigns.ordered()
    first = [r for r in rows if r.campaign == 1]
    assert first and min(r.start_ns for r in first) >= b
    observer = run.observers.availability
    assert observer.off == [(a, b)]
    unavailable = (b - a) + run.chip.deployed_at_ns + sum(r.unavailable_ns for r in rows)
    assert sum(y - x for x, y in observer.unavailable(TINY_DURATION)) == unavailable
    assert observer.availability(TINY_DURATION) == 1.0 - unavailable / TINY_DURATION
    static = run.observers.ledger.energy()["static"]
    assert static == pytest.approx(COSTS.energy.static_power * (TINY_DURATION - (b - a)) * 1e-9, rel=1e-12)
    assert run.traffic.figures["requests"]["dropped"] >= 250  # ~300 arrivals at 1e6/s while off


# --------------------------------------------------------------------------------- 5. deferral
def bare_controller(**settings) -> Controller:
    layout = TileLayout(0, 4, 4, np.ones((4, 4), dtype=bool), np.array([0]), np.array([1]))
    return Controller(FirmwareConfig(2, 25.0, (layout,)), Periodic(1000), "nearest", **settings)


def test_controller_defers_a_due_campaign_while_requests_wait_for_at_most_max_defer():
    """defer_queue 0: a campaign due at 1000 ns is put off (Wait(deferred=True), re-checked every
    100 ns) while requests wait, until max_defer (500 ns) has passed; then it starts whatever the
    queue. Not yet due: a plain Wait."""
    c = bare_controller(defer_queue=0, max_defer=500, defer_recheck=100)
    assert c.step(0, None, Load(0, 5)) == Wait(1000)
    for now in range(1000, 1500, 100):
        assert c.step(now, None, Load(now, 5)) == Wait(now + 100, deferred=True)
    assert c.deferrals == 5 and c.campaigns == 0
    assert c.step(1500, None, Load(1500, 5)) == Probe(0)
    assert c.campaigns == 1


@pytest.mark.parametrize("settings, load", [
    ({"defer_queue": 0}, None),  # a chip without traffic reports no load
    ({"defer_queue": 0}, 0),  # nobody waits
    ({"defer_queue": 3}, 3),  # not more than defer_queue
    ({}, 100),  # defer_queue None: never defer
])
def test_controller_starts_a_due_campaign_at_once_without_load(settings, load):
    c = bare_controller(max_defer=500, defer_recheck=100, **settings)
    assert c.step(1000, None, None if load is None else Load(1000, load)) == Probe(0)
    assert c.deferrals == 0


def test_controller_starts_when_the_queue_empties_during_a_deferral():
    c = bare_controller(defer_queue=0, max_defer=10_000, defer_recheck=100)
    assert c.step(1000, None, Load(1000, 4)).deferred
    assert c.step(1100, None, Load(1100, 0)) == Probe(0)


def test_the_firmware_sees_the_requests_waiting_not_the_one_in_service():
    env, engine = make_engine(service(10), 1 * MS, trace_ns=np.array([100, 200, 300]))
    engine.start()
    env.run(until=500)
    assert engine.load() == Load(500, 2)


def test_chip_defers_campaigns_under_heavy_traffic_and_still_runs_them():
    """Tiny chip at load ~0.9 with defer_queue 0, re-checked every 5 us, max_defer 100 us: due
    campaigns are deferred, then run; without defer_queue they start on time."""
    starts = {}
    for defer_queue in (None, 0):
        run = tiny(rate=9e6)
        controller = run.chip.controller
        controller.defer_queue, controller.defer_recheck, controller.max_defer = defer_queue, 5_000, 100_000
        run.run()
        rows = run.observers.campaigns.ordered()
        assert controller.campaigns == 2 and {r.campaign for r in rows} == {1, 2}
        starts[defer_queue] = [min(r.start_ns for r in rows if r.campaign == k) for k in (1, 2)]
        step = COSTS.timing.controller_step
        if defer_queue is None:
            assert controller.deferrals == 0 and starts[None] == [1 * MS + step, 2 * MS + step]
        else:
            assert controller.deferrals > 0
            assert all(k * MS + step <= start <= k * MS + 100_000 + step for k, start in zip((1, 2), starts[0]))
            assert any(start > k * MS + step for k, start in zip((1, 2), starts[0]))


# ------------------------------------------------------------------------ 6. arrival processes
MMPP = Workload(arrivals="mmpp", rate=1e5, burst_rate=1e6, calm_mean=1 * MS, burst_mean=100 * US)  # 181,818 /s


def stream_times(workload: Workload, duration_ns: int, seed: int = 0, trace_ns=None) -> np.ndarray:
    stream = ArrivalStream(workload, np.random.default_rng(seed), trace_ns)
    stream.restart(0)
    times = []
    while (t := stream.next()) < duration_ns:
        times.append(t)
    return np.asarray(times, dtype=np.int64)


@pytest.mark.parametrize("rate", [1e5, 3e5, 7e3])
def test_periodic_arrivals_are_exactly_rate_times_duration(rate):
    engine = run_engine(service(1), 100 * MS, arrivals="periodic", rate=rate)
    arrival = np.sort(columns(engine)[0])
    assert len(arrival) == round(rate * 0.1) == engine.figures["requests"]["arrived"]
    gaps = np.diff(arrival)
    assert (gaps >= math.floor(SECOND / rate)).all() and (gaps <= math.ceil(SECOND / rate)).all()


def mmpp_count_variance_rate(w: Workload) -> float:
    """Asymptotic Var[N(T)] / T (per s) of a two-state MMPP: mean rate + 2 (l1 - l2)^2 p1 p2 / (r1 + r2)."""
    p_calm = w.calm_mean / (w.calm_mean + w.burst_mean)
    switch = SECOND / w.calm_mean + SECOND / w.burst_mean  # 1/s
    return w.mean_rate + 2 * (w.rate - w.burst_rate) ** 2 * p_calm * (1 - p_calm) / switch


@pytest.mark.parametrize("workload, duration", [
    (Workload(arrivals="poisson", rate=1e6), SECOND // 5),
    (MMPP, 2 * SECOND),
], ids=["poisson", "mmpp"])
def test_random_arrivals_mean_rate(workload, duration):
    """Mean rate within 4 standard errors of Workload.mean_rate (Poisson: sqrt(N); MMPP: the
    two-state chain's count variance, modulation included)."""
    n = len(stream_times(workload, duration))
    t = duration / SECOND
    var = workload.mean_rate * t if workload.arrivals == "poisson" else mmpp_count_variance_rate(workload) * t
    assert abs(n - workload.mean_rate * t) <= 4 * math.sqrt(var)


def test_mmpp_restart_draws_the_state_from_its_stationary_law():
    """A window restarts the stream: right after a restart the MMPP is in a burst with probability
    burst_mean / (calm_mean + burst_mean), so the count over the next 20 us has mean
    mean_rate x 20 us (2000 restarts; 4 standard errors)."""
    stream = ArrivalStream(MMPP, np.random.default_rng(5))
    counts = []
    for i in range(2000):
        t0 = i * 5 * MS + 12_345
        stream.restart(t0)
        n = 0
        while stream.next() < t0 + 20 * US:
            n += 1
        counts.append(n)
    counts = np.array(counts)
    expected = MMPP.mean_rate * 20 * US / SECOND  # 3.6; 18 in a burst, 2 calm
    assert abs(counts.mean() - expected) <= 4 * counts.std() / math.sqrt(len(counts))


def test_mmpp_is_bursty():
    """Counts in 50 us bins are overdispersed (variance/mean >> 1) for MMPP, ~1 for Poisson."""
    for workload, low, high in ((MMPP, 2.0, math.inf), (Workload(rate=MMPP.mean_rate), 0.8, 1.2)):
        counts = np.bincount(stream_times(workload, SECOND // 2) // (50 * US))
        assert low < counts.var() / counts.mean() < high


def test_trace_arrivals_are_exactly_the_trace(tmp_path):
    times_s = [0.0, 0.000_001, 0.000_001, 0.000_5, 0.001_234_567, 0.002, 0.003]
    path = tmp_path / "trace.csv"
    path.write_text("user,t_s\n" + "".join(f"u{i},{t!r}\n" for i, t in enumerate(times_s)))
    trace = read_trace(path)
    assert trace.tolist() == [0, 1000, 1000, 500_000, 1_234_567, 2_000_000, 3_000_000]
    engine = run_engine(service(1), 2_500_000, trace_ns=trace, trace=path)
    arrival, _, end, _ = columns(engine)
    assert np.sort(arrival).tolist() == trace[trace < 2_500_000].tolist() and (end >= 0).all()


@pytest.mark.parametrize("text, line, words", [
    ("t_s\n0.1\n0.3\n0.2\n", 4, "sorted"),
    ("t_s\n0.1\n-0.5\n", 3, "within 0"),
    ("user,t_s\na,0.1\nb,0.2\nc,soon\n", 4, "not a number"),
    ("t_s\n0.1\n\n", None, None),  # a trailing blank line is fine
    ("t_s\n0.1\nnan\n", 3, "finite"),
    ("t_s\n0.1\n1e400\n", 3, "finite"),
    ("t_s\n0.1\n1e30\n", 3, "within 0"),  # beyond the 200 years the twin simulates
    ("user,t_s\na\n", 2, "not a number"),  # a short row
    ("time\n0.1\n", None, "t_s"),
    ("", None, "t_s"),
], ids=["unsorted", "negative", "text", "blank-end", "nan", "inf", "too-late", "short-row", "no-column", "empty"])
def test_read_trace_rejects_bad_rows_with_the_line_number(tmp_path, text, line, words):
    path = tmp_path / "trace.csv"
    path.write_text(text)
    if words is None:
        assert read_trace(path).tolist() == [100_000_000]
        return
    with pytest.raises(ValueError, match=words) as error:
        read_trace(path)
    assert str(path) in str(error.value)
    if line is not None:
        assert f"line {line}:" in str(error.value)


def test_read_trace_line_number_counts_blank_lines(tmp_path):
    path = tmp_path / "trace.csv"
    path.write_text("t_s\n0.1\n\n0.3\n0.2\n")
    with pytest.raises(ValueError, match="line 5:"):
        read_trace(path)


@pytest.mark.parametrize("rate", [1e5, 3e5, 7e3])
def test_periodic_skip_counts_exactly_and_continues_after(rate):
    """skip(until, from) counts the arrivals in [from, until) exactly and the stream goes on with
    the first arrival at or after ``until`` (ends that are not arrival times)."""
    workload = Workload(arrivals="periodic", rate=rate)
    grid = stream_times(workload, 20 * MS)
    rng = np.random.default_rng(1)
    checked = 0
    while checked < 50:
        t0, t1 = sorted(int(x) for x in rng.integers(0, 19 * MS, 2))
        if np.isin([t0, t1], grid).any():
            continue
        stream = ArrivalStream(workload, np.random.default_rng(0))
        stream.restart(0)
        assert stream.skip(t1, t0) == int(((grid >= t0) & (grid < t1)).sum())
        assert stream.next() == grid[np.searchsorted(grid, t1)]
        checked += 1


def test_periodic_restart_and_skip_at_an_arrival_time():
    stream = ArrivalStream(Workload(arrivals="periodic", rate=3e5), np.random.default_rng(0))
    stream.restart(0)
    assert [stream.next() for _ in range(3)] == [0, 3334, 6667]
    stream.restart(3334)
    assert stream.next() == 3334
    stream.restart(0)
    assert stream.skip(6000, 3334) == 1


def test_poisson_skip_counts_the_mean_and_continues_after():
    """As the engine uses it (from the arrival just taken + 1 ns): 2000 skips of 1 ms; the total
    within 4 standard errors (sqrt of the mean) of rate x skipped time; the next arrival is after
    the skipped interval."""
    workload = Workload(arrivals="poisson", rate=1e6)
    stream = ArrivalStream(workload, np.random.default_rng(3))
    stream.restart(0)
    total, t = 0, stream.next()
    for _ in range(2000):
        total += stream.skip(t + MS, t + 1)
        after = stream.next()
        assert after >= t + MS
        t = after
    expected = workload.rate * 2000 * (MS - 1) / SECOND
    assert abs(total - expected) <= 4 * math.sqrt(expected)



def test_mmpp_skip_counts_what_the_stream_would_generate():
    """From an arrival (the engine's use), the count skip() returns over the next 200 us has the
    mean of the count the stream generates one by one over the same stretch (4 standard errors)."""
    span, n = 200 * US, 2000

    def generated(seed):
        stream = ArrivalStream(MMPP, np.random.default_rng(seed))
        stream.restart(0)
        counts, t = [], stream.next()
        for _ in range(n):
            c, u = 0, stream.next()
            while u < t + span:
                c, u = c + 1, stream.next()
            counts.append(c)
            t = u
        return np.array(counts)

    def skipped(seed):
        stream = ArrivalStream(MMPP, np.random.default_rng(seed))
        stream.restart(0)
        counts, t = [], stream.next()
        for _ in range(n):
            counts.append(stream.skip(t + span, t + 1))
            t = stream.next()
        return np.array(counts)

    a, b = generated(1), skipped(2)
    assert abs(a.mean() - b.mean()) <= 4 * math.sqrt(a.var() / n + b.var() / n)


# ---------------------------------------------------------------------- 7. pipelined/sequential
@pytest.mark.parametrize("stages", [(30, 20, 10), (10, 20, 30), (20, 30, 10)])
def test_pipelined_throughput_is_set_by_the_slowest_stage_sequential_by_the_sum(stages):
    """Saturating periodic load (2x the pipeline's capacity, queue capacity 10): pipelined
    throughput within 2% of 1 / max(s_i), sequential within 2% of 1 / sum(s_i)."""
    svc = service(*stages)
    for layers, per_request in (("pipelined", svc.bottleneck_ns), ("sequential", svc.sequential_ns)):
        engine = run_engine(svc, 10 * MS, arrivals="periodic", rate=2 * SECOND / svc.bottleneck_ns,
                            queue_capacity=10, layers=layers)
        assert engine.figures["throughput_rps"] == pytest.approx(SECOND / per_request, rel=0.02)
    assert svc.bottleneck_ns == 100 * max(stages) and svc.sequential_ns == 100 * sum(stages)


@pytest.mark.parametrize("layers", ["pipelined", "sequential"])
def test_a_lone_request_takes_the_sum_of_the_stages(layers):
    svc = service(30, 20, 10)
    engine = run_engine(svc, 1 * MS, trace_ns=np.array([1234]), layers=layers)
    arrival, start, end, flags = columns(engine)
    assert (end - arrival).tolist() == [6000] and flags.tolist() == [0]
    assert start.tolist() == [1234 + 5000 if layers == "pipelined" else 1234]  # the last stage's start


def test_pipelined_request_in_its_last_stage_is_not_affected_by_maintenance_on_an_earlier_stage():
    env, engine = make_engine(service(10, 10, 10), 1 * MS, trace_ns=np.array([0]), layers="pipelined",
                              maintenance="wait")
    engine.start()
    env.process(hold(env, engine, 0, 2_500, 10_000))  # the request is in stage 2 since 2000
    finish(env, engine, 1 * MS)
    _, start, end, flags = columns(engine)
    assert start.tolist() == [2000] and end.tolist() == [3000]  # it never waited
    assert flags.tolist() == [0]


def test_pipelined_power_off_drops_the_requests_waiting_between_stages():
    env, engine = make_engine(service(10, 100), 1 * MS, trace_ns=np.arange(0, 5_000, 1_000), layers="pipelined",
                              power=PowerSchedule(schedule="intervals", intervals=((15_000, 100_000),),
                                                  off_arrivals="drop"))
    engine.start()
    finish(env, engine, 1 * MS)
    arrival, start, end, _ = columns(engine)
    assert end[arrival == 0] == 11_000  # done before the power-off
    assert (start[arrival > 0] == -1).all()  # one in stage 1, three waiting for it: all lost


# ------------------------------------------------------------------------------ 8. determinism
def determinism_run(seed: int, windowed: bool) -> tuple:
    engine = run_engine(service(10), 50 * MS, seed=seed, holds=[(0, 7 * MS, 300 * US), (0, 31 * MS, 200 * US)],
                        rate=5e5, windowed=windowed, windowing=Windowing(warmup=100 * US, tail=50 * US, steady=5,
                                                                          length=500 * US),
                        power=PowerSchedule(schedule="intervals", intervals=((20 * MS, 21 * MS),)))
    rec = engine.records
    return (rec.arrival.tobytes(), rec.start.tobytes(), rec.end.tobytes(), bytes(rec.flags), rec.bulk_drops,
            rec.counted, rec.simulated, rec.preemptions, rec.wasted_requests, rec.area_in_system)


@pytest.mark.parametrize("windowed", [False, True])
def test_same_seed_same_records_other_seed_other_records(windowed):
    first = determinism_run(1, windowed)
    assert determinism_run(1, windowed) == first
    other = determinism_run(2, windowed)
    assert other[0] != first[0] and other[1] != first[1]


# ------------------------------------------------------------------- 9. windowed versus full
# The chip's controller wakes at 5, 15, 25 ... ms and holds the one replica's tile for 200 us
# (preempting); requests of 1 us at 5e5/s (load 0.5) over 200 ms. Windows: warm-up 100 us, tail
# 50 us, 20 steady windows of 300 us counted: they simulate ~9% of the run.
W_DURATION, W_PERIOD, W_HOLD, W_RATE = 200 * MS, 10 * MS, 200 * US, 5e5
WINDOWS = Windowing(warmup=100 * US, tail=50 * US, steady=20, length=300 * US)


def controller_like(env, engine, first, period, length, duration):
    """Clock-driven maintenance, told to the engine as the chip's controller does (twin/chip/chip.py:
    start() calls controller_sleeps(0) and controller_wakes() for the deployment; the controller's
    loop calls controller_wakes() before each step and controller_sleeps(t) on Wait(t))."""
    engine.controller_sleeps(first)  # deployment done at 0, the first step: Wait(first)
    t = first
    while t < duration:
        yield env.timeout(t - env.now)
        engine.controller_wakes()
        claim = yield from engine.claim(0)
        yield env.timeout(length)
        engine.release(claim)
        t += period
        engine.controller_sleeps(t)


def window_run(windowed: bool, seed: int, **workload) -> dict:
    env, engine = make_engine(service(10), W_DURATION, seed=seed, windowing=WINDOWS, windowed=windowed, **workload)
    engine.start()
    engine.controller_sleeps(0)
    engine.controller_wakes()
    env.process(controller_like(env, engine, W_PERIOD // 2, W_PERIOD, W_HOLD, W_DURATION))
    f = finish(env, engine, W_DURATION)
    if windowed:
        assert f["windows"]["coverage"] <= 0.10
        assert f["windows"]["maintenance_windows"] == W_DURATION // W_PERIOD + 1  # + the deployment's
        assert f["windows"]["steady_windows"] == WINDOWS.steady
    return {"arrived": f["requests"]["arrived"], "served": f["requests"]["served"],
            "mean": f["latency_s"]["mean"], "p99": f["latency_s"]["p99"],
            "availability": f["availability_requests"], "coverage": f["windows"]["coverage"]}


def compare(full: list[dict], windowed: list[dict], tolerances: dict) -> dict:
    """Relative differences of the seed means (absolute for availability), checked against ``tolerances``."""
    diffs = {}
    for key, tol in tolerances.items():
        f = np.mean([r[key] for r in full])
        w = np.mean([r[key] for r in windowed])
        diffs[key] = w - f if key == "availability" else w / f - 1
        assert abs(diffs[key]) <= tol, (key, f, w, diffs[key], tol)
    return diffs


def test_windowed_equals_full_on_periodic_arrivals():
    """Periodic arrivals: no sampling noise (every steady window sees the same grid), so the
    windowed estimate must reproduce the full simulation to ~1e-4 (the counted windows' ends fall
    anywhere between two arrivals). Measured, mean of 3 seeds: arrived and served +9e-5, mean
    latency -7e-5, p99 +0.2% (151.3 against 151 us), availability +2e-6."""
    full = [window_run(False, 0, arrivals="periodic", rate=W_RATE)]
    assert full[0]["arrived"] == W_RATE * W_DURATION / SECOND
    assert full[0]["availability"] == pytest.approx(0.98, abs=0.005)
    windowed = [window_run(True, seed, arrivals="periodic", rate=W_RATE) for seed in range(3)]
    compare(full, windowed, {"arrived": 3e-4, "served": 3e-4, "mean": 3e-4, "p99": 0.01, "availability": 1e-5})


def test_windowed_matches_full_on_the_same_poisson_arrivals():
    """The same Poisson realization (a trace) simulated in full and in windows, 30 seeds of the
    steady-window placement: what differs is only the method. Spread of one windowed run (30
    seeds): arrived 2.0%, mean latency 1.5%, p99 0.7%, availability 4.3e-4; the mean of 30 has
    1/5.5 of that (0.37%, 0.27%, 0.13%, 8e-5). Measured differences of that mean from the full
    run: arrived +0.13%, mean latency -0.19%, p99 -0.18%, availability +5e-5 (another trace,
    60 seeds: -0.09%, -0.01%, -0.11%, +0). Tolerances 5 to 11 standard errors."""
    trace = np.floor(np.cumsum(np.random.default_rng(8).exponential(SECOND / W_RATE, 110_000))).astype(np.int64)
    trace = trace[trace < W_DURATION]
    full = [window_run(False, 0, trace_ns=trace)]
    windowed = [window_run(True, seed, trace_ns=trace) for seed in range(30)]
    compare(full, windowed, {"arrived": 0.02, "served": 0.02, "mean": 0.015, "p99": 0.015, "availability": 5e-4})


def test_windowed_matches_full_on_poisson_arrivals_seed_for_seed():
    """Poisson arrivals drawn by the engine (independent realizations): 3 full runs against 30
    windowed ones. Calibration (20 full, 200 windowed seeds): per-run spread full / windowed:
    arrived 0.25% / 1.9%, mean latency 2.7% / 3.0%, p99 2.0% / 2.5%, availability 4.5e-4 / 6.3e-4;
    differences of the means: arrived -0.24% +- 0.15%, mean latency +0.8% +- 0.6%, p99 +0.3% +-
    0.5%, availability -2e-4 +- 1e-4, i.e. no bias beyond ~2 standard errors. With 3 full runs the
    standard error of the difference is 0.4% (arrived), 1.6% (mean), 1.3% (p99), 2.8e-4
    (availability): tolerances ~4 of them. Measured here: arrived -0.07%, mean latency +3.2%, p99
    +2.4%, availability -5.1e-4 (the 3 full runs happen to sit 1.7 SE below the calibration's mean
    latency)."""
    full = [window_run(False, seed, rate=W_RATE) for seed in range(3)]
    windowed = [window_run(True, 100 + seed, rate=W_RATE) for seed in range(30)]
    compare(full, windowed, {"arrived": 0.02, "served": 0.02, "mean": 0.065, "p99": 0.05, "availability": 1.1e-3})


def test_pipelined_replicas_send_new_requests_past_a_replica_under_maintenance():
    """Two pipelined replicas; stage 1 of replica 0 held for 5 ms: new requests go to replica 1
    (short latency), and the few stranded inside replica 0 are flagged as waiting on maintenance."""
    eng = run_engine(service(10, 10), 20 * MS, holds=[(1, 1 * MS, 5 * MS)], arrivals="periodic", rate=1e5,
                     replicas=2, layers="pipelined")
    a, s, e, f = columns(eng)
    during = (a >= 1 * MS) & (a < 6 * MS)
    late = (e - a) > 100 * US
    assert during.sum() == 500 and (late & during).sum() <= 2  # at most the requests already inside
    assert ((f & AFFECTED) > 0).sum() == late.sum()  # every request the hold delayed is counted
    assert eng.figures["availability_requests"] == 1 - late.sum() / a.size


def test_power_off_goes_before_a_waiting_maintenance_claim_and_preempts_the_request():
    """Wait mode: maintenance asks at 2 us while a 10 us request is in service; power goes off at
    5 us (drop mode). The power-off takes the tile at once (the request is lost), and the
    maintenance runs only once power is back (nothing is corrected while the chip is off)."""
    env, engine = make_engine(service(100), 100_000, trace_ns=np.array([0]), maintenance="wait",
                              power=PowerSchedule(schedule="intervals", intervals=((5_000, 50_000),),
                                                  off_arrivals="drop"))
    engine.start()
    log = {}
    env.process(hold(env, engine, 0, 2_000, 3_000, log))
    finish(env, engine, 100_000)
    a, s, e, f = columns(engine)
    assert s.tolist() == [-1] and e.tolist() == [-1]  # lost with the power
    assert log["granted"] == 50_000 and log["released"] == 53_000


def test_trace_rows_at_the_same_instant_while_off_are_all_dropped_and_counted():
    trace = np.array([1_000_000] * 5 + [3_000_000] * 5, dtype=np.int64)  # 5 rows at 1 ms (chip off), 5 at 3 ms
    env, engine = make_engine(service(10), 10_000_000, trace_ns=trace,
                              power=PowerSchedule(schedule="intervals", intervals=((500_000, 2_000_000),)))
    engine.start()
    figures = finish(env, engine, 10_000_000)
    assert figures["requests"]["arrived"] == 10 and figures["requests"]["dropped"] == 5
    assert figures["requests"]["served"] == 5


@pytest.mark.parametrize("rate", [1 / 86_400, 3e5, 7.0])
def test_periodic_arrivals_are_exact_at_any_rate(rate):
    """Arrival k at ceil(k / rate) exactly, also for rates far below one per second."""
    from fractions import Fraction
    stream = ArrivalStream(Workload(arrivals="periodic", rate=rate), np.random.default_rng(0))
    stream.restart(0)
    got = [stream.next() for _ in range(5)]
    exact = [math.ceil(Fraction(k) * 10**9 / Fraction(rate)) for k in range(5)]
    assert got == exact


@pytest.mark.parametrize("layers", ["sequential", "pipelined"])
def test_a_replica_under_maintenance_does_not_stretch_the_queue_capacity(layers):
    """Two replicas, capacity 2, replica 1 held while 10 requests arrive 100 ns apart: the
    queue never holds more than 2, and only replica 0 serves (1 in service + 2 waiting)."""
    env, engine = make_engine(service(10), 1_000_000, trace_ns=np.arange(0, 1000, 100, dtype=np.int64),
                              queue_capacity=2, replicas=2, layers=layers)
    engine.start()
    env.process(hold(env, engine, 1, 0, 50_000))
    longest = 0
    while env.peek() < 1_000_000:
        env.step()
        longest = max(longest, len(engine.queue))
    figures = finish(env, engine, 1_000_000)
    assert longest == 2 and figures["requests"]["served"] == 3 and figures["requests"]["dropped"] == 7
