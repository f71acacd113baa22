"""twin compare: common random numbers, outputs, parsing."""

import csv
import json
from pathlib import Path

import pytest
import torch

from twin.cli import main
from twin.study.compare import parse_policies, time_weighted_mean
from twin.scenario.schema import ScenarioError, load_scenario
from twin.scenario.build import build

SHORT = ["duration=3 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200",
         "network.sa_restarts=2"]


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("scenarios/default.yaml", SHORT)


def test_first_programming_is_bit_identical_across_policies(scenario):
    """Common random numbers: the same seed programs the same chip under every policy
    (hybrid excepted: it deploys a different, HWA-trained network)."""
    states = {}
    for spec in parse_policies("none,gdc,periodic,threshold,drift_aware,full_refresh", scenario):
        chip = build(scenario.with_overrides(list(spec.overrides))).chip
        chip.env.run(chip.env.process(chip._initial_programming()))
        states[spec.label] = (chip.devices.g_prog.clone(), chip.devices.nu.clone())
    reference = states.pop("none")
    for label, (g_prog, nu) in states.items():
        assert torch.equal(g_prog, reference[0]) and torch.equal(nu, reference[1]), label


def test_parse_policies(scenario):
    specs = parse_policies("none,periodic,periodic+gdc,threshold", scenario)
    assert [s.label for s in specs] == ["none", "periodic", "periodic+gdc", "threshold"]
    assert specs[1].overrides == ()  # the scenario's own periodic section, parameters and all
    assert specs[2].overrides == ("policy.gdc=true",)
    assert specs[3].overrides == ("policy.name=threshold",)
    with pytest.raises(ScenarioError, match="twice"):
        parse_policies("none,none", scenario)
    with pytest.raises(ScenarioError, match="suffix"):
        parse_policies("none+tea", scenario)


def test_time_weighted_mean_weighs_by_time():
    accuracy = [{"t_s": 1.0, "accuracy": 1.0}, {"t_s": 11.0, "accuracy": 0.0}]
    assert time_weighted_mean(accuracy) == pytest.approx((1.0 + 0.5 * 10) / 11)


def test_compare_cli_writes_one_row_per_policy(scenario, tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "scenarios/default.yaml", "--policies", "none,gdc,periodic", "--seeds", "2",
            "--workers", "1", "--out", str(out)]
    for item in SHORT:
        args += ["--set", item]
    assert main(args) == 0
    rows = list(csv.DictReader((out / "compare.csv").open()))
    assert [r["policy"] for r in rows] == ["none", "gdc", "periodic"]
    result = json.loads((out / "compare.json").read_text())
    periodic = result["policies"]["periodic"]
    assert periodic["seeds"] == [0, 1] and periodic["campaigns"]["mean"] == 2
    assert result["policies"]["none"]["pulses"]["max"] == 0 and result["policies"]["gdc"]["pulses"]["max"] == 0
    assert periodic["energy_maintenance_j"]["mean"] > result["policies"]["gdc"]["energy_maintenance_j"]["mean"]
    # same seeds, same chip, same evaluation (GDC on for both): the same accuracy before the first campaign
    assert result["policies"]["gdc"]["accuracy_start"] == periodic["accuracy_start"]
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    # a campaign reads every weight device once: the misread rate is misreads over those reads
    weight_devices = build(scenario).observers.scoring.weight_devices
    assert periodic["misread_rate_per_campaign"]["mean"] == pytest.approx(
        periodic["misreads"]["mean"] / (2 * weight_devices))
    assert 0 < periodic["misread_rate_per_campaign"]["mean"] < 1
    assert [r["misread_rate_per_campaign_mean"] for r in rows][:2] == ["0.0", "0.0"]


def test_compare_yaml_with_parameters(tmp_path, capsys):
    spec = tmp_path / "cmp.yaml"
    spec.write_text(f"scenario: {Path('scenarios/default.yaml').resolve()}\n"
                    "seeds: 1\nset: [" + ", ".join(f'"{s}"' for s in SHORT) + "]\n"
                    "policies:\n  - {name: periodic, label: every-12h, interval: 12 h}\n  - {name: none}\n")
    out = tmp_path / "out"
    assert main(["compare", str(spec), "--workers", "1", "--out", str(out)]) == 0
    result = json.loads((out / "compare.json").read_text())
    assert result["policies"]["every-12h"]["campaigns"]["mean"] == 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(spec.read_text().replace("interval: 12 h", "interval: soon"))
    assert main(["compare", str(bad), "--workers", "1", "--out", str(tmp_path / "x")]) == 2
    assert "policy.interval" in capsys.readouterr().err


def test_hybrid_deploys_an_hwa_trained_network(scenario, monkeypatch):
    import twin.scenario.build as simulate_module
    seen = {}

    def fake_prepare(network, *args, **kwargs):
        seen["hwa"] = network.hwa
        raise RuntimeError("stop here")

    monkeypatch.setattr(simulate_module, "prepare_network", fake_prepare)
    with pytest.raises(RuntimeError, match="stop here"):
        build(scenario.with_overrides(["policy.name=hybrid"]))
    assert seen["hwa"] is True


def test_compare_files_go_through_the_safe_loader(tmp_path):
    """Aliases (the billion-laughs bomb) and duplicate keys are refused in compare files too."""
    from twin.study.compare import load_compare_file
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("a: &a [x, x]\nb: &b [*a, *a]\nscenario: s.yaml\npolicies: [*b]\n")
    with pytest.raises(ScenarioError, match="alias|anchor"):
        load_compare_file(bomb)
    twice = tmp_path / "twice.yaml"
    twice.write_text("scenario: s.yaml\nscenario: t.yaml\npolicies: [{name: none}]\n")
    with pytest.raises(ScenarioError, match="duplicate"):
        load_compare_file(twice)


def test_an_unfinished_compare_folder_is_not_offered_a_resume(tmp_path, capsys):
    """compare cannot continue a stopped comparison: its message says so instead of naming a
    --resume it does not have."""
    from twin.run_folder import INCOMPLETE
    out = tmp_path / "cmp"
    out.mkdir()
    (out / INCOMPLETE).write_text("stopped\n")
    assert main(["compare", "scenarios/default.yaml", "--policies", "none", "--workers", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "cannot continue" in err and "--force" in err and "--resume" not in err


def test_a_comparison_survives_a_worker_that_dies(scenario, tmp_path, monkeypatch):
    """The first run to build its policy kills its Dask worker process (os._exit, as the OOM killer
    would); Dask gives the run to another worker and the comparison ends with every run done (with
    the process pool it replaced, the whole comparison failed with BrokenProcessPool)."""
    from twin.study.compare import run_many
    marker = tmp_path / "a-worker-died"
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the worker processes import the policy
    dying = scenario.with_overrides([f'policy={{class: "dying_policy:DiesOnceOnAWorker", marker: "{marker}"}}'])
    results = run_many([(dying, "dies once", 0), (scenario, "plain", 0)], workers=2)
    assert marker.exists()  # a worker did die
    assert [r["error"] for r in results] == [None, None]
    from twin.simulate import simulate
    here = simulate(dying).summary  # in this process the policy never kills anything
    rerun = dict(results[0]["summary"])
    assert {k: v for k, v in rerun.items() if k != "wall_s"} == {k: v for k, v in here.items() if k != "wall_s"}
