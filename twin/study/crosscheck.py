"""The chip twin against aihwkit's own inference path, over many programmings.

One chip is one programming, and from a month on accuracy varies 6-11 points (std, without
GDC; about 1 with GDC) from one programming to the next, so the statistic is taken over programmings: each side programs the
same trained network ``programmings`` times (the twin: whole chip runs of the scenario with
seeds ``seed .. seed + n - 1``, through its program-and-verify loop; aihwkit: its own
``program_analog_weights`` / ``drift_analog_weights``), the per-programming accuracies give a
mean and a standard error at each time, and ``z = (twin - aihwkit) / sqrt(se_twin^2 +
se_aihwkit^2)``. The scenario must use ``chip.encoding: analog`` (aihwkit has no levels) and fix
``network.seed`` (every programming carries the same network).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from twin.chip.chip import stream
from twin.chip.observers import AccuracyObserver
from twin.scenario.build import build, network_spec
from twin.scenario.schema import Scenario
from twin.toolchain.aihwkit_bridge import aihwkit_accuracy
from twin.toolchain.prepare import prepare_network
from twin.units import SECOND

__all__ = ["CrosscheckRow", "crosscheck", "twin_accuracies", "aihwkit_accuracies"]


@dataclass(frozen=True)
class CrosscheckRow:
    t_ns: int
    gdc: bool
    programmings: int  # per side
    twin_mean: float
    twin_se: float  # standard error over programmings
    twin_std: float  # spread of one programming's accuracy
    aihwkit_mean: float
    aihwkit_se: float
    aihwkit_std: float

    @property
    def z(self) -> float:
        return (self.twin_mean - self.aihwkit_mean) / math.hypot(self.twin_se, self.aihwkit_se)


def _check(scenario: Scenario) -> None:
    if scenario.chip.encoding != "analog":
        raise ValueError("the cross-check needs chip.encoding: analog (aihwkit's path has no levels)")
    if scenario.network.seed is None:
        raise ValueError("the cross-check needs network.seed: every programming must carry the same network")


def twin_accuracies(scenario: Scenario, programmings: int, seed: int) -> dict[bool, np.ndarray]:
    """GDC off and on -> (programmings, checkpoints): accuracy of whole chip runs without
    correction, seed by seed; each programming is measured both ways by two observers."""
    _check(scenario)
    out: dict[bool, list] = {False: [], True: []}
    for i in range(programmings):
        run = build(scenario.with_overrides([f"seed={seed + i}", "policy={name: gdc}"]))
        kept = run.observers.accuracy
        plain = AccuracyObserver(run.chip, kept.ledger, kept.readout, kept.x_test, kept.y_test,
                                 stream(seed + i, "evaluation without GDC"), kept.samples, kept.periphery, gdc=False)
        plain.attach(run.chip.bus)
        run.run()
        out[True].append([row.accuracy for row in kept.rows])
        out[False].append([row.accuracy for row in plain.rows])
    return {gdc: np.asarray(rows) for gdc, rows in out.items()}


def aihwkit_accuracies(scenario: Scenario, programmings: int, seed: int, gdc: bool) -> np.ndarray:
    """(programmings, checkpoints): the same network through aihwkit's own program and drift."""
    _check(scenario)
    spec, network_seed = network_spec(scenario)
    network = prepare_network(spec, scenario.chip.levels, network_seed, scenario.evaluation.test_images,
                              quantized=False)
    times_s = [t / SECOND for t in scenario.checkpoint_times_ns()]
    result = aihwkit_accuracy(network.model, network.x_test, network.y_test, times_s, programmings, seed,
                              scenario.chip.g_max_us, gdc=gdc)
    return np.asarray([result[t] for t in times_s]).T


def crosscheck(scenario: Scenario, programmings: int, seed: int = 0) -> list[CrosscheckRow]:
    """Both sides, GDC off and on, at every checkpoint of the scenario."""
    rows = []
    twin = twin_accuracies(scenario, programmings, seed)
    for gdc in (False, True):
        ours = twin[gdc]
        theirs = aihwkit_accuracies(scenario, programmings, seed + 1_000_000, gdc)
        for j, t_ns in enumerate(scenario.checkpoint_times_ns()):
            a, b = ours[:, j], theirs[:, j]
            rows.append(CrosscheckRow(t_ns, gdc, programmings, float(a.mean()), float(a.std(ddof=1) / math.sqrt(a.size)),
                                      float(a.std(ddof=1)), float(b.mean()), float(b.std(ddof=1) / math.sqrt(b.size)),
                                      float(b.std(ddof=1))))
    return rows
