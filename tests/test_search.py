"""The optimize search core on constructed problems with known answers."""

import json
import math

import pytest

from twin.study.search import Evaluation, SearchResult, format_result, result_to_json, search


class Counted:
    """Wraps an evaluate function and records every value it is called with."""

    def __init__(self, acc, energy):
        self.acc, self.energy, self.calls = acc, energy, []

    def __call__(self, v):
        self.calls.append(v)
        return self.acc(v), self.energy(v)


def monotone_acc(v):
    return 0.99 - 0.01 * math.log10(v / 1e9)


def inv_energy(v):
    return 1e12 / v


def assert_truthful(result: SearchResult, f: Counted, floor: float):
    """Every recorded evaluation is what evaluate returned, and best is among them."""
    assert len(f.calls) == len(set(f.calls)) == len(result.evaluations)
    for e in result.evaluations:
        assert e.min_accuracy == f.acc(e.value)
        assert e.energy_j == f.energy(e.value)
        assert e.feasible == (e.min_accuracy >= floor)
    assert result.best in result.evaluations
    if result.feasible:
        feasible = [e for e in result.evaluations if e.feasible]
        assert result.best.feasible
        assert result.best.energy_j == min(e.energy_j for e in feasible)


def test_monotone_finds_largest_feasible_interval_within_rel_tol():
    f = Counted(monotone_acc, inv_energy)
    v_star = 1e13
    r = search(f, 1e9, 1e15, 0.95)
    assert_truthful(r, f, 0.95)
    assert r.feasible
    assert r.best.value <= v_star  # never above v*: answer truly feasible
    assert (v_star - r.best.value) / v_star < 0.05
    assert r.best.energy_j == pytest.approx(1e12 / r.best.value)
    assert r.best.min_accuracy >= 0.95
    assert r.margin == pytest.approx(r.best.min_accuracy - 0.95)
    assert len(f.calls) <= 12
    assert r.stopped_because == "bracket narrower than rel_tol"
    assert "bisection" in r.method and "rel_tol" in r.method


def test_grid_is_geometric_and_inclusive():
    f = Counted(lambda v: 0.0, inv_energy)
    r = search(f, 1e9, 1e15, 0.5, grid_points=7)
    assert [e.value for e in r.evaluations] == pytest.approx([10.0 ** k for k in range(9, 16)])
    assert r.evaluations[0].value == 1e9 and r.evaluations[-1].value == 1e15


def test_non_monotone_feasibility_peaked_in_the_middle():
    # too frequent correction compounds errors, too rare lets drift win: feasible on [1e10, 1e12]
    def acc(v):
        return 0.97 - 0.02 * math.log10(v / 1e11) ** 2

    f = Counted(acc, inv_energy)
    r = search(f, 1e9, 1e15, 0.95)
    assert_truthful(r, f, 0.95)
    assert r.feasible
    assert not r.evaluations[0].feasible  # the smallest interval fails: not monotone
    assert 1e12 / 1.05 <= r.best.value <= 1e12
    assert r.stopped_because == "bracket narrower than rel_tol"


def test_answer_is_least_energy_seen_even_if_energy_not_monotone():
    # feasible on [1e10, 1e12] as above, but values above 3e11 are expensive: the feasible
    # bisection midpoints cost more than the grid value 10**11.4 ~ 2.5e11
    def acc(v):
        return 0.97 - 0.02 * math.log10(v / 1e11) ** 2

    def energy(v):
        return 1e12 / v if v < 3e11 else 100.0

    f = Counted(acc, energy)
    r = search(f, 1e9, 1e15, 0.95)
    assert_truthful(r, f, 0.95)
    assert r.best.value == pytest.approx(10 ** 11.4)
    assert any(e.feasible and e.value > 3e11 for e in r.evaluations)


def test_infeasible_reports_best_found():
    f = Counted(monotone_acc, inv_energy)
    r = search(f, 1e9, 1e15, 0.999)
    assert_truthful(r, f, 0.999)
    assert not r.feasible
    assert r.best.value == 1e9  # highest min_accuracy
    assert r.best.min_accuracy == max(e.min_accuracy for e in r.evaluations)
    assert "no feasible value" in r.stopped_because
    assert r.margin < 0
    assert len(f.calls) == 6  # no refinement past the grid
    text = format_result(r, "interval")
    assert "infeasible" in text.splitlines()[0]


def test_everything_feasible_returns_hi_and_flags_the_edge():
    f = Counted(lambda v: 1.0, inv_energy)
    r = search(f, 1e9, 1e15, 0.95)
    assert r.feasible and r.best.value == 1e15
    assert "range edge" in r.stopped_because and "hi" in r.stopped_because
    assert len(f.calls) == 6  # no extrapolation


