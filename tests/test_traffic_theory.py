"""The twin's SimPy traffic engine (twin/traffic/engine.py) against queueing theory.

Formulas, sources and the tolerance rule: docs/traffic-theory.md. The independent reference
(a Lindley recursion with server-off intervals, the formulas, batch-means standard errors) is
tests/queueing_reference.py; nothing there comes from ``twin``.

Setup unless stated: sequential layers, batch 1, one replica (one service unit), unbounded
queue, Poisson arrivals drawn by the engine itself, deterministic service s, full mode (every
request simulated). Every statistical check passes when

    |measured - expected| <= tolerance(expected, rel, se) = max(rel * |expected|, 4 * se)

with se the batch-means standard error (32 batches) of the per-request values in arrival order
(for the sampling observer of (c), that SE and the one of its samples in time order, added in
quadrature), so that a changed random stream cannot flip it. Each test states its number of
requests and its `rel`.

Maintenance windows are "held by a test policy": a SimPy process that claims the replica
through the engine's maintenance API at each window start and releases it at the window end,
exactly as the chip's probe does; Workload.maintenance = "preempt" (the default).

The engine and the reference are deterministic given the arrival times, so besides the means
the tests feed the engine's own (sorted) arrival times and the same window schedule to
`lindley_waits` and require the same final service start for every request.

Tie rule (half-open intervals, as the reference): a service that ends exactly at a window start
completes; `test_service_ending_exactly_at_window_start` pins it (SimPy may process the window's
claim first; the engine then keeps the finished service instead of restarting it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import simpy

from queueing_reference import (
    NS_PER_S,
    batch_means_se,
    lindley_detail,
    md1_mean_wait,
    periodic_windows,
    time_average_in_system,
    tolerance,
    window_mean_wait,
    window_mean_wait_loaded,
    window_share,
)
from twin.toolchain.specs import TileGeometry
from twin.traffic.engine import TrafficEngine
from twin.traffic.parameters import PowerSchedule, Windowing, Workload
from twin.traffic.records import AFFECTED, PREEMPTED
from twin.traffic.service import LayerShape, service_model

GEOMETRY = TileGeometry(rows=16, cols=8, reference_cells=8)


def make_service(service_ns: int):
    """A one-layer, one-tile network whose inference takes exactly ``service_ns``:
    ``positions`` MVMs of ``mvm_ns`` each, no digital work."""
    positions, mvm_ns = 10, service_ns // 10
    assert positions * mvm_ns == service_ns
    svc = service_model([LayerShape("l", 8, 8, positions=positions, digital_ops=0)], GEOMETRY,
                        mvm_ns=mvm_ns, mvm_j=1e-9, digital_op_ns=1, digital_op_j=0.0, lanes=256)
    assert svc.sequential_ns == service_ns and svc.n_tiles == 1
    return svc


# ------------------------------------------------------------------------------------ drivers
def _maintenance(env: simpy.Environment, engine: TrafficEngine, windows):
    """The test policy: take the replica (tile 0) for [start, end) of every window."""
    for start, end in windows:
        yield env.timeout(start - env.now)
        claim = yield from engine.claim(0)
        assert env.now == start, "a preempting claim must be granted at once"
        yield env.timeout(end - env.now)
        engine.release(claim)


def _observer(env: simpy.Environment, engine: TrafficEngine, mean_gap_ns: float, seed: int, out: dict):
    """Samples the number in system and the number waiting at Poisson instants (PASTA: their
    averages are time averages), from its own random stream."""
    gaps = np.maximum(1, np.rint(np.random.default_rng(seed).exponential(mean_gap_ns, 1 << 22))).astype(np.int64)
    in_system, waiting = out["in_system"], out["waiting"]
    for gap in gaps.tolist():
        yield env.timeout(gap)
        in_system.append(engine.in_system)
        waiting.append(len(engine.queue))


@dataclass
class Run:
    rate: float  # nominal arrival rate, 1/s
    service_ns: int
    duration_ns: int
    windows: list
    engine: TrafficEngine
    arrival: np.ndarray = field(init=False)  # per request, in arrival order (int64 ns)
    start: np.ndarray = field(init=False)
    end: np.ndarray = field(init=False)
    flags: np.ndarray = field(init=False)
    samples: dict = field(default_factory=lambda: {"in_system": [], "waiting": []})

    def collect(self) -> None:
        rec = self.engine.records
        arrival = np.frombuffer(rec.arrival, dtype=np.int64)
        order = np.argsort(arrival, kind="stable")  # records are in departure order (FIFO: stable)
        self.arrival = arrival[order]
        self.start = np.frombuffer(rec.start, dtype=np.int64)[order]
        self.end = np.frombuffer(rec.end, dtype=np.int64)[order]
        self.flags = np.frombuffer(bytes(rec.flags), dtype=np.uint8)[order]
        assert (self.end >= 0).all(), "unbounded queue, no power-off: nothing may be dropped"

    @property
    def figures(self) -> dict:
        return self.engine.figures

    @property
    def wait_s(self) -> np.ndarray:
        return (self.start - self.arrival) / NS_PER_S

    @property
    def latency_s(self) -> np.ndarray:
        return (self.end - self.arrival) / NS_PER_S


def simulate(service_ns: int, rate: float, duration_ns: int, seed: int, windows=(),
             observe_gap_ns: float | None = None) -> Run:
    svc = make_service(service_ns)
    env = simpy.Environment()
    engine = TrafficEngine(env, svc, Workload(rate=rate), PowerSchedule(), Windowing(), duration_ns,
                           svc.n_tiles, np.random.default_rng(seed))
    run = Run(rate, service_ns, duration_ns, list(windows), engine)
    engine.start()
    if windows:
        env.process(_maintenance(env, engine, run.windows))
    if observe_gap_ns:
        env.process(_observer(env, engine, observe_gap_ns, seed + 1000, run.samples))
    env.run(until=duration_ns)
    engine.finish()
    run.collect()
    return run


def check(name: str, measured: float, expected: float, rel: float, se: float, unit: str = "") -> str:
    """Assert the tolerance rule; return the line describing the comparison."""
    tol = tolerance(expected, rel, se)
    line = (f"{name}: measured {measured:.6g}{unit} vs expected {expected:.6g}{unit} "
            f"({(measured - expected) / expected:+.2%}); SE {se:.3g} ({se / abs(expected):.2%}), "
            f"tolerance {tol:.3g} = max({rel:.0%}, 4 SE) -> {tol / abs(expected):.2%}, "
            f"used {abs(measured - expected) / tol:.2f} of it")
    print(line)
    assert abs(measured - expected) <= tol, line
    return line


def observer_se(samples: np.ndarray, se_little: float) -> float:
    """SE for observer-vs-lambda W: the observer's own batch-means SE (its samples in time order:
    the path's variation and the sampling noise) and the SE of lambda W, added in quadrature (an
    upper bound: the two share the sample path)."""
    return float(np.hypot(batch_means_se(samples), se_little))


def assert_same_as_reference(run: Run) -> np.ndarray:
    """Feed the engine's arrivals and windows to the Lindley reference: same start (and so the
    same end) for every request, and the same preemptions. Returns the reference restarts."""
    start, end, restarts = lindley_detail(run.arrival, run.service_ns, run.windows)
    bad = np.flatnonzero(start != run.start)
    assert bad.size == 0, (
        f"{bad.size} of {run.arrival.size} requests start differently from the Lindley reference; first: "
        f"arrival {run.arrival[bad[0]]} ns, twin start {run.start[bad[0]]}, reference start {start[bad[0]]}")
    assert np.array_equal(end, run.end)
    assert int(restarts.sum()) == run.engine.records.preemptions
    assert np.array_equal((run.flags & PREEMPTED) > 0, restarts > 0)
    return restarts


def in_window(times: np.ndarray, windows) -> np.ndarray:
    starts = np.array([a for a, _ in windows], dtype=np.int64)
    ends = np.array([b for _, b in windows], dtype=np.int64)
    k = np.searchsorted(starts, times, side="right") - 1
    return (k >= 0) & (times < ends[np.clip(k, 0, None)])


def affected_by_windows(run: Run) -> np.ndarray:
    """Requests that arrived in a window or were in the system when one began (the engine's
    AFFECTED flag: 'waited on maintenance')."""
    starts = np.array([a for a, _ in run.windows] + [np.iinfo(np.int64).max], dtype=np.int64)
    nxt = starts[np.searchsorted(starts, run.arrival, side="right")]
    return in_window(run.arrival, run.windows) | (nxt < run.end)


# ---------------------------------------------------------------------------- (a) M/D/1 runs
S_A = 1_000  # ns: s = 1 us
N_A = {0.5: 500_000, 0.8: 1_000_000}  # expected requests per run
OBSERVE_GAP_A = 5_000.0  # ns: mean gap of the Little observer (about 250,000 samples at rho 0.8)


@pytest.fixture(scope="module")
def md1_runs():
    """One run per load (shared by (a) and (c)); the rho = 0.8 run carries the observer."""
    runs = {}
    for rho, n in N_A.items():
        rate = rho * NS_PER_S / S_A
        duration = round(n / rate * NS_PER_S)
        runs[rho] = simulate(S_A, rate, duration, seed=101, observe_gap_ns=OBSERVE_GAP_A if rho == 0.8 else None)
    return runs


@pytest.mark.parametrize("rho", sorted(N_A))
def test_md1_mean_wait(md1_runs, rho):
    """(a) No maintenance, Poisson arrivals, deterministic s = 1 us: the mean wait matches M/D/1,
    W = rho s / (2 (1 - rho)), within max(3%, 4 SE). Requests: 5e5 at rho = 0.5, 1e6 at rho = 0.8.
    And the engine serves every request exactly when the Lindley recursion does."""
    run = md1_runs[rho]
    n = run.arrival.size
    assert abs(n - N_A[rho]) < 5 * np.sqrt(N_A[rho]), f"{n} requests simulated, {N_A[rho]} expected"
    assert run.figures["requests"]["simulated"] == n and run.figures["requests"]["preempted"] == 0
    wait = run.wait_s
    assert run.figures["wait_s"]["mean"] == pytest.approx(wait.mean(), rel=1e-12)
    check(f"M/D/1 rho={rho} mean wait ({n} requests)", wait.mean(), md1_mean_wait(rho, S_A / NS_PER_S),
          0.03, batch_means_se(wait), " s")
    assert_same_as_reference(run)


# ---------------------------------------------------------------------------- (c) Little's law
def test_little_law_in_system(md1_runs):
    """(c) Little's law at rho = 0.8 (the 1e6-request run of (a)): L, the time-average number in
    system, against the nominal lambda times the measured mean time in system (W + s), within
    max(2%, 4 SE), SE from the latencies (times lambda). L two ways: an observer process that
    samples the engine's number in system at ~250,000 Poisson instants (SE: `observer_se`), and
    the engine's own integral (figures["mean_in_system"]); the latter must also equal the
    reference's exact time average of the recorded requests up to the few still in system at
    the end."""
    run = md1_runs[0.8]
    rate, latency = run.rate, run.latency_s
    expected = rate * latency.mean()
    se = rate * batch_means_se(latency)
    samples = np.asarray(run.samples["in_system"], dtype=np.float64)
    assert samples.size > 200_000
    check(f"observer L ({samples.size} samples) vs lambda (W + s)", samples.mean(), expected, 0.02,
          observer_se(samples, se))
    engine_l = run.figures["mean_in_system"]
    check("engine mean_in_system vs lambda (W + s)", engine_l, expected, 0.02, se)
    exact = time_average_in_system(run.arrival, run.end, 0, run.duration_ns)
    assert engine_l == pytest.approx(exact, rel=1e-4), (engine_l, exact)


def test_little_law_in_queue(md1_runs):
    """(c) The queue-only version at rho = 0.8: L_q (the observer's samples of the number
    waiting, and the exact time average of [arrival, start) intervals) against the nominal
    lambda times the measured mean wait W, within max(2%, 4 SE)."""
    run = md1_runs[0.8]
    wait = run.wait_s
    expected = run.rate * wait.mean()
    se = run.rate * batch_means_se(wait)
    waiting = np.asarray(run.samples["waiting"], dtype=np.float64)
    check("observer L_q vs lambda W", waiting.mean(), expected, 0.02, observer_se(waiting, se))
    check("time-average L_q vs lambda W", time_average_in_system(run.arrival, run.start, 0, run.duration_ns),
          expected, 0.02, se)


# --------------------------------------------------------------- (b) windows at light load
S_B = 25_000_000  # ns: s = 25 ms
D_B = 1000 * NS_PER_S  # D = 1000 s = 40,000 s
T_B = 20 * D_B  # T = 20,000 s: D/T = 0.05
K_B = 320  # windows (10 per batch of the batch means)
RHO_B = 0.002
RATE_B = RHO_B * NS_PER_S / S_B  # 0.08 requests/s: about 512,000 requests in K_B periods


@pytest.fixture(scope="module")
def light_run():
    duration = K_B * T_B
    windows = periodic_windows(D_B, T_B, duration, phase_ns=T_B // 2)  # one whole window per period
    assert len(windows) == K_B and windows[-1][1] < duration
    return simulate(S_B, RATE_B, duration, seed=202, windows=windows)


def test_windows_light_load(light_run):
    """(b) Clock-driven maintenance in preempt mode: windows of D = 1000 s every T = 20,000 s
    (D/T = 0.05, D/s = 40,000), 320 windows, rho = 0.002 (s = 25 ms, lambda = 0.08/s, about
    512,000 requests). The share of requests arriving in a window is D/T and the mean wait is
    D^2/(2T) = 25 s, each within max(3%, 4 SE). The engine's start times equal the Lindley
    reference's, and its 'waited on maintenance' flags and request availability follow."""
    run = light_run
    n = run.arrival.size
    expected_n = RATE_B * run.duration_ns / NS_PER_S
    assert abs(n - expected_n) < 5 * np.sqrt(expected_n), (n, expected_n)
    assert run.figures["requests"]["in_system_at_end"] == 0
    D, T = D_B / NS_PER_S, T_B / NS_PER_S
    inside = in_window(run.arrival, run.windows).astype(np.float64)
    check(f"share arriving in a window ({n} requests)", inside.mean(), window_share(D, T), 0.03,
          batch_means_se(inside))
    wait = run.wait_s
    check(f"mean wait, light load ({n} requests)", wait.mean(), window_mean_wait(D, T), 0.03,
          batch_means_se(wait), " s")
    assert_same_as_reference(run)
    affected = affected_by_windows(run)
    assert np.array_equal((run.flags & AFFECTED) > 0, affected)
    assert run.figures["availability_requests"] == pytest.approx(1.0 - affected.mean(), rel=1e-12)


