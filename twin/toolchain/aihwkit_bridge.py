"""Everything that touches aihwkit's model classes, in one place.

Used for hardware-aware training and for the cross-check of the twin against aihwkit's own
inference path. Only ``TorchInferenceRPUConfig`` is used: aihwkit's C++ tiles fail with this
torch build ("weights must be a CPU tensor").
"""

from __future__ import annotations

import torch
from torch import nn

from aihwkit.inference.compensation.drift import GlobalDriftCompensation
from aihwkit.inference.noise.pcm import PCMLikeNoiseModel
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.simulator.configs import TorchInferenceRPUConfig
from aihwkit.simulator.parameters.enums import WeightModifierType, WeightNoiseType

from twin.toolchain.networks import crossbar_layers

__all__ = ["hwa_rpu_config", "crosscheck_rpu_config", "analog_to_digital", "aihwkit_accuracy"]


def hwa_rpu_config(hwa) -> TorchInferenceRPUConfig:
    """Noise injection for HWA training: additive weight noise + output noise (pdrop unsupported)."""
    config = TorchInferenceRPUConfig()
    config.mapping.weight_scaling_omega = 1.0  # full conductance range: GDC needs it (pcm-numbers.md)
    config.forward.out_noise = hwa.out_noise
    config.forward.w_noise_type = WeightNoiseType.NONE
    config.modifier.type = WeightModifierType.ADD_NORMAL
    config.modifier.std_dev = hwa.weight_noise
    config.noise_model = PCMLikeNoiseModel(g_max=25.0)
    config.drift_compensation = GlobalDriftCompensation()
    return config


def crosscheck_rpu_config(g_max_us: float = 25.0, gdc: bool = False) -> TorchInferenceRPUConfig:
    """aihwkit's inference path with a perfect forward: only PCM programming, drift and read noise
    (and, with ``gdc``, its global drift compensation)."""
    config = TorchInferenceRPUConfig()
    config.forward.is_perfect = True
    config.mapping.weight_scaling_omega = 1.0
    config.noise_model = PCMLikeNoiseModel(g_max=g_max_us)
    config.drift_compensation = GlobalDriftCompensation() if gdc else None
    return config


@torch.no_grad()
def analog_to_digital(analog: nn.Module, digital: nn.Module) -> None:
    """Copy the (digital-scale) weights and biases of an analog model into a digital twin of it."""
    analog_layers = [m for m in analog.modules() if hasattr(m, "get_weights") and hasattr(m, "analog_module")]
    digital_layers = crossbar_layers(digital)
    if len(analog_layers) != len(digital_layers):
        raise ValueError("analog and digital models have different numbers of crossbar layers")
    for a, (_, d) in zip(analog_layers, digital_layers):
        weight, bias = a.get_weights()
        d.weight.copy_(weight.reshape(d.weight.shape))
        if bias is not None:
            d.bias.copy_(bias)


@torch.no_grad()
def aihwkit_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, times_s: list[float],
                     repeats: int, seed: int, g_max_us: float = 25.0, gdc: bool = False) -> dict[float, list[float]]:
    """Accuracy per time through aihwkit's own program/drift path.

    aihwkit's programming and drift noise can only draw from torch's global generator: it is
    seeded (``seed + repeat``) inside ``fork_rng``, so the caller's global RNG state is untouched.
    """
    results: dict[float, list[float]] = {t: [] for t in times_s}
    with torch.random.fork_rng(devices=[]):
        analog = convert_to_analog(model, crosscheck_rpu_config(g_max_us, gdc))
        analog.eval()
        for repeat in range(repeats):
            torch.manual_seed(seed + repeat)
            analog.program_analog_weights()
            for t in times_s:
                analog.drift_analog_weights(t)
                results[t].append((analog(x).argmax(dim=1) == y).float().mean().item())
    return results
