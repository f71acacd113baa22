"""Whole runs from scenarios: determinism, the no-oracle rule, outputs."""

import copy
import json
import math

import pytest
import torch

from twin.scenario.schema import load_scenario
from twin.report.records import collect
from twin.simulate import build, simulate, write_outputs
from tiny_chip import runs_with_scrambled_truth

SHORT = ["duration=3 d", "checkpoints.count=4", "evaluation.accuracy_samples=2", "network.sa_iterations=200",
         "network.sa_restarts=2"]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/default.yaml", SHORT)


def _without_wall(summary: dict) -> dict:
    summary = copy.deepcopy(summary)
    summary.pop("wall_s")
    return summary


def test_same_scenario_and_seed_give_identical_summary(scenario, tmp_path):
    first = simulate(scenario)
    second = simulate(scenario)
    a = json.dumps(_without_wall(first.summary), sort_keys=True)
    b = json.dumps(_without_wall(second.summary), sort_keys=True)
    assert a == b
    assert first.summary["campaigns"] == 2 and first.summary["pulses"]["total"] > 0
    other = simulate(scenario.with_overrides(["seed=1"]))
    assert other.summary["accuracy"] != first.summary["accuracy"]


def test_firmware_never_reads_the_true_levels(scenario):
    a, b = runs_with_scrambled_truth(scenario)
    assert a["displaced_devices"] != b["displaced_devices"]  # the simulator's score uses the truth ...
    for key in ("accuracy", "energy_j", "pulses", "campaigns", "availability", "reads", "misreads"):
        assert a[key] == b[key], key  # ... the chip's behaviour does not


def test_after_the_build_the_truth_lives_off_chip_and_in_the_scorer_only(scenario):
    run = build(scenario)
    assert run.chip.devices.target_level is None  # the devices hold no record of their targets
    readout = run.observers.accuracy.readout
    weights = [m.weight for m in readout.model.modules() if hasattr(m, "weight") and m.weight is not None]
    assert weights and all(bool(torch.isnan(w).all()) for w in weights)  # structure and biases only
    mapping = readout.mapping
    reference = set(mapping.reference_pos.ravel().tolist()) | set(mapping.reference_neg.ravel().tolist())
    assert set(torch.nonzero(readout.g_target).flatten().tolist()) <= reference  # GDC's reference targets only
    assert not hasattr(run, "network") and not hasattr(run.chip, "x_test")
    # nothing the chip holds but its off-chip memory equals the original levels
    original = run.chip.offchip._levels
    for name, value in vars(run.chip).items():
        if name != "offchip" and isinstance(value, torch.Tensor) and value.shape == original.shape:
            assert not torch.equal(value.to(original.dtype), original), name
    assert not any(isinstance(v, torch.Tensor) and v.shape == original.shape and torch.equal(v.to(original.dtype),
                   original) for v in vars(run.chip.devices).values())


def test_outputs_are_complete_and_protected(scenario, tmp_path):
    result = simulate(scenario)
    out = write_outputs(result, scenario, tmp_path / "run")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["campaigns.csv", "device_pulses.csv", "scenario.resolved.yaml", "summary.json", "timeline.csv"]
    assert result.trace is None  # the tracer is off unless outputs.trace
    summary = json.loads((out / "summary.json").read_text())
    for key in ("schema_version", "scenario", "seed", "policy", "duration_s", "accuracy", "energy_j", "pulses",
                "campaigns", "misreads", "displaced_devices", "energy_maintenance_j", "model_sha256", "availability",
                "events", "versions", "wall_s"):
        assert key in summary
    assert set(summary["energy_j"]) >= {"total", "initial_programming", "probe_read", "verify_read", "partial_set",
                                        "reset", "offchip", "mvm", "controller", "static"}
    assert all(0 <= a["accuracy"] <= 1 for a in summary["accuracy"])
    assert summary["events"] > 0 and 0 < summary["availability"]["time"] < 1
    assert summary["availability"]["requests"] is None and "traffic" not in summary  # no traffic section
    reloaded = load_scenario(out / "scenario.resolved.yaml")
    assert reloaded.sha256() == scenario.sha256() == summary["scenario"]["sha256"]
    with pytest.raises(FileExistsError):
        write_outputs(result, scenario, out)


def test_snapshot_at_a_campaign_boundary_resumes_identically(scenario):
    whole = build(scenario)
    whole.run()
    first = build(scenario)
    first.chip.start()
    first.chip.env.run(until=36 * 3600 * 10**9)  # between the day-1 and day-2 campaigns
    blob = first.snapshot()
    resumed = build(scenario)
    resumed.restore(blob)
    resumed.resume()
    a, b = collect(whole, 0.0), collect(resumed, 0.0)
    # The restart's own bookkeeping is not counted (Chip.load_state); the first part's stop at 36 h is
    # one event of SimPy's (run(until) schedules it), which the uninterrupted run does not have.
    assert b.summary.pop("events") == a.summary.pop("events") + 1
    assert json.dumps(a.summary, sort_keys=True) == json.dumps(b.summary, sort_keys=True)
    assert (a.timeline, a.campaigns, a.device_pulses) == (b.timeline, b.campaigns, b.device_pulses)


def test_snapshot_of_another_run_is_refused(scenario):
    first = build(scenario)
    first.chip.start()
    first.chip.env.run(until=36 * 3600 * 10**9)
    other = build(scenario.with_overrides(["seed=5"]))
    with pytest.raises(ValueError, match="another run"):
        other.restore(first.snapshot())


def test_snapshot_refused_mid_campaign(scenario):
    run = build(scenario)
    run.chip.start()
    run.chip.env.run(until=86_400 * 10**9 + 1_500)  # inside the day-1 campaign
    with pytest.raises(RuntimeError, match="between correction campaigns"):
        run.snapshot()


def test_every_json_output_is_strict_json(tmp_path):
    """summary.json, compare.json, sweep.json, optimize.json all go through atomic_write_json:
    non-finite figures become null, never the NaN/Infinity that strict JSON readers refuse."""
    from twin.atomic import atomic_write_json

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    atomic_write_json(tmp_path / "x.json", {"inf": float("inf"), "nested": [float("nan"), 1.5, {"m": -math.inf}]})
    assert json.loads((tmp_path / "x.json").read_text(), parse_constant=refuse) == {
        "inf": None, "nested": [None, 1.5, {"m": None}]}
