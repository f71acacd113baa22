"""``chip.encoding: analog``: continuous weights on one differential pair each, in the chip twin."""

from pathlib import Path

import numpy as np
import pytest
import torch

from twin.scenario.build import build
from twin.scenario.schema import ScenarioError, load_scenario
from twin.toolchain.deploy import analog_codes, deploy_analog
from twin.toolchain.mapping import TileGeometry

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "analog_hwa_gdc.yaml"
QUICK = ["network.seed=0", "evaluation.accuracy_samples=1", "outputs.progress=false", "evaluation.test_images=120"]


def test_analog_codes_hold_the_reference_levels_exactly():
    for levels in (1, 2, 4, 8, 16, 100):
        codes = analog_codes(levels)
        assert codes % levels == 0 and codes <= np.iinfo(np.int16).max
        assert codes > np.iinfo(np.int16).max - levels  # as fine as int16 allows
    with pytest.raises(ValueError, match="levels"):
        analog_codes(0)


def test_analog_deployment_maps_weights_as_aihwkit(trained):
    deployment = deploy_analog(trained.model, TileGeometry())
    mapping, devices = deployment.mapping, deployment.devices
    assert devices.levels == analog_codes(mapping.levels)
    step = deployment.devices.g_max_us / devices.levels
    for name, layer in mapping.layers.items():
        w = dict(trained.model.named_children())[name].weight.detach().reshape(layer.matrix_shape)
        g_pos = deployment.g_target[torch.from_numpy(layer.device_pos)]
        g_neg = deployment.g_target[torch.from_numpy(layer.device_neg)]
        scale = 25.0 / w.abs().max()
        # the positive part on G+, the negative on G-, the other device at 0; full range: max |w| -> g_max
        assert torch.allclose(g_pos, (w * scale).clamp(min=0), atol=step / 2 + 1e-6)
        assert torch.allclose(g_neg, (-w * scale).clamp(min=0), atol=step / 2 + 1e-6)
        assert bool(((g_pos == 0) | (g_neg == 0)).all())
        assert float(torch.maximum(g_pos, g_neg).max()) == pytest.approx(25.0, abs=step)
    weights = torch.from_numpy(np.flatnonzero(mapping.weight_mask()))
    on = deployment.g_target[weights][deployment.g_target[weights] > 0] / (25.0 / 8)
    assert ((on - on.round()).abs() > 0.01).float().mean() > 0.9  # continuous, not on the K-level grid
    refs = torch.from_numpy(mapping.reference_pos.ravel())
    assert torch.allclose(deployment.g_target[refs],
                          torch.from_numpy(mapping.reference_level).float().repeat(mapping.n_tiles) * 25.0 / 8)


def test_analog_chip_programs_every_device_of_a_pair_and_serves_gdc():
    scenario = load_scenario(SCENARIO, QUICK + ["checkpoints=[1 h, 30 d]"])
    run = build(scenario)
    run.run()
    wear = run.observers.wear
    mapping_devices = run.mapped_devices
    pulses = wear.initial[:mapping_devices]
    # both devices of every weight's pair were programmed at deployment (the zero one by a RESET)
    weights = np.flatnonzero(run.observers.scoring._is_weight)
    assert (pulses[weights] >= 1).all()
    rows = run.observers.accuracy.rows
    assert all(r.accuracy > 0.85 for r in rows)
    assert run.observers.scoring.misreads() is None  # analog targets have no levels to misread


@pytest.mark.parametrize("policy", ["periodic", "threshold", "drift_aware", "hybrid"])
def test_self_correcting_policies_need_levels(policy):
    with pytest.raises(ScenarioError) as info:
        load_scenario(SCENARIO, [f"policy={{name: {policy}}}"])
    errors = dict(info.value.errors)
    assert "policy.name" in errors and "chip.encoding: analog" in errors["policy.name"]


def test_user_policy_classes_need_levels():
    with pytest.raises(ScenarioError) as info:
        load_scenario(SCENARIO, ['policy={class: "firmware_model.policies:Periodic"}'])
    assert "policy.name" in dict(info.value.errors)


def test_full_refresh_rounds_codes_and_refuses_the_level_decoder():
    policy = load_scenario(SCENARIO, ["policy={name: full_refresh}"]).policy
    assert policy.decoder == "nearest" and policy.bytes_per_weight == 2  # a 16-bit code per weight
    assert load_scenario(SCENARIO, ["policy={name: full_refresh, bytes_per_weight: 4}"]).policy.bytes_per_weight == 4
    with pytest.raises(ScenarioError) as info:
        load_scenario(SCENARIO, ["policy={name: full_refresh, decoder: drift_aware}"])
    assert "policy.decoder" in dict(info.value.errors)


def test_full_refresh_of_analog_weights_restores_accuracy_and_pays_the_transfer():
    """Without GDC, a month of drift costs accuracy; an hour after a refresh from the off-chip copy
    it is back (same seed, same programming, same evaluation stream), and the transfer is charged."""
    common = QUICK + ["duration=40 d", "checkpoints=[721 h]", "network.hwa=false"]
    scenario = load_scenario(SCENARIO, common + ["policy={name: none}"])
    alone = build(scenario)
    alone.run()
    refreshed = build(load_scenario(SCENARIO, common + ["policy={name: full_refresh, interval: 30 d, gdc: false, "
                                                        "bytes_per_weight: 2}"]))
    refreshed.run()
    energy = refreshed.observers.ledger.energy()
    assert energy["offchip"] > 0 and alone.observers.ledger.energy()["offchip"] == 0
    assert refreshed.chip.campaigns == 1
    assert refreshed.observers.scoring.displaced_now() == 0  # the copy holds the original codes
    assert refreshed.observers.accuracy.rows[-1].accuracy > alone.observers.accuracy.rows[-1].accuracy + 0.05


@pytest.mark.parametrize("encoding", ["levels", "analog"])
def test_hwa_training_works_with_both_encodings(encoding):
    scenario = load_scenario(SCENARIO, QUICK + [f"chip.encoding={encoding}", "checkpoints=[1 d]", "duration=1 d"])
    assert scenario.network.hwa
    run = build(scenario)
    run.run()
    assert run.observers.accuracy.rows[0].accuracy > (0.85 if encoding == "analog" else 0.6)
    assert run.chip.devices.levels == (8 if encoding == "levels" else analog_codes(8))
