"""Accuracy of a deployed network from read-back conductances.

Effective weights come from the devices' read-back conductances through the mapping's
encoding; the forward pass is plain torch, layer by layer, each crossbar layer as a matrix
product (conv layers through ``unfold``). Optional analog periphery effects follow aihwkit's
``IOParameters`` semantics (defaults from aihwkit 1.1.0): abs-max input scaling, DAC
quantisation, additive output noise, ADC quantisation and clipping.
Optional global drift compensation (GDC) scales each tile's output digitally by
sum(reference targets) / sum(reference read-back) of its reference cells.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from twin.toolchain.mapping import ChipMapping
from twin.device.pcm import DeviceArray

__all__ = ["PeripheryConfig", "Deployment", "analog_forward", "AccuracyPoint", "accuracy_over_time",
           "gdc_scale", "readback_weights", "accuracy_of", "read_used"]


@dataclass(frozen=True)
class PeripheryConfig:
    """Analog MVM periphery; defaults are aihwkit 1.1.0's ``IOParameters``."""

    enabled: bool = False
    in_bits: int = 7  # inp_res = 1/(2^7 - 2) of the range [-inp_bound, inp_bound]
    out_bits: int = 9  # out_res = 1/(2^9 - 2) of the range [-out_bound, out_bound]
    inp_bound: float = 1.0
    out_bound: float = 12.0
    out_noise: float = 0.06  # std of additive output noise, in units of a full-scale weight x input

    def __post_init__(self) -> None:
        for name in ("in_bits", "out_bits"):
            if getattr(self, name) < 2:
                raise ValueError(f'"{name}" must be >= 2.')
        for name in ("inp_bound", "out_bound"):
            if not getattr(self, name) > 0:
                raise ValueError(f'"{name}" must be > 0.')
        if self.out_noise < 0:
            raise ValueError('"out_noise" must be >= 0.')


def _quantize(values: torch.Tensor, bits: int, bound: float) -> torch.Tensor:
    lsb = 2.0 * bound / (2 ** bits - 2)
    return (torch.round(values / lsb) * lsb).clamp(-bound, bound)


def _mvm(x: torch.Tensor, weight: torch.Tensor, w_max: float, periphery: PeripheryConfig,
         generator: torch.Generator | None) -> torch.Tensor:
    """x (N, fan_in) @ weight (out, fan_in)^T through the periphery."""
    if not periphery.enabled:
        return x @ weight.T
    scale = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-12)  # noise management: abs max
    x_n = _quantize(x / scale * periphery.inp_bound, periphery.in_bits, periphery.inp_bound)
    y = x_n @ (weight / w_max).T
    if periphery.out_noise > 0:
        y = y + periphery.out_noise * torch.randn(y.shape, generator=generator, dtype=y.dtype)
    y = _quantize(y, periphery.out_bits, periphery.out_bound)
    return y * (scale / periphery.inp_bound) * w_max


