"""The controller's give-up path (VERIFY -> retry -> FAULT) and its reference-cell restore rule.

Two layers: the firmware alone, driven step by step with hand-built observations of one tiny
tile; and whole runs through the chip twin whose pulse physics is made deterministic so that
some devices can never pass verify.
"""

from __future__ import annotations

import numpy as np
import pytest

from firmware_model.controller import Controller, State
from firmware_model.interface import (FirmwareConfig, Probe, ProbeReading, Program, ProgramReport, TileLayout,
                                      Wait)
from firmware_model.policies import Periodic
from tiny_chip import random_digits_checkpoint

# --- firmware level ------------------------------------------------------------------------
# One 4 x 4 tile, K = 4, g_max = 4 uS (spacing 1 uS). Rows 0-2 hold weights; row 3 holds two
# reference cells (cells 12 and 13, at levels 1 and 2) and two unused cells.
ROWS, COLS, K, G_MAX = 4, 4, 4, 4.0
CELLS = ROWS * COLS
REF_CELLS = np.array([12, 13])
REF_LEVELS = np.array([1, 2], dtype=np.int16)
INTERVAL = 1_000
T1, T2 = INTERVAL, 2 * INTERVAL  # the first two campaigns


def layout() -> TileLayout:
    weight = np.zeros((ROWS, COLS), dtype=bool)
    weight[:3] = True
    return TileLayout(0, ROWS, COLS, weight, REF_CELLS.copy(), REF_LEVELS.copy())


def controller(max_retries: int = 1, decoder: str = "nearest") -> Controller:
    return Controller(FirmwareConfig(K, G_MAX, (layout(),)), Periodic(INTERVAL), decoder, 0.25, max_retries)


def programmed_levels() -> np.ndarray:
    """Levels of the 32 local devices (G+ then G-): weights 0..4 in turn, references at theirs."""
    levels = np.zeros(2 * CELLS, dtype=np.int16)
    for sign in (0, 1):
        levels[sign * CELLS:sign * CELLS + 12] = np.arange(12) % (K + 1)
        levels[sign * CELLS + REF_CELLS] = REF_LEVELS
    return levels


def reading(t_ns: int, g: np.ndarray) -> ProbeReading:
    return ProbeReading(0, t_ns, g[:CELLS].reshape(ROWS, COLS).copy(), g[CELLS:].reshape(ROWS, COLS).copy())


def on_level() -> np.ndarray:
    return programmed_levels().astype(np.float64) * (G_MAX / K)


def report(t_ns: int, command: Program, never: set[int]) -> ProgramReport:
    """Every programmed device converges except those in ``never``."""
    converged = np.array([d not in never for d in command.devices.tolist()])
    return ProgramReport(0, t_ns, command.devices.copy(), converged,
                         command.levels.astype(np.float64) * (G_MAX / K), int(command.devices.size))


def start_campaign(c: Controller, t_ns: int) -> None:
    """Step an idle controller to the start of the campaign at ``t_ns``: it probes tile 0."""
    assert c.state == State.IDLE
    assert c.step(t_ns, None) == Probe(0)


def run_campaign(c: Controller, t_ns: int, g: np.ndarray, never: set[int]) -> list[Program]:
    """One campaign over the tile: the Program commands issued until the controller waits again."""
    start_campaign(c, t_ns)
    programs: list[Program] = []
    command = c.step(t_ns, reading(t_ns, g))
    while isinstance(command, Program):
        programs.append(command)
        command = c.step(t_ns, report(t_ns, command, never))
    assert command == Wait(t_ns + INTERVAL), command
    return programs


# Device 5 (G+ of cell 5, level 0) and device 19 (G- of cell 3, level 3) read off their level by
# 0.4 of a spacing: both are sent to program-and-verify; the nearest decoder still reads them right.
STUCK, OTHER = 5, 19


def drifted() -> np.ndarray:
    g = on_level()
    g[STUCK] += 0.4
    g[OTHER] -= 0.4
    return g


def states_since(c: Controller, mark: int) -> list[State]:
    return [t.state for t in c.trace[mark:]]


