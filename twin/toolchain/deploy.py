"""The offline toolchain's last steps: quantize a trained network and place it on the chip."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from twin.toolchain.readout import Deployment
from twin.toolchain.mapping import ChipMapping, LevelEncoding, SinglePairEncoding, TileGeometry
from twin.toolchain.networks import crossbar_layers
from twin.device.pcm import DeviceArray, PCMParameters, PCMStatistics
from twin.toolchain.quantize import (DEFAULT_LEVELS, AnnealSchedule, QuantReport, QuantSteps, compare_quantizers,
                                     dequantize, quantize)

__all__ = ["LayerQuantization", "quantize_network", "quantized_model", "deploy_levels", "deploy_analog", "analog_codes"]


@dataclass(frozen=True, eq=False)
class LayerQuantization:
    steps: QuantSteps
    k_plus: np.ndarray
    k_minus: np.ndarray
    report: QuantReport


def crossbar_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: layer.weight.detach().cpu().numpy().astype(np.float64) for name, layer in crossbar_layers(model)}


def quantize_network(model: nn.Module, levels: int = DEFAULT_LEVELS, schedule: AnnealSchedule = AnnealSchedule(),
                     seed: int = 0) -> dict[str, LayerQuantization]:
    """SA-tuned steps per layer (each layer has its own tiles and output scale), then levels."""
    out = {}
    for i, (name, w) in enumerate(crossbar_weights(model).items()):
        report = compare_quantizers(w, levels, schedule, seed + i)
        k_plus, k_minus = quantize(w, report.sa_steps)
        out[name] = LayerQuantization(report.sa_steps, k_plus, k_minus, report)
    return out


def quantized_model(model: nn.Sequential, quant: dict[str, LayerQuantization]) -> nn.Sequential:
    """A digital copy whose crossbar weights are exactly the quantized levels."""
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for name, layer in crossbar_layers(copy_):
            q = quant[name]
            layer.weight.copy_(torch.from_numpy(dequantize(q.k_plus, q.k_minus, q.steps)).float())
    return copy_.eval()


def deploy_levels(model: nn.Sequential, quant: dict[str, LayerQuantization], geometry: TileGeometry,
                  pcm: PCMParameters = PCMParameters()) -> Deployment:
    """The paper's encoding: every device at a level k * g_max / K."""
    levels = next(iter(quant.values())).steps.levels
    mapping = ChipMapping({name: q.k_plus.shape for name, q in quant.items()}, geometry, levels)
    device_levels = mapping.device_levels({name: (q.k_plus, q.k_minus) for name, q in quant.items()})
    devices = DeviceArray(levels, PCMStatistics(pcm), torch.from_numpy(device_levels))
    steps = {name: (q.steps.step_pos, q.steps.step_neg) for name, q in quant.items()}
    encoding = LevelEncoding(mapping, steps, pcm.g_max_us)
    w_max = {name: levels * max(sp, sn) for name, (sp, sn) in steps.items()}
    return Deployment(model, encoding, devices, devices.target_conductance(), w_max)


ANALOG_CODE_LIMIT = int(np.iinfo(np.int16).max)
"""Largest target code of a device (codes are int16, like levels)."""


def analog_codes(levels: int) -> int:
    """Target codes over [0, g_max] with ``encoding: analog``: the largest multiple of K that fits
    int16 (K = 8: 32,760 codes, 0.76 nS apart at 25 uS), so the reference cells' levels k of K
    sit exactly on codes k * codes / K. The host's target register: 340x finer than the smallest
    programming spread (0.26 uS), continuous for every purpose (docs/analog.md)."""
    if not 1 <= levels <= ANALOG_CODE_LIMIT:
        raise ValueError(f'"levels" must lie in 1..{ANALOG_CODE_LIMIT}, got {levels}')
    return levels * (ANALOG_CODE_LIMIT // levels)


def deploy_analog(model: nn.Sequential, geometry: TileGeometry, levels: int = DEFAULT_LEVELS,
                  pcm: PCMParameters = PCMParameters()) -> Deployment:
    """aihwkit's ``SinglePairConductanceConverter`` encoding: continuous weights on one pair each.

    G+ = clamp(w * g_max / max|w|, 0, g_max) and G- = clamp(-w * ..., 0, g_max) per layer (full
    conductance range); the device of a pair that carries nothing targets 0 and is still
    programmed (a RESET, with its noise), as aihwkit programs it. Targets are held as codes of
    :func:`analog_codes`; the reference cells sit at levels 1..K of ``levels`` as with levels."""
    weights = crossbar_weights(model)
    mapping = ChipMapping({name: w.shape for name, w in weights.items()}, geometry, levels)
    encoding, g_continuous = SinglePairEncoding.from_weights(mapping, weights, pcm.g_max_us)
    codes = analog_codes(levels)
    target_code = torch.round(g_continuous * (codes / pcm.g_max_us)).to(torch.int16)
    devices = DeviceArray(codes, PCMStatistics(pcm), target_code)
    w_max = {name: pcm.g_max_us / scale for name, scale in encoding.scale.items()}
    return Deployment(model, encoding, devices, devices.target_conductance(), w_max)


@torch.no_grad()
def layer_sensitivity(model: nn.Sequential, x: torch.Tensor, y: torch.Tensor, relative_noise: float = 0.1,
                      draws: int = 3, seed: int = 0) -> dict[str, float]:
    """Accuracy lost when one layer's weights get Gaussian noise of ``relative_noise * max|w|``,
    the others exact: which layers hurt accuracy most when they drift (an offline measurement the
    firmware may store as configuration)."""
    generator = torch.Generator().manual_seed(seed)
    base = (model(x).argmax(1) == y).float().mean().item()
    losses = {}
    for name, layer in crossbar_layers(model):
        original = layer.weight.detach().clone()
        drops = []
        for _ in range(draws):
            noise = torch.randn(original.shape, generator=generator) * relative_noise * original.abs().max()
            layer.weight.copy_(original + noise)
            drops.append(base - (model(x).argmax(1) == y).float().mean().item())
        layer.weight.copy_(original)
        losses[name] = float(np.mean(drops))
    return losses
