"""The default scenario's figures over many programmings: what a faster simulator must keep.

``bench/default_baseline.py`` records them (tests/fixtures/default_baseline.json holds the figures
recorded before the speed work of issue 11) and ``tests/test_default_statistics.py`` checks the
code as it stands against that record: bytes may change when random numbers are drawn in another
order, the means may not move beyond their standard errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from twin.chip.ledger import maintenance_energy
from twin.scenario.schema import load_scenario
from twin.study.engine import RunTask, run_tasks

__all__ = ["FIGURES", "DEFAULT_SCENARIO", "programming_figures", "agreement"]

DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "scenarios" / "default.yaml"
FIGURES: dict[str, Callable[[dict], float]] = {
    "accuracy_min": lambda s: min(a["accuracy"] for a in s["accuracy"]),
    "accuracy_final": lambda s: s["accuracy"][-1]["accuracy"],
    "pulses_total": lambda s: s["pulses"]["total"],
    "energy_maintenance_j": lambda s: maintenance_energy(s["energy_j"]),
    "energy_total_j": lambda s: s["energy_j"]["total"],
}
"""Each figure's unit is in its name (accuracies are fractions, pulses a count, energies J)."""


def programming_figures(seeds: int, workers: int | None = None, scenario: Path = DEFAULT_SCENARIO,
                        on_result: Callable | None = None) -> dict[str, dict]:
    """Run ``scenario`` on seeds 0 .. seeds-1 (independent programmings of one trained network:
    the network keeps the scenario's seed, as in ``twin compare``) and return, per figure, its
    mean, sample std, standard error and the values."""
    base = load_scenario(scenario)
    pin = [] if base.network.seed is not None else [f"network.seed={base.seed}"]
    tasks = [RunTask(f"seed{s}", base.with_overrides(pin + [f"seed={s}"]), f"seed{s}", s) for s in range(seeds)]
    outcomes = run_tasks(tasks, workers, on_result=on_result)
    failed = [o for o in outcomes if o.error]
    if failed:
        raise RuntimeError(f"{len(failed)} runs failed, e.g. seed {failed[0].seed}: {failed[0].error}")
    summaries = [o.summary for o in sorted(outcomes, key=lambda o: o.seed)]
    figures = {}
    for name, get in FIGURES.items():
        values = np.array([get(s) for s in summaries], dtype=float)
        figures[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)),
                         "se": float(values.std(ddof=1) / math.sqrt(values.size)), "values": values.tolist()}
    return figures


def agreement(now: dict, before: dict) -> float:
    """Welch's z of two figures' means: (mean_now - mean_before) / sqrt(se_now^2 + se_before^2)."""
    spread = math.hypot(now["se"], before["se"])
    diff = now["mean"] - before["mean"]
    if spread == 0:
        return 0.0 if diff == 0 else math.copysign(math.inf, diff)
    return diff / spread
