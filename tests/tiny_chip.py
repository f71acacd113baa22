"""A tiny chip for exact-timeline tests: 2 tiles of 4 x 4, K = 2, one 6 -> 4 linear layer."""

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from firmware_model.controller import Controller
from firmware_model.policies import Periodic
from twin.chip.ledger import CostModel
from twin.chip.parameters import EnergyCosts, FaultParameters, TimingCosts
from twin.device.parameters import PCMParameters, PulseParameters
from twin.scenario.build import Assembly, assemble, firmware_config
from twin.toolchain.deploy import LayerQuantization, deploy_levels
from twin.toolchain.quantize import QuantSteps
from twin.toolchain.readout import PeripheryConfig
from twin.toolchain.specs import TileGeometry
from twin.traffic.setup import TrafficSetup

COSTS = CostModel(TimingCosts(read_cycle=100, partial_set_pulse=150, reset_pulse=40, controller_step=1000, mvm=1,
                              offchip_per_byte=0),
                  EnergyCosts(read_per_device=2e-12, partial_set_pulse=5e-12, reset_pulse=10e-12, mvm=0.0,
                              offchip_per_byte=0.0, controller_step=1e-12, static_power=1e-3), channels=4)
EXACT_PULSES = PulseParameters(partial_set_step_mean_us=12.5, partial_set_step_std_us=0.0, reset_g_mean_us=0.0,
                               reset_g_std_us=0.0, verify_tolerance_abs_us=0.1, verify_tolerance_rel=0.0,
                               max_iterations=10)
NOISELESS = PCMParameters(prog_noise_scale=0.0, read_noise_scale=0.0, drift_scale=0.0)


def tiny_levels() -> tuple[np.ndarray, np.ndarray]:
    """Weights of fc (4 x 6): k+ = 2 on inputs 0 and 3 (row 0 of each tile), else 1; k- = 0."""
    k_plus = np.where(np.arange(6)[None, :] % 3 == 0, 2, 1).repeat(4, axis=0).astype(np.int16)
    return k_plus, np.zeros_like(k_plus)


def tiny_chip(pcm: PCMParameters = NOISELESS, pulses: PulseParameters = EXACT_PULSES, decoder: str = "nearest",
              interval_ns: int = 1_000_000, duration_ns: int = 2_500_000, checkpoints: tuple[int, ...] = (2_400_000,),
              granularity: str = "campaign", seed: int = 0, geometry: TileGeometry = TileGeometry(4, 4, 2),
              levels: int = 2, quant: dict | None = None, model: nn.Sequential | None = None,
              policy=None, gdc: bool = False, max_retries: int = 1, tiles: int | None = None,
              trace: bool = False, traffic: TrafficSetup | None = None,
              faults: FaultParameters | None = None) -> Assembly:
    if model is None:
        model = nn.Sequential(OrderedDict(fc=nn.Linear(6, 4, bias=False)))
    if quant is None:
        k_plus, k_minus = tiny_levels()
        quant = {"fc": LayerQuantization(QuantSteps(0.5, 0.5, levels), k_plus, k_minus, report=None)}
    deployment = deploy_levels(model, quant, geometry, pcm)
    policy = Periodic(interval_ns) if policy is None else policy
    replicas = 1 if traffic is None else traffic.workload.replicas
    controller = Controller(firmware_config(deployment, replicas), policy, decoder, 0.25, max_retries)
    x = torch.randn(8, 6, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(8, dtype=torch.int64)
    return assemble(deployment, controller, COSTS, pulses, seed, duration_ns, list(checkpoints), x, y, tiles=tiles,
                    gdc=gdc, granularity=granularity, accuracy_samples=1, periphery=PeripheryConfig(), trace=trace,
                    traffic=traffic, faults=faults)


def random_digits_checkpoint(folder: str | Path) -> Path:
    """Random weights in the digits_cnn layout (twin/toolchain/networks.py), saved as a checkpoint:
    whole runs without training."""
    with torch.random.fork_rng(devices=[]):  # initialisers draw from the global generator; leave it as it was
        torch.manual_seed(0)
        model = nn.Sequential()
        model.add_module("conv1", nn.Conv2d(1, 8, 3, padding=1))
        model.add_module("conv2", nn.Conv2d(8, 12, 3, padding=1))
        model.add_module("fc", nn.Linear(48, 10))
    path = Path(folder) / "digits_cnn_random.pt"
    torch.save(model.state_dict(), path)
    return path


def runs_with_scrambled_truth(scenario) -> tuple[dict, dict]:
    """The summaries of two runs of ``scenario``: as built, and with the truth (the host's copy of
    the levels and the scorer's) replaced by random levels right after deployment. The firmware
    never sees the truth, so everything but the scores must come out the same."""
    from twin.report.records import collect
    from twin.scenario.build import build
    honest, cheat_proof = build(scenario), build(scenario)
    chip = cheat_proof.chip

    def corrupt():
        while chip.deployed_at_ns == 0:  # after deployment: programming has read its targets
            yield chip.env.timeout(1000)
        scrambled = torch.randint(0, 9, chip.offchip._levels.shape, generator=torch.Generator().manual_seed(3))
        chip.offchip._levels.copy_(scrambled.to(torch.int16))  # the host's copy ...
        cheat_proof.observers.scoring._original[:] = scrambled.numpy()  # ... and the scorer's

    chip.env.process(corrupt())
    honest.run()
    cheat_proof.run()
    return collect(honest, 0.0).summary, collect(cheat_proof, 0.0).summary