def test_integer_returns_ints_without_repeats():
    f = Counted(lambda v: 0.99 - 0.01 * math.log10(v / 1000), lambda v: 1.0 / v)
    r = search(f, 1000, 1_000_000, 0.975, integer=True, max_evaluations=30, rel_tol=1e-6)
    assert_truthful(r, f, 0.975)
    assert all(isinstance(v, int) for v in f.calls)
    assert all(isinstance(e.value, int) for e in r.evaluations)
    v_star = 1000 * 10 ** 1.5  # 31622.8
    assert r.best.value == math.floor(v_star)
    assert "integer resolution" in r.stopped_because


def test_integer_small_range_dedups_grid():
    f = Counted(lambda v: 1.0 if v <= 7 else 0.0, lambda v: 1.0 / v)
    r = search(f, 1, 20, 0.5, integer=True, grid_points=12, max_evaluations=30, rel_tol=1e-3)
    assert len(f.calls) == len(set(f.calls))
    assert r.best.value == 7
    assert "integer resolution" in r.stopped_because


def test_budget_respected():
    f = Counted(monotone_acc, inv_energy)
    r = search(f, 1e9, 1e15, 0.95, max_evaluations=8, rel_tol=1e-9)
    assert len(f.calls) == 8 == len(r.evaluations)
    assert r.stopped_because == "budget exhausted"
    assert r.feasible and r.best.value <= 1e13


def test_energy_increasing_with_value_linear_threshold():
    # a threshold policy where a larger threshold costs more energy and gives more accuracy:
    # least-energy feasible = smallest threshold with accuracy >= floor, t* = 0.55
    f = Counted(lambda t: 0.90 + 0.1 * t, lambda t: 1.0 + t)
    r = search(f, 0.0, 1.0, 0.955, scale="linear", energy_decreases_with_value=False)
    assert_truthful(r, f, 0.955)
    assert r.feasible
    assert 0.55 <= r.best.value <= 0.55 / 0.95
    assert r.stopped_because == "bracket narrower than rel_tol"


def test_energy_increasing_mirrors_the_log_case():
    f = Counted(lambda v: monotone_acc(1e24 / v), lambda v: v / 1e12)
    r = search(f, 1e9, 1e15, 0.95, energy_decreases_with_value=False)
    assert_truthful(r, f, 0.95)
    assert r.feasible
    assert 1e11 <= r.best.value <= 1e11 * 1.05  # mirror of v* = 1e13


def test_energy_increasing_edge_says_widen_lo():
    f = Counted(lambda v: 1.0, lambda v: v)
    r = search(f, 1.0, 2.0, 0.5, scale="linear", energy_decreases_with_value=False)
    assert r.best.value == 1.0
    assert "range edge" in r.stopped_because and "lo" in r.stopped_because


@pytest.mark.parametrize("kwargs, name", [
    (dict(lo=10.0, hi=1.0), "lo"),
    (dict(lo=5.0, hi=5.0), "lo"),
    (dict(lo=0.0, hi=1.0), "lo"),
    (dict(lo=-1.0, hi=1.0), "lo"),
    (dict(lo=1.0, hi=10.0, grid_points=1), "grid_points"),
    (dict(lo=1.0, hi=10.0, grid_points=6, max_evaluations=5), "max_evaluations"),
    (dict(lo=1.0, hi=10.0, rel_tol=0.0), "rel_tol"),
    (dict(lo=1.0, hi=10.0, scale="cubic"), "scale"),
    (dict(lo=1.0, hi=math.inf), "hi"),
])
def test_input_validation_names_the_argument(kwargs, name):
    f = Counted(lambda v: 1.0, lambda v: 1.0)
    with pytest.raises(ValueError, match=name):
        search(f, floor=0.5, **kwargs)
    assert f.calls == []


def test_linear_scale_allows_nonpositive_lo():
    r = search(lambda t: (1.0, 1.0 + t), -1.0, 1.0, 0.5, scale="linear",
               energy_decreases_with_value=False)
    assert r.best.value == -1.0


def test_nan_accuracy_is_rejected():
    with pytest.raises(ValueError, match="min_accuracy"):
        search(lambda v: (math.nan, 1.0), 1.0, 10.0, 0.5)


def test_format_and_json():
    f = Counted(monotone_acc, inv_energy)
    r = search(f, 1e9, 1e15, 0.95)
    text = format_result(r, "interval", lambda v: f"{v / 1e9:.4g} s")
    first = text.splitlines()[0]
    assert first.startswith("feasible") and "infeasible" not in first
    assert f"{r.best.value / 1e9:.4g} s" in text
    assert f"evaluations: {len(r.evaluations)}" in text
    assert r.stopped_because in text
    assert f"{r.margin:+.4f}" in text
    for e in r.evaluations:
        assert f"{e.value / 1e9:.4g} s" in text
    d = json.loads(json.dumps(result_to_json(r, "interval")))
    assert d["parameter"] == "interval" and d["feasible"] is True
    assert d["best"]["value"] == r.best.value
    assert len(d["evaluations"]) == len(r.evaluations) == d["n_evaluations"]
    assert d["stopped_because"] == r.stopped_because and d["method"] == r.method
    assert d["margin"] == pytest.approx(r.margin)
    assert Evaluation(**d["best"]) == r.best
