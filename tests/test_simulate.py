"""Whole runs from scenarios: determinism, the no-oracle rule, outputs."""

import copy
import json

import pytest
import torch

from twin.scenario.schema import load_scenario
from twin.simulate import build_chip, collect, simulate, write_outputs

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
    honest = build_chip(scenario)
    cheat_proof = build_chip(scenario)

    def corrupt():
        yield cheat_proof.env.timeout(1)  # after deployment started: programming already read its targets
        while cheat_proof.deployed_at_ns == 0:
            yield cheat_proof.env.timeout(1000)
        levels = cheat_proof.deployment.devices.target_level
        levels.copy_(torch.randint(0, 9, levels.shape, generator=torch.Generator().manual_seed(3)).to(levels.dtype))

    cheat_proof.env.process(corrupt())
    honest.run()
    cheat_proof.run()
    a, b = collect(scenario, honest, 0.0).summary, collect(scenario, cheat_proof, 0.0).summary
    assert a["decode_errors"] != b["decode_errors"]  # the simulator's score uses the truth ...
    for key in ("accuracy", "energy_j", "pulses", "campaigns", "availability", "reads"):
        assert a[key] == b[key], key  # ... the chip's behaviour does not


def test_outputs_are_complete_and_protected(scenario, tmp_path):
    result = simulate(scenario)
    out = write_outputs(result, scenario, tmp_path / "run")
    names = sorted(p.name for p in out.iterdir())
    assert names == ["campaigns.csv", "device_pulses.csv", "scenario.resolved.yaml", "summary.json", "timeline.csv"]
    summary = json.loads((out / "summary.json").read_text())
    for key in ("schema_version", "scenario", "seed", "policy", "duration_s", "accuracy", "energy_j", "pulses",
                "campaigns", "decode_errors", "availability", "events", "versions", "wall_s"):
        assert key in summary
    assert set(summary["energy_j"]) >= {"total", "initial_programming", "probe_read", "verify_read", "partial_set",
                                        "reset", "offchip", "mvm", "controller", "static"}
    assert all(0 <= a["accuracy"] <= 1 for a in summary["accuracy"])
    assert summary["events"] > 0 and 0 < summary["availability"] < 1
    reloaded = load_scenario(out / "scenario.resolved.yaml")
    assert reloaded.sha256() == scenario.sha256() == summary["scenario"]["sha256"]
    with pytest.raises(FileExistsError):
        write_outputs(result, scenario, out)


def test_snapshot_at_a_campaign_boundary_resumes_identically(scenario):
    whole = build_chip(scenario)
    whole.run()
    first = build_chip(scenario)
    first.start()
    first.env.run(until=36 * 3600 * 10**9)  # between the day-1 and day-2 campaigns
    blob = first.snapshot()
    resumed = build_chip(scenario)
    resumed.restore(blob)
    resumed.env.run(until=scenario.duration)
    resumed.finish()
    a, b = collect(scenario, whole, 0.0).summary, collect(scenario, resumed, 0.0).summary
    # SimPy's own event count differs by the restarted processes' bookkeeping events; all else is equal.
    assert abs(a.pop("events") - b.pop("events")) <= 4
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_snapshot_refused_mid_campaign(scenario):
    chip = build_chip(scenario)
    chip.start()
    chip.env.run(until=86_400 * 10**9 + 1_500)  # inside the day-1 campaign
    with pytest.raises(RuntimeError, match="between correction campaigns"):
        chip.snapshot()