def analog_forward(model: nn.Sequential, weights: dict[str, torch.Tensor], x: torch.Tensor,
                   periphery: PeripheryConfig = PeripheryConfig(), w_max: dict[str, float] | None = None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Run ``model`` with its crossbar weights replaced by ``weights`` (biases stay digital)."""
    for name, module in model.named_children():
        if isinstance(module, nn.Conv2d) and not periphery.enabled:
            # Exact digital MVM: the conv itself is the same arithmetic as the unfolded matrix product.
            x = F.conv2d(x, weights[name], module.bias, module.stride, module.padding)
        elif isinstance(module, nn.Conv2d):
            w = weights[name]
            n, _, h, wd = x.shape
            cols = F.unfold(x, module.kernel_size, padding=module.padding, stride=module.stride)
            out = _mvm(cols.transpose(1, 2).reshape(-1, cols.shape[1]), w.reshape(w.shape[0], -1),
                       (w_max or {}).get(name, 1.0), periphery, generator)
            oh = (h + 2 * module.padding[0] - module.kernel_size[0]) // module.stride[0] + 1
            ow = (wd + 2 * module.padding[1] - module.kernel_size[1]) // module.stride[1] + 1
            x = out.reshape(n, oh * ow, -1).transpose(1, 2).reshape(n, -1, oh, ow)
            if module.bias is not None:
                x = x + module.bias.view(1, -1, 1, 1)
        elif isinstance(module, nn.Linear):
            x = _mvm(x, weights[name], (w_max or {}).get(name, 1.0), periphery, generator)
            if module.bias is not None:
                x = x + module.bias
        else:
            x = module(x)
    return x


class Encoding(Protocol):
    mapping: ChipMapping

    def weights(self, conductance: torch.Tensor) -> dict[str, torch.Tensor]: ...


@dataclass
class Deployment:
    """A network on the chip: its digital model (biases, layer order), mapping and encoding."""

    model: nn.Sequential
    encoding: Encoding
    devices: DeviceArray
    g_target: torch.Tensor  # target conductance of every device (uS)
    w_max: dict[str, float]  # full-scale weight of each layer (the periphery's normalisation)

    @property
    def mapping(self) -> ChipMapping:
        return self.encoding.mapping

    def used_devices(self) -> torch.Tensor:
        """Weight and reference devices: the only ones worth reading for accuracy."""
        mask = self.mapping.weight_mask() | self.mapping.reference_mask()
        return torch.from_numpy(np.flatnonzero(mask))


def gdc_scale(mapping: ChipMapping, g_read: torch.Tensor, g_target: torch.Tensor) -> torch.Tensor:
    """Per-device digital GDC factor: its tile's sum(reference target) / sum(reference read)."""
    ref = torch.from_numpy(np.concatenate([mapping.reference_pos, mapping.reference_neg], axis=1))
    alpha = g_target[ref].sum(dim=1) / g_read[ref].sum(dim=1).clamp(min=1e-12)
    return alpha.repeat_interleave(mapping.geometry.devices_per_tile)


@dataclass(frozen=True)
class AccuracyPoint:
    t_ns: int
    accuracy: float
    accuracy_std: float
    samples: tuple[float, ...]


Mode = Literal["drift", "reprogram"]


def readback_weights(deployment: Deployment, g_read: torch.Tensor, gdc: bool) -> dict[str, torch.Tensor]:
    """Effective weights from read-back conductances (all devices), optionally with GDC."""
    if gdc:
        g_read = g_read * gdc_scale(deployment.mapping, g_read, deployment.g_target)
    return deployment.encoding.weights(g_read)


@torch.no_grad()
def accuracy_of(deployment: Deployment, weights: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor,
                periphery: PeripheryConfig, generator: torch.Generator) -> float:
    logits = analog_forward(deployment.model, weights, x, periphery, deployment.w_max, generator)
    return (logits.argmax(dim=1) == y).float().mean().item()


@torch.no_grad()
def read_used(deployment: Deployment, now_ns: int, generator: torch.Generator,
              used: torch.Tensor | None = None, devices: DeviceArray | None = None,
              commit: bool = False) -> torch.Tensor:
    """One read of every weight and reference device at ``now_ns``; other devices read as 0.
    ``devices``: the device state to read (default: the deployment's own). Not ``commit``ted by
    default: a measurement by the experimenter leaves the devices' read-noise history alone."""
    used = deployment.used_devices() if used is None else used
    devices = deployment.devices if devices is None else devices
    g = torch.zeros(devices.size, dtype=torch.float32)
    g[used] = devices.read(now_ns, generator, index=used, commit=commit)
    return g


@torch.no_grad()
def accuracy_over_time(deployment: Deployment, x: torch.Tensor, y: torch.Tensor, times_ns: list[int],
                       repeats: int = 10, seed: int = 0, gdc: bool = False, mode: Mode = "drift",
                       periphery: PeripheryConfig = PeripheryConfig()) -> list[AccuracyPoint]:
    """Mean and std of accuracy over ``repeats`` independent programmings at each time.

    ``drift``: program at t = 0, read at each time. ``reprogram``: ideal re-programming to the
    true levels right before each read (an upper bound for any correction scheme).
    """
    if repeats < 1:
        raise ValueError('"repeats" must be >= 1.')
    devices, used = deployment.devices, deployment.used_devices()
    samples: list[list[float]] = [[] for _ in times_ns]
    for repeat in range(repeats):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + repeat)
        devices.program(0, generator, index=used, g_target=deployment.g_target[used])
        for i, t_ns in enumerate(times_ns):
            if mode == "reprogram":
                devices.program(t_ns, generator, index=used, g_target=deployment.g_target[used])
            weights = readback_weights(deployment, read_used(deployment, t_ns, generator, used), gdc)
            samples[i].append(accuracy_of(deployment, weights, x, y, periphery, generator))
    return [AccuracyPoint(t, float(np.mean(s)), float(np.std(s, ddof=1)) if len(s) > 1 else 0.0, tuple(s))
            for t, s in zip(times_ns, samples)]
