"""The default scenario over 20 programmings against the figures recorded before the speed work
(issue 11): the one-pass program-and-verify draws in another order, so bytes differ, but minimum
and final accuracy, pulses and energy may not move beyond their standard errors.

The record, tests/fixtures/default_baseline.json, came from ``bench/default_baseline.py --out
tests/fixtures/default_baseline.json --workers 2`` at the commit it names (d0e1639, the code as
it stood before the speed work). About two minutes on two cores.
"""

import json
from pathlib import Path

import pytest

from twin.study.statistics import FIGURES, agreement, programming_figures

RECORD = Path(__file__).parent / "fixtures" / "default_baseline.json"
Z_MAX = 3.0  # Welch's z per figure: 4 figures at |z| <= 3 fail by chance about 1% of the time


@pytest.fixture(scope="module")
def now() -> dict:
    return programming_figures(seeds=20, workers=2)


@pytest.mark.parametrize("figure", ["accuracy_min", "accuracy_final", "pulses_total", "energy_maintenance_j"])
def test_default_scenario_statistics_match_the_record_from_before_the_speed_work(now, figure):
    before = json.loads(RECORD.read_text())
    assert before["seeds"] == list(range(20)) and before["code_commit"].startswith("d0e1639")
    z = agreement(now[figure], before["figures"][figure])
    assert abs(z) <= Z_MAX, (f"{figure}: {now[figure]['mean']:.6g} +- {now[figure]['se']:.3g} now, "
                             f"{before['figures'][figure]['mean']:.6g} +- {before['figures'][figure]['se']:.3g} "
                             f"before (se, 20 seeds): z = {z:.2f}")


def test_agreement_is_welchs_z():
    assert set(FIGURES) >= {"accuracy_min", "accuracy_final", "pulses_total", "energy_maintenance_j"}
    assert agreement({"mean": 1.0, "se": 0.3}, {"mean": 0.5, "se": 0.4}) == pytest.approx(1.0)
    assert agreement({"mean": 2.0, "se": 0.0}, {"mean": 2.0, "se": 0.0}) == 0.0
    assert agreement({"mean": 2.1, "se": 0.0}, {"mean": 2.0, "se": 0.0}) == float("inf")
