"""Fault injection (docs/faults.md): each fault type shows in the outputs, the firmware detects what
its readings reveal and keeps serving, the scenario section is checked field by field, and a run
without faults is exactly what it was.

Three layers: the device overlay and the firmware's tile check alone; the tiny chip of
tests/tiny_chip.py (exact physics, exact expectations); short whole runs from scenarios on an
untrained network (no training: seconds).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from firmware_model.controller import Controller, State
from firmware_model.interface import FirmwareConfig, Halt, Probe, ProbeReading, Program, TileLayout, Wait
from firmware_model.policies import Periodic
from tiny_chip import EXACT_PULSES, random_digits_checkpoint, runs_with_scrambled_truth, tiny_chip
from twin.chip.parameters import FaultParameters
from twin.device.faults import NEVER, DeviceFaults
from twin.device.parameters import PCMParameters
from twin.device.pcm import DeviceArray, PCMStatistics
from twin.report.records import collect, fault_summary
from twin.scenario.loader import ScenarioError
from twin.scenario.schema import Scenario, load_scenario
from twin.simulate import build, simulate, write_outputs

DAY = 86_400 * 10**9

# --- the device overlay -------------------------------------------------------------------------


def test_stuck_and_dead_devices_read_fixed_values_and_ignore_pulses():
    devices = DeviceArray(2, PCMStatistics(PCMParameters()), torch.tensor([1, 1, 1, 2], dtype=torch.int16))
    devices.program(0, torch.Generator().manual_seed(0))
    stuck = torch.tensor([True, True, False, False])
    dead_from = torch.tensor([NEVER, NEVER, NEVER, 5 * DAY])
    devices.faults = DeviceFaults(stuck, torch.tensor([0.0, 25.0, 0.0, 0.0]), dead_from, 1.0,
                                  torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    for t in (1, DAY, 4 * DAY):  # stuck: exactly their value at any age (no drift, no noise)
        read = devices.read(t, g)
        assert read[:2].tolist() == [0.0, 25.0] and read[3] > 0
    assert devices.read(5 * DAY, g)[3] == 0.0  # the dead tile reads the ADC floor from its death on
    before, after = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([9.0, 9.0, 9.0, 9.0])
    moved, failed = devices.faults.pulsed(DAY, torch.arange(4), before, after)
    assert failed.all() and moved.tolist() == [0.0, 25.0, 3.0, 4.0]  # probability 1: no pulse acts
    devices.faults.pulse_failure_probability = 0.0
    moved, failed = devices.faults.pulsed(6 * DAY, torch.arange(4), before, after)
    assert not failed.any() and moved.tolist() == [0.0, 25.0, 9.0, 4.0]  # stuck stay, dead stays, healthy moves


# --- the firmware's tile check -------------------------------------------------------------------
ROWS, COLS, K, G_MAX = 4, 4, 4, 4.0
CELLS = ROWS * COLS


def two_tiles(reference_levels=(1, 2)) -> Controller:
    weight = np.zeros((ROWS, COLS), dtype=bool)
    weight[:3] = True
    layouts = tuple(TileLayout(t, ROWS, COLS, weight, np.array([12, 13]), np.array(reference_levels, dtype=np.int16))
                    for t in range(2))
    return Controller(FirmwareConfig(K, G_MAX, layouts), Periodic(1_000), "nearest", 0.25, 1)


def reading(tile: int, g: np.ndarray) -> ProbeReading:
    return ProbeReading(tile, 0, g[:CELLS].reshape(ROWS, COLS).copy(), g[CELLS:].reshape(ROWS, COLS).copy())


def on_level(reference_levels=(1, 2)) -> np.ndarray:
    g = np.zeros(2 * CELLS)
    for sign in (0, 1):
        g[sign * CELLS:sign * CELLS + 12] = np.arange(12) % (K + 1)
        g[sign * CELLS + np.array([12, 13])] = reference_levels
    return g * (G_MAX / K)


def test_firmware_gives_up_a_tile_reading_at_the_floor_and_keeps_serving_the_other():
    c = two_tiles()
    assert c.step(0, None) == Wait(1_000)
    assert c.step(1_000, None) == Probe(0)
    assert c.step(1_000, reading(0, np.zeros(2 * CELLS))) == Probe(1)  # nothing decoded, nothing programmed
    assert [t.state for t in c.trace[-3:]] == [State.DECODE, State.TILE_FAULT, State.PROBE]
    assert c.dead_tiles == {0: 1_000} and c.faulty == {}
    assert c.step(1_000, reading(1, on_level())) == Wait(2_000)
    assert c.step(2_000, None) == Probe(1)  # the next campaign skips tile 0 ...
    drifted = on_level()
    drifted[0] += 0.4
    assert isinstance(c.step(2_000, reading(1, drifted)), Program)  # ... and still corrects tile 1


class OneTileAtATime(Periodic):
    """A policy that asks for tile 0 only, every period (so, once tile 0 is dead, only for a dead tile)."""

    def tiles(self, now_ns: int, n_tiles: int) -> list[int]:
        super().tiles(now_ns, n_tiles)  # counts the campaign
        return [0]


def test_a_campaign_of_dead_tiles_only_is_no_campaign_and_all_dead_halts():
    c = two_tiles()
    c.policy = OneTileAtATime(1_000)
    assert c.step(0, None) == Wait(1_000)
    assert c.step(1_000, None) == Probe(0)
    assert c.step(1_000, reading(0, np.zeros(2 * CELLS))) == Wait(2_000)  # tile 0 given up
    assert c.campaigns == 1
    assert c.step(2_000, None) == Wait(2_001)  # only a dead tile asked for: no campaign, no recursion
    assert c.campaigns == 1
    assert c.step(2_001, None) == Wait(3_000)  # the policy moved on
    c.dead_tiles[1] = 2_500
    assert isinstance(c.step(3_000, None), Halt)  # every tile dead: nothing left to correct


def test_a_reference_at_the_floor_is_restored_not_taken_for_a_dead_tile():
    c = two_tiles()
    c.step(0, None)
    c.step(1_000, None)
    g = on_level()
    g[12] = 0.0  # one of the four reference devices reads 0: under half
    command = c.step(1_000, reading(0, g))
    assert isinstance(command, Program) and command.devices.tolist() == [12] and c.dead_tiles == {}


def test_without_references_of_known_level_no_tile_is_given_up():
    c = two_tiles(reference_levels=(0, 0))
    c.step(0, None)
    c.step(1_000, None)
    assert c.step(1_000, reading(0, np.zeros(2 * CELLS))) == Probe(1) and c.dead_tiles == {}


# --- the tiny chip: exact expectations -----------------------------------------------------------
# 2 tiles of 4 x 4, K = 2; per tile 24 weight devices (G+: level 2 on row 0, 1 on rows 1-2; G-: 0)
# and 4 reference devices (levels 1 and 2, G+ and G-); noiseless devices, exact pulses.
WEIGHTS, USED = 48, 56


def run_tiny(**kw):
    run = tiny_chip(**kw)
    run.run()
    return run, fault_summary(run)


def test_stuck_high_references_fail_verify_and_are_marked_faulty_stuck_weights_are_lost():
    run, faults = run_tiny(faults=FaultParameters(stuck_high_fraction=1.0))
    assert faults["injected"]["stuck_high"] == USED
    # The level-1 references (G+ and G-, both tiles) are restored towards 12.5 uS, never leave g_max:
    # (max_retries + 1) x max_iterations RESETs each, then given up.
    assert run.chip.controller.faulty == {0: {12, 28}, 1: {12, 28}}
    assert faults["detected"] == {"faulty_devices": 4, "stuck_devices": 4, "false_alarms": 0, "dead_tiles": 0,
                                  "false_dead_tiles": 0}
    assert run.observers.ledger.counts["reset"] == 4 * 2 * EXACT_PULSES.max_iterations
    # A weight stuck at g_max reads on the top level: the firmware cannot tell it from a weight at
    # level 2, so the 40 weight devices below level 2 are lost without being detected.
    assert faults["lost"]["stuck_weights"] == WEIGHTS - 8


def test_probe_read_errors_are_misreads_or_corrected_and_nothing_else_misreads():
    clean, _ = run_tiny()
    assert clean.observers.scoring.misreads() == 0
    run, faults = run_tiny(faults=FaultParameters(probe_error_probability=0.5))
    injected, lost = faults["injected"]["probe_read_errors"], faults["lost"]["probe_misreads"]
    assert injected > 0 and lost > 0
    assert lost + faults["corrected"]["probe_read_errors"] == injected  # every garbage reading decoded
    assert run.observers.scoring.misreads() == lost  # noiseless: garbage is the only cause of a misread


def test_failed_pulses_cost_pulses_and_the_verify_loop_absorbs_them():
    pulses = replace(EXACT_PULSES, max_iterations=40)
    clean, _ = run_tiny(pulses=pulses)
    run, faults = run_tiny(pulses=pulses, faults=FaultParameters(pulse_failure_probability=0.5))
    count = lambda r: r.observers.ledger.counts["initial_partial_set"] + r.observers.ledger.counts["initial_reset"]
    extra = count(run) - count(clean)
    assert 0 < extra <= faults["injected"]["failed_pulses"]  # each extra pulse follows a failed one
    assert faults["corrected"]["pulse_failures"] > 0 and faults["detected"]["faulty_devices"] == 0


def test_a_dead_tile_is_detected_skipped_and_lost_while_the_other_is_still_corrected():
    run, faults = run_tiny(pcm=PCMParameters(prog_noise_scale=0, read_noise_scale=0), interval_ns=DAY,
                           duration_ns=3 * DAY + DAY // 2, checkpoints=(DAY // 2, 3 * DAY + DAY // 4),
                           decoder="drift_aware", trace=True,
                           faults=FaultParameters(dead_tiles=((1, 3 * DAY // 2),)))
    rows = {(r.campaign, r.tile): r for r in run.observers.campaigns.ordered()}
    assert sorted(rows) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0)]  # tile 1 probed once dead, then skipped
    assert rows[(2, 1)].partial_set == rows[(2, 1)].reset == rows[(2, 1)].devices_corrected == 0
    assert all(rows[(c, 0)].partial_set > 0 for c in (1, 2, 3))  # drift on tile 0 is still corrected
    detected_ns = run.chip.controller.dead_tiles[1]
    assert 2 * DAY < detected_ns < 2 * DAY + 10**6
    assert faults["dead_tiles"] == [{"tile": 1, "died_s": 1.5 * 86_400, "died_ns": 3 * DAY // 2,
                                     "detected_s": detected_ns / 1e9, "detected_ns": detected_ns}]
    assert faults["detected"]["dead_tiles"] == 1 and faults["lost"]["dead_tile_weights"] == WEIGHTS // 2
    assert [r["detail"] for r in run.observers.trace.rows if "TILE_FAULT" in r["detail"]] == [
        "state=TILE_FAULT tile=1 campaign=2"]
    assert len(run.observers.accuracy.rows) == 2  # accuracy is still measured after the death


# --- whole runs from scenarios -------------------------------------------------------------------
SHORT = ["duration=3 d", "policy.name=periodic", "policy.interval=1 d", "checkpoints.count=2",
         "evaluation.accuracy_samples=1", "evaluation.test_images=16", "network.sa_iterations=20",
         "network.sa_restarts=0", "outputs.progress=false", "chip.rows=64", "chip.cols=64"]
ALL_FAULTS = ["faults.stuck_low_fraction=0.02", "faults.stuck_high_fraction=0.02",
              "faults.pulse_failure_probability=0.1", "faults.probe_error_probability=0.01",
              "faults.dead_tiles=[{tile: 1, at: 1.5 d}]"]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """Random weights in the digits_cnn layout: no training needed."""
    path = random_digits_checkpoint(tmp_path_factory.mktemp("faults"))
    return Scenario(name="faults").with_overrides(SHORT + [f"network.checkpoint={path}"])


def without(summary: dict, *keys: str) -> dict:
    summary = copy.deepcopy(summary)
    for key in ("wall_s", *keys):
        summary.pop(key, None)
    return summary


def test_same_seed_same_bytes_other_seed_other_faults(untrained, tmp_path):
    scenario = untrained.with_overrides(ALL_FAULTS)
    outs = [write_outputs(simulate(scenario), scenario, tmp_path / name) for name in ("a", "b")]
    for name in ("campaigns.csv", "timeline.csv", "device_pulses.csv", "scenario.resolved.yaml"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    a, b = (without(json.loads((out / "summary.json").read_text())) for out in outs)
    assert a == b and all(a["faults"]["injected"][k] > 0 for k in a["faults"]["injected"])
    other = simulate(scenario.with_overrides(["seed=1"])).summary["faults"]
    assert other["injected"]["failed_pulses"] != a["faults"]["injected"]["failed_pulses"]


def test_no_section_no_block_and_an_empty_section_changes_nothing_else(untrained):
    assert untrained.faults is None and "faults" not in untrained.resolved_dict()  # the hash of old files holds
    plain = simulate(untrained)
    assert "faults" not in plain.summary
    empty = simulate(untrained.with_overrides(["faults={}"]))
    assert empty.summary["faults"]["injected"] == {"stuck_low": 0, "stuck_high": 0, "dead_tiles": 0,
                                                   "failed_pulses": 0, "probe_read_errors": 0}
    # the fault machinery in place, nothing injected: not one draw or pulse differs
    assert without(plain.summary, "scenario") == without(empty.summary, "scenario", "faults")
    assert (plain.timeline, plain.campaigns, plain.device_pulses) == (empty.timeline, empty.campaigns,
                                                                      empty.device_pulses)


def test_probe_errors_draw_from_their_own_stream(untrained):
    runs = []
    for p in (0.0, 0.05):
        run = build(untrained.with_overrides([f"faults.probe_error_probability={p}"]))
        run.run()
        runs.append((run, collect(run, 0.0).summary))
    (plain, a), (probed, b) = runs
    assert b["faults"]["lost"]["probe_misreads"] > 0 and b["misreads"] > a["misreads"]
    assert b["initial_programming"] == a["initial_programming"]  # before any probe: identical
    # The same probes drew the same read noise: the garbage came from faults.probe, not chip.probe's stream.
    assert a["reads"]["probe_rows"] == b["reads"]["probe_rows"]
    assert torch.equal(plain.chip.probe.generator.get_state(), probed.chip.probe.generator.get_state())


def retries(run) -> int:
    """Program-and-verify attempts the firmware repeated (VERIFY -> CORRECT)."""
    states = [t.state for t in run.chip.controller.trace]
    return sum(a == State.VERIFY and b == State.CORRECT for a, b in zip(states, states[1:]))


def test_failed_pulses_raise_pulses_and_retries_and_the_firmware_gives_up_on_healthy_devices(untrained):
    runs = {}
    for p in (0.0, 0.5):
        run = build(untrained.with_overrides(["chip.pulse_generator.max_iterations=20",
                                              f"faults.pulse_failure_probability={p}"]))
        run.run()
        runs[p] = (run, collect(run, 0.0).summary)
    (_, a), (failing, b) = runs[0.0], runs[0.5]
    assert b["faults"]["injected"]["failed_pulses"] > 0 and a["faults"]["injected"]["failed_pulses"] == 0
    assert b["pulses"]["total"] > a["pulses"]["total"]
    assert b["initial_programming"]["partial_set"] > a["initial_programming"]["partial_set"]
    assert retries(failing) > 0  # (per tile and round: real noise makes a few retries without faults too)
    # Nothing is stuck: every device given up (after max_retries retries) is a false alarm, caused by the failures.
    assert b["faults"]["detected"]["false_alarms"] == b["faults"]["detected"]["faulty_devices"] > \
        a["faults"]["detected"]["faulty_devices"]
    assert b["faults"]["corrected"]["pulse_failures"] > 0


def test_stuck_references_are_detected_stuck_weights_at_an_extreme_level_are_not(untrained):
    run = build(untrained.with_overrides(["faults.stuck_low_fraction=0.03", "faults.stuck_high_fraction=0.03"]))
    run.run()
    faults = fault_summary(run)
    layout, dpt = run.chip.layout, run.chip.layout.devices_per_tile
    references, levels = [], []
    for t, tile in enumerate(run.chip.controller.config.tiles):
        cells = np.concatenate([tile.reference_cells, tile.reference_cells + layout.rows * layout.cols])
        references.append(cells + t * dpt)
        levels.append(np.concatenate([tile.reference_levels, tile.reference_levels]))
    references, levels = np.concatenate(references), np.concatenate(levels)
    low, high = run.chip.faults.stuck_low.numpy(), run.chip.faults.stuck_high.numpy()
    top = run.chip.devices.levels
    # A stuck reference is restored to its known level and fails verify, unless it is stuck where it
    # belongs (high at level K); a stuck weight reads as level 0 or K and is never sent to P&V.
    expected = int(low[references].sum() + (high[references] & (levels < top)).sum())
    assert faults["detected"]["stuck_devices"] == expected > 0
    assert faults["detected"]["faulty_devices"] == expected + faults["detected"]["false_alarms"]
    assert faults["detected"]["dead_tiles"] == 0 and faults["lost"]["stuck_weights"] > 0


def test_the_firmware_never_sees_the_truth_with_faults(untrained):
    """Randomising the true levels right after deployment changes nothing but the truth's scores."""
    scenario = untrained.with_overrides(ALL_FAULTS)
    a, b = runs_with_scrambled_truth(scenario)
    assert a["displaced_devices"] != b["displaced_devices"]  # the scores use the truth ...
    assert a["faults"]["lost"]["stuck_weights"] != b["faults"]["lost"]["stuck_weights"]
    for key in ("accuracy", "energy_j", "pulses", "campaigns", "availability", "reads", "misreads",
                "faulty_devices"):
        assert a[key] == b[key], key  # ... the chip's behaviour does not
    for key in ("injected", "detected", "corrected", "dead_tiles"):
        assert a["faults"][key] == b["faults"][key], key


