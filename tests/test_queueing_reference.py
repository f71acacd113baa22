"""Tests of the independent queueing reference (tests/queueing_reference.py) itself.

Hand-computed timelines first (all times in ns, comments show the arithmetic), then the
simulation against the formulas in docs/traffic-theory.md with the tolerance rule
max(stated %, 4 batch-means standard errors).
"""

import numpy as np
import pytest

from queueing_reference import (
    NS_PER_S,
    batch_means_se,
    lindley_detail,
    lindley_waits,
    md1_mean_wait,
    periodic_windows,
    poisson_arrivals,
    time_availability,
    time_average_in_system,
    tolerance,
    window_mean_wait,
    window_mean_wait_loaded,
    window_share,
)

S_1MS = 1_000_000  # service time, ns


def timeline(arrivals, service, off=()):
    start, end, restarts = lindley_detail(np.array(arrivals, dtype=np.int64), service, off)
    return start.tolist(), end.tolist(), restarts.tolist()


# ----------------------------------------------------------------------------- hand-computed
def test_no_off_intervals():
    # 0 -> [0, 30); 10 waits for 30 -> [30, 60); 100 finds the server idle -> [100, 130)
    assert timeline([0, 10, 100], 30) == ([0, 30, 100], [30, 60, 130], [0, 0, 0])


def test_back_to_back_requests():
    # three simultaneous arrivals and one at the exact departure of the third
    assert timeline([0, 0, 0, 15], 5) == ([0, 5, 10, 15], [5, 10, 15, 20], [0, 0, 0, 0])


def test_arrival_inside_an_off_interval_waits_for_its_end():
    off = [(50, 80)]
    # arrives at the window start, inside it, and exactly at its end (half-open: server is on)
    assert timeline([50], 10, off)[0] == [80]
    assert timeline([60], 10, off) == ([80], [90], [0])
    assert timeline([80], 10, off)[0] == [80]


def test_off_interval_interrupts_service_and_the_request_restarts():
    off = [(50, 80)]
    # 40 starts, 50 cuts it after 10 of 20 ns; it restarts from scratch at 80 -> [80, 100)
    assert timeline([40], 20, off) == ([80], [100], [1])
    # a service that ends exactly when the window begins is not interrupted: [30, 50)
    assert timeline([30], 20, off) == ([30], [50], [0])
    # requests queued behind the interrupted one follow it after the window:
    # 45 starts, cut at 50 -> [80, 90); 46 -> [90, 100); 47 -> [100, 110)
    assert timeline([45, 46, 47], 10, off) == ([80, 90, 100], [90, 100, 110], [1, 0, 0])


def test_two_consecutive_off_intervals():
    off = [(50, 80), (90, 120)]
    # 40 cut at 50 -> restart 80; 80 + 20 = 100 > 90: cut again -> restart 120 -> [120, 140)
    # 85 arrives during the first restart, queues behind it -> [140, 160)
    assert timeline([40, 85], 20, off) == ([120, 140], [140, 160], [2, 0])
    # 85 alone: 85 + 20 = 105 > 90, cut -> [120, 140); 80 alone with 10 ns: [80, 90) just fits
    assert timeline([85], 20, off) == ([120], [140], [1])
    assert timeline([80], 10, off) == ([80], [90], [0])
    # touching intervals act as one: arrival at 60 waits until 100
    assert timeline([60], 10, [(50, 80), (80, 100)])[0] == [100]


def test_wait_and_latency_from_start_and_end():
    arrivals = np.array([40, 85], dtype=np.int64)
    start, end = lindley_waits(arrivals, 20, [(50, 80), (90, 120)])
    assert (start - arrivals).tolist() == [80, 55]  # waits include the work lost to restarts
    assert (end - arrivals).tolist() == [100, 75]  # latencies


def test_rejects_what_it_does_not_model():
    with pytest.raises(NotImplementedError):
        lindley_waits(np.array([0]), 10, [(5, 6)], preempt=False)
    with pytest.raises(ValueError):
        lindley_waits(np.array([0]), 10, [(50, 80), (70, 90)])  # overlapping
    with pytest.raises(ValueError):
        lindley_waits(np.array([5, 0]), 10)  # unsorted arrivals


