"""A tiny chip for exact-timeline tests: 2 tiles of 4 x 4, K = 2, one 6 -> 4 linear layer."""

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from firmware_model.controller import Controller
from firmware_model.policies import Periodic
from twin.chip.chip import Chip, CountingEnvironment, firmware_config
from twin.toolchain.deploy import LayerQuantization, deploy_levels
from twin.chip.ledger import CostModel
from twin.toolchain.mapping import TileGeometry
from twin.device.pcm import PCMParameters
from twin.device.program_verify import PulseParameters
from twin.toolchain.quantize import QuantSteps

COSTS = CostModel(read_cycle_ns=100, partial_set_ns=150, reset_ns=40, controller_step_ns=1000, mvm_ns=0,
                  offchip_per_byte_ns=0, read_per_device_j=2e-12, partial_set_j=5e-12, reset_j=10e-12, mvm_j=0.0,
                  offchip_per_byte_j=0.0, controller_step_j=1e-12, static_power_w=1e-3, channels=4)
EXACT_PULSES = PulseParameters(partial_set_step_mean_us=12.5, partial_set_step_std_us=0.0, reset_g_mean_us=0.0,
                               reset_g_std_us=0.0, tolerance_abs_us=0.1, tolerance_rel=0.0, max_iterations=10)
NOISELESS = PCMParameters(prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)


def tiny_levels() -> tuple[np.ndarray, np.ndarray]:
    """Weights of fc (4 x 6): k+ = 2 on inputs 0 and 3 (row 0 of each tile), else 1; k- = 0."""
    k_plus = np.where(np.arange(6)[None, :] % 3 == 0, 2, 1).repeat(4, axis=0).astype(np.int16)
    return k_plus, np.zeros_like(k_plus)


def tiny_chip(pcm: PCMParameters = NOISELESS, pulses: PulseParameters = EXACT_PULSES, decoder: str = "nearest",
              interval_ns: int = 1_000_000, duration_ns: int = 2_500_000, checkpoints: tuple[int, ...] = (2_400_000,),
              granularity: str = "campaign", seed: int = 0, geometry: TileGeometry = TileGeometry(4, 4, 2),
              levels: int = 2, quant: dict | None = None, model: nn.Sequential | None = None,
              policy=None, gdc: bool = False) -> Chip:
    torch.manual_seed(0)
    if model is None:
        model = nn.Sequential(OrderedDict(fc=nn.Linear(6, 4, bias=False)))
    if quant is None:
        k_plus, k_minus = tiny_levels()
        quant = {"fc": LayerQuantization(QuantSteps(0.5, 0.5, levels), k_plus, k_minus, report=None)}
    deployment = deploy_levels(model, quant, geometry, pcm)
    policy = Periodic(interval_ns) if policy is None else policy
    controller = Controller(firmware_config(deployment), policy, decoder, 0.25, 1)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.int64)
    return Chip(CountingEnvironment(), deployment, controller, COSTS, pulses, seed, x, y, list(checkpoints),
                duration_ns, gdc=gdc, granularity=granularity)