def test_a_snapshot_with_faults_resumes_identically(untrained):
    scenario = untrained.with_overrides(ALL_FAULTS)
    whole = build(scenario)
    whole.run()
    first = build(scenario)
    first.chip.start()
    first.chip.env.run(until=36 * 3_600 * 10**9)  # between the day-1 and day-2 campaigns
    resumed = build(scenario)
    resumed.restore(first.snapshot())
    resumed.resume()
    a, b = collect(whole, 0.0), collect(resumed, 0.0)
    assert abs(a.summary.pop("events") - b.summary.pop("events")) <= 4
    assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)
    assert a.campaigns == b.campaigns


# --- the section -------------------------------------------------------------------------------

def test_section_defaults_are_the_runtime_defaults_and_the_example_round_trips(tmp_path):
    from twin.scenario.faults import FaultsConfig, fault_parameters
    assert fault_parameters(FaultsConfig()) == FaultParameters()
    example = load_scenario("scenarios/faults.yaml")
    assert example.faults.dead_tiles[0].tile == 2 and example.faults.dead_tiles[0].at == 30 * DAY
    assert example.resolved_dict()["faults"]["dead_tiles"] == [{"tile": 2, "at": "30 d"}]
    (tmp_path / "resolved.yaml").write_text(yaml.safe_dump(example.resolved_dict(), sort_keys=False))
    assert load_scenario(tmp_path / "resolved.yaml").sha256() == example.sha256()


