"""``simulation.device``: where device state, the chip's draws and accuracy evaluation run. CPU is
the default and the tested path; the cuda path is checked on a machine that has a GPU (skipped
elsewhere, with the reason) and refused, naming the field, where it cannot run."""

import copy

import numpy as np
import pytest
import torch

from tiny_chip import random_digits_checkpoint
from twin.cli import ENVIRONMENT_ERROR, INVALID_INPUT, main
from twin.report.writers import SCENARIO_FILE, write_scenario
from twin.scenario.build import DeviceUnavailable, build
from twin.scenario.schema import Scenario, ScenarioError
from twin.simulate import simulate

HAS_CUDA = torch.cuda.is_available()
NO_GPU = "no CUDA GPU here (the default install is torch's cpu build): the cuda path is measured on a GPU machine"
SHORT = ["duration=3 d", "policy.interval=1 d", "checkpoints.count=4", "checkpoints.start=1 h",
         "evaluation.test_images=120", "network.sa_iterations=200", "network.sa_restarts=0",
         "outputs.progress=false", "chip.rows=64", "chip.cols=64"]


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> Scenario:
    path = random_digits_checkpoint(tmp_path_factory.mktemp("device"))
    return Scenario(name="device").with_overrides(SHORT + [f"network.checkpoint={path}"])


def _without_wall(summary: dict) -> dict:
    summary = copy.deepcopy(summary)
    summary.pop("wall_s", None)
    return summary


def test_cpu_is_the_default_and_leaves_hash_and_results_alone(untrained):
    explicit = untrained.with_overrides(["simulation.device=cpu"])
    assert "device" not in untrained.resolved_dict()["simulation"]  # older files keep their hash
    assert explicit.sha256() == untrained.sha256()
    assert _without_wall(simulate(explicit).summary) == _without_wall(simulate(untrained).summary)


@pytest.mark.parametrize("override, field", [
    ("simulation.granularity=pulse", "simulation.granularity"),
    ("chip.pulse_generator.verify_reads=2", "chip.pulse_generator.verify_reads"),
    ("faults.stuck_low_fraction=0.01", "faults"),
])
def test_cuda_refuses_what_keeps_its_state_on_the_cpu(untrained, override, field):
    with pytest.raises(ScenarioError, match=field.replace(".", r"\.")):
        untrained.with_overrides(["simulation.device=cuda", override])


@pytest.mark.skipif(HAS_CUDA, reason="this machine has a GPU: the refusal is for machines without one")
def test_cuda_without_a_gpu_is_an_environment_error_naming_the_field(untrained, tmp_path, capsys):
    scenario = untrained.with_overrides(["simulation.device=cuda"])  # valid input ...
    with pytest.raises(DeviceUnavailable, match="simulation.device"):
        build(scenario)  # ... that this machine cannot run
    write_scenario(scenario, tmp_path)
    path = tmp_path / SCENARIO_FILE
    assert main(["validate", str(path)]) == 0
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == ENVIRONMENT_ERROR
    err = capsys.readouterr().err
    assert "simulation.device: cuda" in err and "Traceback" not in err
    assert main(["run", str(path), "--out", str(tmp_path / "bad"), "--quiet", "--set", "simulation.device=tpu"]) \
        == INVALID_INPUT


@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_cuda_gives_the_statistics_of_the_cpu(untrained):
    # Other generators, other bytes; the same physics: pulses and final accuracy over 8 programmings
    # each agree within 3 standard errors (Welch).
    figures = {}
    for device in ("cpu", "cuda"):
        runs = [simulate(untrained.with_overrides([f"simulation.device={device}", f"seed={s}"])).summary
                for s in range(8)]
        figures[device] = {"pulses": np.array([r["pulses"]["total"] for r in runs], dtype=float),
                           "accuracy": np.array([r["accuracy"][-1]["accuracy"] for r in runs])}
    for name in ("pulses", "accuracy"):
        a, b = figures["cpu"][name], figures["cuda"][name]
        se = np.hypot(a.std(ddof=1) / np.sqrt(a.size), b.std(ddof=1) / np.sqrt(b.size))
        assert abs(a.mean() - b.mean()) <= 3 * se + 1e-12, (name, a.mean(), b.mean(), se)
