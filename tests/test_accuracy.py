import pytest
import torch

from twin.toolchain.readout import PeripheryConfig, accuracy_over_time, analog_forward, gdc_scale
from twin.toolchain.deploy import deploy_levels, quantize_network, quantized_model
from twin.toolchain.mapping import TileGeometry
from twin.toolchain.networks import crossbar_layers
from twin.toolchain.quantize import AnnealSchedule
from twin.units import DAY, SECOND, YEAR

FAST_SA = AnnealSchedule(iterations=500, restarts=1)


@pytest.fixture(scope="module")
def levels_deployment(trained):
    quant = quantize_network(trained.model, schedule=FAST_SA)
    return quant, deploy_levels(trained.model, quant, TileGeometry())


def test_exact_levels_reproduce_the_quantized_network(trained, digits, levels_deployment):
    quant, deployment = levels_deployment
    reference = quantized_model(trained.model, quant)(digits.x_test)
    weights = deployment.encoding.weights(deployment.g_target)
    ours = analog_forward(trained.model, weights, digits.x_test)
    assert torch.allclose(ours, reference, atol=1e-4)


def test_periphery_perturbs_but_keeps_the_answer(trained, digits):
    weights = {name: layer.weight.detach() for name, layer in crossbar_layers(trained.model)}
    exact = analog_forward(trained.model, weights, digits.x_test)
    w_max = {name: w.abs().max().item() for name, w in weights.items()}
    noisy = analog_forward(trained.model, weights, digits.x_test, PeripheryConfig(enabled=True), w_max,
                           torch.Generator().manual_seed(0))
    assert not torch.allclose(exact, noisy)
    agreement = (exact.argmax(1) == noisy.argmax(1)).float().mean().item()
    assert agreement > 0.9


def test_gdc_recovers_accuracy_lost_to_drift(digits, levels_deployment):
    _, deployment = levels_deployment
    times = [SECOND, YEAR]
    plain = accuracy_over_time(deployment, digits.x_test, digits.y_test, times, repeats=4, seed=1)
    gdc = accuracy_over_time(deployment, digits.x_test, digits.y_test, times, repeats=4, seed=1, gdc=True)
    assert plain[1].accuracy < plain[0].accuracy - 0.1  # a year of drift hurts without compensation
    assert gdc[1].accuracy > plain[1].accuracy + 0.1
    assert len(plain[0].samples) == 4 and plain[0].accuracy_std > 0


def test_gdc_scale_is_one_over_the_reference_drift(levels_deployment):
    _, deployment = levels_deployment
    g_read = deployment.g_target * 0.5
    alpha = gdc_scale(deployment.mapping, g_read, deployment.g_target)
    assert torch.allclose(alpha, torch.full_like(alpha, 2.0))


def test_same_seed_same_accuracies(digits, levels_deployment):
    _, deployment = levels_deployment
    run = lambda seed: accuracy_over_time(deployment, digits.x_test, digits.y_test, [DAY], repeats=3, seed=seed)[0]
    assert run(5).samples == run(5).samples
    assert run(5).samples != run(6).samples


def test_reprogramming_mode_does_not_decay(digits, levels_deployment):
    _, deployment = levels_deployment
    points = accuracy_over_time(deployment, digits.x_test, digits.y_test, [SECOND, 10 * YEAR], repeats=4,
                                seed=2, mode="reprogram")
    assert abs(points[1].accuracy - points[0].accuracy) < 0.03