@pytest.mark.parametrize("max_retries", [0, 1, 2, 3])
def test_a_device_that_never_converges_is_retried_max_retries_times_then_given_up(max_retries):
    c = controller(max_retries)
    assert c.step(0, None) == Wait(T1)
    programs = run_campaign(c, T1, drifted(), never={STUCK})
    # The first attempt programs both off-level devices; every retry only the one that failed,
    # to the level it was first sent to.
    assert programs[0].devices.tolist() == [STUCK, OTHER] and programs[0].levels.tolist() == [0, 3]
    assert len(programs) == 1 + max_retries
    for retry in programs[1:]:
        assert retry.devices.tolist() == [STUCK] and retry.levels.tolist() == [0]
    assert states_since(c, 0) == ([State.PROBE, State.DECODE, State.CORRECT, State.VERIFY]
                                  + [State.CORRECT, State.VERIFY] * max_retries + [State.FAULT, State.IDLE])
    assert c.faulty == {0: {STUCK}}

    # Next campaign: both devices off again; the faulty one is no longer sent to Program.
    mark = len(c.trace)
    programs = run_campaign(c, T2, drifted(), never={STUCK})
    assert [p.devices.tolist() for p in programs] == [[OTHER]]
    assert states_since(c, mark) == [State.PROBE, State.DECODE, State.CORRECT, State.VERIFY, State.IDLE]
    assert c.faulty == {0: {STUCK}}
    # Only the faulty device off its level: no Program at all.
    g = on_level()
    g[STUCK] += 0.4
    mark = len(c.trace)
    assert run_campaign(c, 3 * INTERVAL, g, never=set()) == []
    assert states_since(c, mark) == [State.PROBE, State.DECODE, State.IDLE]


@pytest.mark.parametrize("max_retries", [1, 2, 3])
def test_a_device_that_converges_on_its_last_retry_is_not_faulty(max_retries):
    c = controller(max_retries)
    c.step(0, None)
    start_campaign(c, T1)
    command = c.step(T1, reading(T1, drifted()))
    attempts = 0
    while isinstance(command, Program):
        attempts += 1
        # STUCK fails every attempt before the last one allowed, then converges.
        command = c.step(T1, report(T1, command, never={STUCK} if attempts <= max_retries else set()))
    assert attempts == 1 + max_retries
    assert command == Wait(T2)
    assert State.FAULT not in states_since(c, 0)
    assert c.faulty.get(0, set()) == set()
    assert [p.devices.tolist() for p in run_campaign(c, T2, drifted(), never=set())] == [[STUCK, OTHER]]


def test_retry_count_starts_afresh_for_every_tile_and_campaign():
    c = controller(max_retries=2)
    c.step(0, None)
    # Campaign 1: STUCK fails the first two attempts and converges on the third (second retry).
    start_campaign(c, T1)
    command, attempts = c.step(T1, reading(T1, drifted())), 0
    while isinstance(command, Program):
        attempts += 1
        command = c.step(T1, report(T1, command, never={STUCK} if attempts < 3 else set()))
    assert attempts == 3 and not c.faulty.get(0)
    # Campaign 2: the full budget again (a counter carried over would give up after one attempt).
    programs = run_campaign(c, T2, drifted(), never={STUCK})
    assert len(programs) == 3
    assert c.faulty == {0: {STUCK}}


@pytest.mark.parametrize("decoder", ["nearest", "drift_aware"])
def test_disturbed_reference_cells_are_restored_to_their_known_levels(decoder):
    c = controller(max_retries=1, decoder=decoder)
    c.step(0, None)
    g = on_level()
    ref1_pos, ref2_neg = int(REF_CELLS[0]), CELLS + int(REF_CELLS[1])
    g[ref1_pos] = 0.0  # reference of level 1 reads at level 0
    g[ref2_neg] = 3.0  # reference of level 2 reads at level 3
    start_campaign(c, T1)
    command = c.step(T1, reading(T1, g))
    decision = c.decisions[-1]
    if decoder == "nearest":  # the decoder reads them at the other level ...
        assert decision.decoded.levels[ref1_pos] == 0 and decision.decoded.levels[ref2_neg] == 3
        assert decision.decoded.reference_errors == 2
    # ... the firmware holds and programs them to their known levels all the same.
    assert isinstance(command, Program)
    sent = dict(zip(command.devices.tolist(), command.levels.tolist()))
    assert sent[ref1_pos] == 1 and sent[ref2_neg] == 2
    for sign in (0, 1):
        assert decision.assigned[sign * CELLS + REF_CELLS].tolist() == REF_LEVELS.tolist()
    if decoder == "nearest":
        assert sent == {ref1_pos: 1, ref2_neg: 2}
    # The restore holds for retries too: a reference that never converges is retried to its level.
    retry = c.step(T1, report(T1, command, never={ref1_pos}))
    assert isinstance(retry, Program)
    assert retry.devices.tolist() == [ref1_pos] and retry.levels.tolist() == [1]
    assert c.step(T1, report(T1, retry, never={ref1_pos})) == Wait(T2)
    assert c.faulty == {0: {ref1_pos}}


