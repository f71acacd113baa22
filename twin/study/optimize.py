"""``twin optimize``: the least-energy schedule parameter that keeps accuracy above a floor.

One parameter per policy: ``interval`` for periodic and drift_aware, ``threshold`` for threshold.
A candidate value is scored by running the scenario with seeds ``seed .. seed + N - 1``: its
accuracy is the minimum over seeds of the minimum over checkpoints, its energy the mean
maintenance energy (reads, pulses, off-chip transfers, controller; static power and the initial
programming do not depend on the schedule). The search itself (grid, then bisection, with its
stopping rule) is :func:`twin.study.search.search`.
"""

from __future__ import annotations

from collections.abc import Callable
import os
from dataclasses import dataclass

from twin.study.compare import policy_metrics, run_many
from twin.study.engine import Engine
from twin.scenario.schema import Scenario, ScenarioError
from twin.study.search import SearchResult, search
from twin.units import HOUR, format_duration

__all__ = ["PARAMETERS", "reference_accuracy", "optimize"]


@dataclass(frozen=True)
class Parameter:
    name: str
    lo: float
    hi: float | None  # None: the deployment duration
    integer: bool
    energy_decreases_with_value: bool
    formatter: Callable[[float], str]


PARAMETERS = {
    "periodic": Parameter("interval", HOUR, None, True, True, lambda v: format_duration(int(v))),
    "drift_aware": Parameter("interval", 60 * 10**9, None, True, True, lambda v: format_duration(int(v))),
    "threshold": Parameter("threshold", 0.01, 3.0, False, True, lambda v: f"{v:.4g}"),
}


def _tasks(scenario: Scenario, overrides: list[str], seeds: int) -> list:
    """One run per seed; the network stays that of the first seed (seeds vary the chip only)."""
    pin = [] if scenario.network.seed is not None else [f"network.seed={scenario.seed}"]
    return [(scenario.with_overrides(overrides + pin + [f"seed={seed}"]), "candidate", seed)
            for seed in range(scenario.seed, scenario.seed + seeds)]


def reference_accuracy(scenario: Scenario, seeds: int, workers: int | None = None, engine: Engine | None = None) -> float:
    """Mean over seeds of the accuracy at the first checkpoint with no correction (the t = 0 accuracy)."""
    first = scenario.checkpoint_times_ns()[0]
    tasks = _tasks(scenario, ["policy.name=none", f"duration={first} ns", f"checkpoints=[{first} ns]"], seeds)
    runs = [r["summary"] for r in run_many(tasks, workers, engine=engine)]
    return sum(s["accuracy"][0]["accuracy"] for s in runs) / len(runs)


def optimize(scenario: Scenario, policy: str, floor: float, seeds: int = 3, workers: int | None = None,
             lo: float | None = None, hi: float | None = None, max_evaluations: int = 12,
             log: Callable[[str], None] | None = None) -> tuple[SearchResult, Parameter, float]:
    """Search ``policy``'s parameter; ``floor < 0`` means that far below the t = 0 accuracy.

    Returns the search result, the parameter searched and the absolute floor used.
    """
    if policy not in PARAMETERS:
        raise ScenarioError([("--policy", f"one of {', '.join(PARAMETERS)}")])
    parameter = PARAMETERS[policy]
    with Engine(min(workers or os.cpu_count() or 1, seeds)) as engine:  # one cluster for every candidate
        return _optimize(scenario, policy, parameter, floor, seeds, engine, lo, hi, max_evaluations, log)


def _optimize(scenario: Scenario, policy: str, parameter: Parameter, floor: float, seeds: int, engine: Engine,
              lo: float | None, hi: float | None, max_evaluations: int,
              log: Callable[[str], None] | None) -> tuple[SearchResult, Parameter, float]:
    if floor < 0:
        floor = reference_accuracy(scenario, seeds, engine=engine) + floor
    base = [] if scenario.policy.name == policy else [f"policy.name={policy}"]
    lo = parameter.lo if lo is None else lo
    hi = (scenario.duration if parameter.hi is None else parameter.hi) if hi is None else hi

    def evaluate(value: float) -> tuple[float, float]:
        text = f"{int(value)} ns" if parameter.integer else repr(float(value))
        runs = run_many(_tasks(scenario, base + [f"policy.{parameter.name}={text}"], seeds), engine=engine)
        errors = [r["error"] for r in runs if r["error"]]
        if errors:
            raise RuntimeError(f"simulation failed at {parameter.name}={text}: {errors[0]}")
        metrics = policy_metrics([r["summary"] for r in runs])
        if log:
            log(f"  {parameter.name} = {parameter.formatter(value)}: min accuracy "
                f"{100 * metrics['accuracy_min']['min']:.2f}%, maintenance energy "
                f"{metrics['energy_maintenance_j']['mean']:.4g} J")
        return metrics["accuracy_min"]["min"], metrics["energy_maintenance_j"]["mean"]

    result = search(evaluate, lo, hi, floor, scale="log", integer=parameter.integer,
                    energy_decreases_with_value=parameter.energy_decreases_with_value,
                    max_evaluations=max_evaluations, grid_points=min(6, max_evaluations))
    return result, parameter, floor
