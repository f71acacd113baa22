"""Tests for twin.toolchain.quantize: differential-pair quantization and SA step tuning."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from twin.toolchain.quantize import (
    AnnealSchedule,
    QuantSteps,
    allowed_values,
    anneal_steps,
    compare_quantizers,
    dequantize,
    kmeans_codebook_error,
    quantization_error,
    quantize,
    uniform_steps,
)

FAST = AnnealSchedule(iterations=300, restarts=3, patience=2000)


def _weights(kind: str, n: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return rng.normal(0.0, 0.1, n)
    if kind == "laplace":
        return rng.laplace(0.0, 0.05, n)
    if kind == "skewed":
        return rng.normal(0.05, 0.1, n)
    if kind == "positive":
        return np.abs(rng.normal(0.0, 0.1, n))
    if kind == "negative":
        return -np.abs(rng.normal(0.0, 0.1, n))
    raise ValueError(kind)


# --- representation -----------------------------------------------------------------


@pytest.mark.parametrize("field,kwargs", [
    ("step_pos", dict(step_pos=0.0, step_neg=0.1, levels=8)),
    ("step_neg", dict(step_pos=0.1, step_neg=-1.0, levels=8)),
    ("step_pos", dict(step_pos=float("nan"), step_neg=0.1, levels=8)),
    ("levels", dict(step_pos=0.1, step_neg=0.1, levels=0)),
])
def test_quant_steps_validation_names_field(field, kwargs):
    with pytest.raises(ValueError, match=field):
        QuantSteps(**kwargs)


@pytest.mark.parametrize("sp,sn,levels", [(0.11, 0.07, 8), (0.05, 0.05, 8), (0.3, 0.1, 3)])
def test_quantize_matches_brute_force(sp, sn, levels):
    steps = QuantSteps(sp, sn, levels)
    rng = np.random.default_rng(1)
    span = levels * max(sp, sn)
    w = rng.uniform(-1.2 * span, 1.2 * span, size=(40, 25))  # includes clipped weights
    kp, km = quantize(w, steps)
    assert kp.shape == w.shape and km.shape == w.shape
    assert kp.dtype == np.int16 and km.dtype == np.int16
    assert kp.min() >= 0 and km.min() >= 0 and kp.max() <= levels and km.max() <= levels
    q = dequantize(kp, km, steps)
    assert q.dtype == np.float64 and q.shape == w.shape
    pairs = np.array(list(itertools.product(range(levels + 1), repeat=2)), dtype=float)
    every = pairs[:, 0] * sp - pairs[:, 1] * sn
    best = np.abs(w[..., None] - every).min(axis=-1)
    np.testing.assert_allclose(np.abs(w - q), best, rtol=0, atol=1e-12)


def test_allowed_values_sorted_unique_and_consistent():
    steps = QuantSteps(0.11, 0.07, 8)
    vals, kp, km = allowed_values(steps)
    assert vals.size == 81  # 0.11 and 0.07 share no multiple below 9 steps
    assert np.all(np.diff(vals) > 0)
    np.testing.assert_array_equal(dequantize(kp, km, steps), vals)


def test_values_on_levels_round_trip_exactly():
    for steps in (QuantSteps(0.11, 0.07, 8), QuantSteps(0.05, 0.05, 8)):
        vals, _, _ = allowed_values(steps)
        w = np.random.default_rng(2).choice(vals, size=500)
        np.testing.assert_array_equal(dequantize(*quantize(w, steps), steps), w)
        assert quantization_error(w, steps) == (0.0, 0.0)


def test_tie_break_prefers_least_total_conductance():
    levels = 8
    steps = QuantSteps(0.05, 0.05, levels)
    vals, kp, km = allowed_values(steps)
    assert vals.size == 2 * levels + 1
    j = np.rint(vals / 0.05).astype(int)  # value = j * step for j in -K..K
    np.testing.assert_array_equal(j, np.arange(-levels, levels + 1))
    np.testing.assert_array_equal(kp, np.maximum(j, 0))
    np.testing.assert_array_equal(km, np.maximum(-j, 0))
    # A weight made by a costly pair (5 - 3) is stored as the cheap one (2 - 0).
    kp2, km2 = quantize(np.array([5 * 0.05 - 3 * 0.05]), steps)
    assert (int(kp2[0]), int(km2[0])) == (2, 0)


def test_quantization_error_is_sum_over_weights():
    steps = QuantSteps(0.1, 0.1, 2)
    w = np.array([0.03, -0.04, 0.25, 0.0])  # residuals 0.03, -0.04, 0.05 (clipped), 0
    l1, l2 = quantization_error(w, steps)
    assert l1 == pytest.approx(0.12)
    assert l2 == pytest.approx(np.sqrt(0.03**2 + 0.04**2 + 0.05**2))


# --- simulated annealing ------------------------------------------------------------


@pytest.mark.parametrize("kind", ["gauss", "laplace", "skewed", "positive", "negative"])
@pytest.mark.parametrize("schedule", [FAST, AnnealSchedule(iterations=3, restarts=0),
                                      AnnealSchedule(iterations=1, restarts=1)])
def test_anneal_never_worse_than_start(kind, schedule):
    w = _weights(kind, n=500, seed=3)
    for seed in (0, 1, 2):
        r = anneal_steps(w, 8, schedule, seed=seed)
        assert r.initial_steps == uniform_steps(w, 8)
        assert r.initial_error == pytest.approx(quantization_error(w, r.initial_steps)[0])
        assert r.final_error == pytest.approx(quantization_error(w, r.steps)[0])
        assert r.final_error <= r.initial_error
        assert r.steps.step_pos > 0 and r.steps.step_neg > 0
        assert r.iterations_run == r.history.size
        assert r.iterations_run <= schedule.iterations * (1 + schedule.restarts)
        assert np.all(np.diff(r.history) <= 0)
        assert r.history[-1] == pytest.approx(r.final_error, rel=1e-9)


def test_anneal_one_signed_weights_keep_absent_step():
    pos = _weights("positive", n=500)
    r = anneal_steps(pos, 8, FAST, seed=0)
    assert r.steps.step_neg == r.initial_steps.step_neg  # no negative weights: frozen
    assert r.initial_steps.step_neg == r.initial_steps.step_pos == pos.max() / 8
    neg = _weights("negative", n=500)
    r = anneal_steps(neg, 8, FAST, seed=0)
    assert r.steps.step_pos == r.initial_steps.step_pos


def test_anneal_degenerate_inputs():
    r = anneal_steps(np.zeros(10), 8, FAST)
    assert r.final_error == 0.0 and r.iterations_run == 0
    with pytest.raises(ValueError):
        anneal_steps(np.array([]), 8, FAST)
    with pytest.raises(ValueError):
        anneal_steps(np.array([0.1, np.nan]), 8, FAST)


def test_anneal_same_seed_same_result():
    w = _weights("gauss", n=800, seed=4)
    a = anneal_steps(w, 8, FAST, seed=7)
    b = anneal_steps(w, 8, FAST, seed=7)
    assert a.steps == b.steps and a.final_error == b.final_error
    np.testing.assert_array_equal(a.history, b.history)
    c = anneal_steps(w, 8, FAST, seed=8)
    assert not np.array_equal(a.history, c.history)


def test_anneal_history_is_per_iteration_best_and_stops_on_patience():
    w = _weights("gauss", n=500, seed=5)
    sched = AnnealSchedule(iterations=200, restarts=50, patience=300)
    r = anneal_steps(w, 8, sched, seed=0)
    assert r.iterations_run < 200 * 51  # stopped early: no gain over 300 iterations
    last_gain = np.flatnonzero(np.diff(r.history) < -sched.rel_tol * r.history[1:])
    assert r.iterations_run - (last_gain[-1] + 2 if last_gain.size else 1) >= 299


def test_anneal_recovers_known_grid_from_perturbed_start():
    # Weights exactly on the grid of (0.11, 0.07), every one of the 81 levels present.
    true = QuantSteps(0.11, 0.07, 8)
    vals, _, _ = allowed_values(true)
    rng = np.random.default_rng(6)
    w = np.concatenate([vals, rng.choice(vals, size=1000 - vals.size)])
    # With the extreme levels present the uniform start is already exact, so start
    # from perturbed steps instead (+-10..20 %).
    assert quantization_error(w, uniform_steps(w, 8))[0] == pytest.approx(0.0, abs=1e-9)
    ratios = []
    for fp, fn in [(1.1, 0.9), (0.9, 1.15), (1.2, 1.2), (0.85, 1.1)]:
        start = QuantSteps(0.11 * fp, 0.07 * fn, 8)
        for seed in (0, 1):
            r = anneal_steps(w, 8, seed=seed, start=start)
            ratios.append(r.final_error / r.initial_error)
            if ratios[-1] < 0.01:  # a success lands on the true steps
                assert r.steps.step_pos == pytest.approx(0.11, rel=1e-3)
                assert r.steps.step_neg == pytest.approx(0.07, rel=1e-3)
    ratios = np.array(ratios).reshape(4, 2)
    # Measured on this data (4 starts x 10 seeds): ~75 % of single runs reach ~3e-4 of
    # the start error, the rest stall in a partial-alignment local minimum at 0.3-0.8.
    # So assert per start on the better of two seeds, and on the median run.
    assert np.all(ratios <= 1.0)
    assert np.all(ratios.min(axis=1) < 0.01)
    assert np.median(ratios) < 0.01


def test_anneal_default_schedule_lowers_the_error():
    # Its speed is a reported figure, not a test: bench/run.py ("anneal").
    w = _weights("gauss", n=3000, seed=9)
    r = anneal_steps(w)
    assert r.final_error < r.initial_error


# --- baselines and report -----------------------------------------------------------


def test_uniform_steps_fallbacks():
    s = uniform_steps(np.array([0.8, -0.4, 0.1]), 8)
    assert (s.step_pos, s.step_neg) == (pytest.approx(0.1), pytest.approx(0.05))
    s = uniform_steps(np.array([0.8, 0.0]), 4)
    assert s.step_pos == s.step_neg == pytest.approx(0.2)
    assert uniform_steps(np.zeros(3), 8) == QuantSteps(1.0, 1.0, 8)


def test_kmeans_codebook_error():
    w = np.array([0.0, 0.0, 1.0, 1.0, 2.0])
    assert kmeans_codebook_error(w, 10) == (0.0, 0.0)  # clusters capped at 3 distinct
    l1, l2 = kmeans_codebook_error(_weights("gauss", 500), 8)
    assert 0.0 < l2 <= l1


def test_compare_quantizers_report():
    w = _weights("gauss", n=1000, seed=10)
    rep = compare_quantizers(w, 8, FAST, seed=0)
    rows = rep.as_rows()
    assert [r["method"] for r in rows] == ["sa", "uniform", "kmeans"]
    for row in rows:
        assert np.isfinite(row["l1"]) and np.isfinite(row["l2"])
        assert row["l1"] >= 0 and row["l2"] >= 0
        assert 1 <= row["distinct_values"] <= 81
    assert rep.sa_l1 <= rep.uniform_l1  # SA minimises L1 from the uniform start
    assert rep.kmeans_clusters == rep.sa_distinct_used
    assert rep.n_weights == 1000 and rep.levels == 8