def test_references_on_their_levels_are_left_alone():
    c = controller()
    c.step(0, None)
    assert run_campaign(c, T1, on_level(), never=set()) == []
    assert states_since(c, 0) == [State.PROBE, State.DECODE, State.IDLE]


# --- through the chip twin ----------------------------------------------------------------
# Deterministic pulses: RESET lands at exactly 0, a partial-SET adds exactly two level spacings,
# the verify band is a sliver. A device programmed to an even level lands on it exactly; one at
# an odd level never can: from 0 it climbs 0, 2, 4 ... spacings, overshoots, is RESET, and
# stops after max_iterations pulses at an even level. The nearest decoder then reads an odd
# *weight* device at that even level, on level, so it is never corrected (its error is
# permanent, as docs/controller.md says); but an odd *reference* device is restored to its known
# odd level, is sent to program-and-verify, and can never converge. With K = 4 and four reference
# cells per tile (levels 1, 2, 3, 4) that is 2 cells x 2 arrays = 4 devices per tile, pulsed
# (max_retries + 1) * max_iterations times in the first campaign and never again.
MAX_ITERATIONS = 3
LEVELS, G_MAX_US, REFERENCE_CELLS = 4, 25.0, 4
E2E = ["duration=3 d", "policy.name=periodic", "policy.interval=1 d", "policy.decoder=nearest",
       "policy.gdc=false", "checkpoints.count=1", "evaluation.accuracy_samples=1", "evaluation.test_images=8",
       "network.sa_iterations=20", "network.sa_restarts=0", "outputs.progress=false",
       f"chip.levels={LEVELS}", f"chip.g_max_us={G_MAX_US}", f"chip.reference_cells={REFERENCE_CELLS}",
       "chip.rows=64", "chip.cols=64",
       "chip.device.prog_noise_scale=0", "chip.device.read_noise_scale=0", "chip.device.drift_scale=0",
       f"chip.pulse_generator.partial_set_step_mean_us={2 * G_MAX_US / LEVELS}",
       "chip.pulse_generator.partial_set_step_std_us=0", "chip.pulse_generator.reset_g_mean_us=0",
       "chip.pulse_generator.reset_g_std_us=0", "chip.pulse_generator.verify_tolerance_abs_us=0.05",
       "chip.pulse_generator.verify_tolerance_rel=0", f"chip.pulse_generator.max_iterations={MAX_ITERATIONS}"]


@pytest.fixture(scope="module")
def untrained_checkpoint(tmp_path_factory):
    """Random weights in the digits_cnn layout: no training needed."""
    return random_digits_checkpoint(tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def runs(untrained_checkpoint):
    from twin.scenario.schema import Scenario
    from twin.simulate import simulate

    def run(max_retries: int):
        scenario = Scenario(name="never-converges").with_overrides(
            E2E + [f"network.checkpoint={untrained_checkpoint}", f"policy.max_retries={max_retries}"])
        return simulate(scenario)

    return {r: run(r) for r in (0, 2)}


@pytest.mark.parametrize("max_retries", [0, 2])
def test_chip_gives_up_on_never_converging_devices_after_max_retries(runs, max_retries):
    result = runs[max_retries]
    s = result.summary
    tiles = s["chip"]["tiles"]
    assert s["campaigns"] == 2  # the faulty devices are skipped in the second
    odd_references = tiles * 2 * 2  # cells at levels 1 and 3, G+ and G-
    assert s["faulty_devices"] == odd_references
    per_device = (max_retries + 1) * MAX_ITERATIONS
    maintained = [d for d in result.device_pulses if d["maintenance_pulses"]]
    # Exactly the odd-level reference devices (last row, columns 0 and 2), each pulsed in the first
    # campaign only: (max_retries + 1) attempts of max_iterations pulses.
    rows, cols = s["chip"]["rows"], s["chip"]["cols"]
    assert cols >= REFERENCE_CELLS
    assert sorted((d["tile"], d["array"], d["row"], d["col"]) for d in maintained) == sorted(
        (t, a, rows - 1, c) for t in range(tiles) for a in ("G+", "G-") for c in (0, 2))
    assert [d["maintenance_pulses"] for d in maintained] == [per_device] * odd_references
    assert s["pulses"]["total"] == odd_references * per_device


def test_chip_pulse_count_follows_the_retry_cap(runs):
    total = {r: runs[r].summary["pulses"]["total"] for r in runs}
    assert total[2] == 3 * total[0] > 0
