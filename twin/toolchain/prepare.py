"""The offline toolchain driven by a scenario: data -> trained network -> quantized levels."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from twin.toolchain.data import Dataset, load_dataset
from twin.toolchain.deploy import LayerQuantization, quantize_network
from twin.toolchain.networks import build_network
from twin.toolchain.quantize import AnnealSchedule
from twin.toolchain.cache import model_sha256
from twin.toolchain.training import HWAConfig, default_training, evaluate_digital, train

__all__ = ["PreparedNetwork", "prepare_network", "trained_network_file"]


@dataclass
class PreparedNetwork:
    data: Dataset
    model: nn.Sequential
    quant: dict[str, LayerQuantization] | None  # None: not quantized (analog weights)
    digital_accuracy: float
    x_test: torch.Tensor
    y_test: torch.Tensor
    model_sha256: str  # of the float network's state_dict, trained or loaded (cache.model_sha256)
    cache_file: Path | None = None  # the cached trained weights; None for a network loaded from a checkpoint


def _train(network, data: Dataset, seed: int):
    """The scenario's network trained (or loaded from the cache)."""
    config = default_training(network.architecture, seed, hwa=HWAConfig() if network.hwa else None)
    if network.epochs is not None:
        config = replace(config, epochs=network.epochs)
    return train(data, config)


def trained_network_file(network, seed: int) -> Path | None:
    """The cache file of the scenario's trained network (trained now if need be), without the
    quantization; None for a network loaded from a checkpoint. What the run engine ships to workers."""
    if network.checkpoint is not None:
        return None
    return _train(network, load_dataset(network.dataset, network.data_path, seed=seed), seed).cache_file


def prepare_network(network, levels: int, seed: int, test_images: int | None = None,
                    quantized: bool = True) -> PreparedNetwork:
    """Train (cached) or load the scenario's network and, if ``quantized``, quantize it to ``levels``."""
    data = load_dataset(network.dataset, network.data_path, seed=seed)
    cache_file = None
    if network.checkpoint is not None:
        model = build_network(network.architecture, seed=seed)
        model.load_state_dict(torch.load(network.checkpoint, weights_only=True))
        model.eval()
    else:
        trained = _train(network, data, seed)
        model, cache_file = trained.model, trained.cache_file
    digest = model_sha256(model)  # before quantization, of exactly the weights trained or loaded
    schedule = AnnealSchedule(iterations=network.sa_iterations, restarts=network.sa_restarts)
    quant = quantize_network(model, levels=levels, schedule=schedule, seed=seed) if quantized else None
    x, y = data.x_test, data.y_test
    if test_images is not None:
        x, y = x[:test_images], y[:test_images]
    return PreparedNetwork(data, model, quant, evaluate_digital(model, x, y), x, y, digest, cache_file)