# ------------------------------------------------------------------ (b) windows at rho = 0.2
S_L = 1_000_000  # ns: s = 1 ms
D_L = 1 * NS_PER_S  # D = 1 s = 1000 s: scaled down from 1000 s (D/s is what matters; see below)
T_L = 20 * NS_PER_S  # D/T = 0.05
K_L = 160  # windows (5 per batch)
RHO_L = 0.2
RATE_L = RHO_L * NS_PER_S / S_L  # 200 requests/s: about 640,000 requests


@pytest.fixture(scope="module")
def loaded_run():
    duration = K_L * T_L
    windows = periodic_windows(D_L, T_L, duration, phase_ns=T_L // 2)
    assert len(windows) == K_L
    return simulate(S_L, RATE_L, duration, seed=303, windows=windows, observe_gap_ns=10e6)


def test_windows_loaded(loaded_run):
    """(b) At rho = 0.2 the backlog a window leaves adds waiting (D^2/(2T) is 20% low). The
    twin's mean wait within max(3%, 4 SE) of the independent Lindley simulation with server-off
    intervals, fed the same arrival times and windows (they in fact agree request by request:
    same final service start, same preemptions). D = 1 s, T = 20 s (D/T = 0.05), s = 1 ms
    (D/s = 1000), 160 windows, about 640,000 requests. D is scaled down from the 1000 s of the
    light-load test only to keep the request count moderate (at D = 1000 s and rho = 0.2, 160
    windows would take 6.4e8 requests); what the waits depend on, D/T, D/s and rho, is kept.
    Also within 3% of the refined formula of docs/traffic-theory.md (a sanity check)."""
    run = loaded_run
    n = run.arrival.size
    expected_n = RATE_L * run.duration_ns / NS_PER_S
    assert abs(n - expected_n) < 5 * np.sqrt(expected_n), (n, expected_n)
    ref_start, _, restarts = lindley_detail(run.arrival, S_L, run.windows)
    ref_wait = (ref_start - run.arrival) / NS_PER_S
    wait = run.wait_s
    check(f"mean wait rho=0.2 vs Lindley ({n} requests)", wait.mean(), ref_wait.mean(), 0.03,
          batch_means_se(wait), " s")
    D, T, s = D_L / NS_PER_S, T_L / NS_PER_S, S_L / NS_PER_S
    check("mean wait rho=0.2 vs refined formula", wait.mean(), window_mean_wait_loaded(RHO_L, s, D, T), 0.03,
          batch_means_se(wait), " s")
    assert wait.mean() > 1.1 * window_mean_wait(D, T), "the backlog must add waiting at rho = 0.2"
    assert_same_as_reference(run)
    assert run.engine.records.preemptions > 0  # the restart path was exercised
    assert np.array_equal((run.flags & AFFECTED) > 0, affected_by_windows(run))


def test_little_law_with_windows(loaded_run):
    """(c) Little's law holds with windows too (docs/traffic-theory.md): at rho = 0.2 with the
    windows above, L (observer samples at ~320,000 Poisson instants, and the engine's integral)
    against the nominal lambda times the measured W + s, within max(2%, 4 SE). The observer's
    sampling noise is large here (the number in system is ~0 most of the time and ramps to ~200
    in a window), so its SE (`observer_se`) sets its tolerance."""
    run = loaded_run
    latency = run.latency_s
    expected = run.rate * latency.mean()
    se = run.rate * batch_means_se(latency)
    samples = np.asarray(run.samples["in_system"], dtype=np.float64)
    check(f"observer L with windows ({samples.size} samples)", samples.mean(), expected, 0.02,
          observer_se(samples, se))
    check("engine mean_in_system with windows", run.figures["mean_in_system"], expected, 0.02, se)


# ----------------------------------------------------------------------------- tie rules
def run_trace(arrivals_ns, windows, service_ns=1000, duration_ns=100_000) -> Run:
    """The engine on given arrival times (a trace) and windows: deterministic timelines."""
    svc = make_service(service_ns)
    env = simpy.Environment()
    trace = np.asarray(arrivals_ns, dtype=np.int64)
    engine = TrafficEngine(env, svc, Workload(arrivals="trace", trace=Path("unused.csv")), PowerSchedule(),
                           Windowing(), duration_ns, svc.n_tiles, np.random.default_rng(0), trace_ns=trace)
    run = Run(0.0, service_ns, duration_ns, list(windows), engine)
    engine.start()
    env.process(_maintenance(env, engine, run.windows))
    env.run(until=duration_ns)
    engine.finish()
    run.collect()
    return run


@pytest.mark.parametrize("arrivals, windows", [
    ([6000], [(5000, 8000)]),  # arrives inside: waits for the end -> [8000, 9000)
    ([5000], [(5000, 8000)]),  # arrives exactly at the window start -> [8000, 9000)
    ([8000], [(5000, 8000)]),  # exactly at the window end: served at once
    ([4500], [(5000, 8000)]),  # cut after 500 of 1000 ns, restarts at 8000
    ([4500, 4600, 4700], [(5000, 8000)]),  # the cut one goes first after the window, FIFO behind
    ([1500, 1600], [(1000, 2000), (2500, 4000)]),  # 1500 waits to 2000, is cut at 2500: [4000, 5000)
    ([1800], [(1000, 2000), (2500, 4000), (4500, 6000)]),  # cut twice (2500, 4500): [6000, 7000)
], ids=["inside", "at-start", "at-end", "cut", "cut-then-fifo", "wait-then-cut", "cut-twice"])
def test_timelines_match_reference(arrivals, windows):
    """Hand-made timelines at the edges of windows: the engine as the reference."""
    assert_same_as_reference(run_trace(arrivals, windows))


def test_service_ending_exactly_at_window_start():
    """Arrival at 4000, s = 1000, window [5000, 8000): the service [4000, 5000) ends as the
    window begins: served [4000, 5000), no restart."""
    run = run_trace([4000], [(5000, 8000)])
    assert run.start.tolist() == [4000] and run.end.tolist() == [5000]
    assert run.engine.records.preemptions == 0