def test_poisson_arrivals():
    a = poisson_arrivals(1000.0, 100_000, seed=3)
    assert a.dtype == np.int64 and np.all(np.diff(a) >= 0) and a[0] > 0
    np.testing.assert_array_equal(a, poisson_arrivals(1000.0, 100_000, seed=3))
    gaps = np.diff(a) / NS_PER_S
    assert gaps.mean() == pytest.approx(1e-3, rel=0.02)  # SE 0.3%
    assert gaps.std() == pytest.approx(1e-3, rel=0.03)  # exponential: sd = mean


def test_batch_means_se_and_tolerance():
    x = np.random.default_rng(0).normal(0.0, 1.0, 64_000)
    assert batch_means_se(x) == pytest.approx(1.0 / np.sqrt(x.size), rel=0.35)  # 32 batches
    assert tolerance(10.0, 0.03, 0.01) == pytest.approx(0.3)
    assert tolerance(10.0, 0.03, 0.5) == pytest.approx(2.0)


def test_time_availability_is_exact():
    T, D = 10 * NS_PER_S, NS_PER_S // 2
    off = periodic_windows(D, T, 100 * T)
    assert time_availability(off, 0, 100 * T) == pytest.approx(1 - D / T, abs=1e-15)
    assert time_availability([(5, 10)], 0, 8) == pytest.approx(5 / 8)


# ------------------------------------------------------------------- simulation vs formulas
N = 300_000


@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait(rho):
    arrivals = poisson_arrivals(rho / 1e-3, N, seed=1)
    start, end = lindley_waits(arrivals, S_1MS)
    waits = (start - arrivals) / NS_PER_S
    expected = md1_mean_wait(rho, 1e-3)
    tol = tolerance(expected, 0.03, batch_means_se(waits))
    assert abs(waits.mean() - expected) <= tol, (waits.mean(), expected, tol)
    # Little's law on the sample path, against lambda * (W + s) from the formula
    lam = rho / 1e-3
    L = time_average_in_system(arrivals, end, 0, int(end[-1]))
    latency = (end - arrivals) / NS_PER_S
    expected_L = lam * (expected + 1e-3)
    assert abs(L - expected_L) <= tolerance(expected_L, 0.03, lam * batch_means_se(latency))


def windows_run(rho, D_s, T_s, n, seed):
    arrivals = poisson_arrivals(rho / 1e-3, n, seed)
    off = periodic_windows(int(D_s * NS_PER_S), int(T_s * NS_PER_S), int(arrivals[-1]) + 1)
    start, _ = lindley_waits(arrivals, S_1MS, off)
    return arrivals, (start - arrivals) / NS_PER_S


def test_windows_light_load_share_and_mean_wait():
    # rho 0.002, D = 0.5 s every T = 10 s (D = 500 s): 15,000 windows, ~470 per batch
    D, T = 0.5, 10.0
    arrivals, waits = windows_run(0.002, D, T, N, seed=2)
    inside = ((arrivals % int(T * NS_PER_S)) < int(D * NS_PER_S)).astype(float)
    share = window_share(D, T)
    assert abs(inside.mean() - share) <= tolerance(share, 0.03, batch_means_se(inside))
    expected = window_mean_wait(D, T)
    tol = tolerance(expected, 0.03, batch_means_se(waits))
    assert abs(waits.mean() - expected) <= tol, (waits.mean(), expected, tol)


def test_windows_higher_load_against_the_derived_approximation():
    # rho 0.2, D = 0.2 s every T = 4 s, s = 1 ms (D = 200 s): the backlog after each window
    # makes the light-load D^2/(2T) 20% low; the fluid and refined forms hold (docs)
    D, T = 0.2, 4.0
    _, waits = windows_run(0.2, D, T, N, seed=4)
    se = batch_means_se(waits)
    for refined in (False, True):
        expected = window_mean_wait_loaded(0.2, 1e-3, D, T, refined=refined)
        tol = tolerance(expected, 0.03, se)
        assert abs(waits.mean() - expected) <= tol, (refined, waits.mean(), expected, tol)
    assert waits.mean() > 1.15 * window_mean_wait(D, T)