@pytest.mark.parametrize("override,field", [
    ("faults.stuck_low_fraction=1.5", "faults.stuck_low_fraction"),
    ("faults.stuck_high_fraction=-0.1", "faults.stuck_high_fraction"),
    ("faults.pulse_failure_probability=.nan", "faults.pulse_failure_probability"),
    ("faults.probe_error_probability=.inf", "faults.probe_error_probability"),
    ("faults.probe_error_probability=true", "faults.probe_error_probability"),
    ("faults={stuck_low_fraction: 0.6, stuck_high_fraction: 0.5}", "faults.stuck_high_fraction"),
    ("faults.dead_tiles=[{tile: 4, at: 1 d}]", "faults.dead_tiles.0.tile"),
    ("faults.dead_tiles=[{tile: 0, at: 1 d}, {tile: 0, at: 2 d}]", "faults.dead_tiles.1.tile"),
    ("faults.dead_tiles=[{tile: 0, at: 5}]", "faults.dead_tiles.0.at"),
    ("faults.dead_tiles=[{tile: 0, at: 4 d}]", "faults.dead_tiles.0.at"),
    ("faults.dead_tiles=[{tile: -1, at: 1 d}]", "faults.dead_tiles.0.tile"),
    ("faults.stuck=0.1", "faults.stuck"),
])
def test_errors_name_the_field(override, field):
    # 64 x 64 tiles: digits_cnn needs 4 (tiles 0..3); duration 3 d
    base = Scenario(name="x").with_overrides(["duration=3 d", "chip.rows=64", "chip.cols=64"])
    with pytest.raises(ScenarioError) as err:
        base.with_overrides([override])
    assert field in [path for path, _ in err.value.errors], err.value.errors
