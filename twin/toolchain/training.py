"""Training with the paper's weight constraints, hardware-aware (HWA) fine-tuning, and a cache.

Two constraints make a network fit the self-correcting chip (paper.md):
- a small-weight penalty ``lambda * sum((eps - |w|) * (|w| < eps))`` pushes weights away from
  zero, where they could not be told apart from device noise;
- a large-weight bound clamps ``|w| <= weight_bound`` after every step, so the top level
  ``K * step`` of the quantizer covers the whole range.

HWA fine-tuning uses aihwkit's ``TorchInferenceRPUConfig`` (its C++ tiles fail with this torch)
with additive Gaussian weight noise and output noise injected during training.
Trained weights are cached by a content hash of (dataset, configuration, code version), so a
second run does not retrain.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from twin.toolchain.data import Dataset
from twin.toolchain.networks import build_network, crossbar_layers

__all__ = ["TrainingConfig", "HWAConfig", "default_training", "TrainedModel", "train", "evaluate_digital",
           "default_cache_dir"]

TRAINING_CODE_VERSION = "2"  # bump when the training procedure changes: invalidates the cache


@dataclass(frozen=True)
class HWAConfig:
    """Noise injected during hardware-aware fine-tuning (the paper's aihwkit baseline)."""

    epochs: int = 15
    lr: float = 0.02
    weight_noise: float = 0.02  # additive Gaussian weight noise, relative to max |w| (paper: 0.02)
    out_noise: float = 0.06  # output noise of the analog MVM (aihwkit IOParameters default)


@dataclass(frozen=True)
class TrainingConfig:
    network: str = "digits_cnn"
    epochs: int = 60
    batch_size: int = 32
    lr: float = 0.05
    momentum: float = 0.9
    lr_step_epochs: int = 20  # StepLR period, as the paper's StepLR(10, 0.3) scaled to digits
    lr_gamma: float = 0.3
    small_weight_eps: float = 0.1
    small_weight_penalty: float = 1e-3
    weight_bound: float = 1.0
    seed: int = 0
    hwa: HWAConfig | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f'"{name}" must be >= 1.')
        for name in ("lr", "weight_bound"):
            if not getattr(self, name) > 0:
                raise ValueError(f'"{name}" must be > 0.')
        if self.small_weight_eps < 0 or self.small_weight_penalty < 0:
            raise ValueError('"small_weight_eps" and "small_weight_penalty" must be >= 0.')
        if self.small_weight_eps >= self.weight_bound:
            raise ValueError('"small_weight_eps" must be smaller than "weight_bound".')


def default_training(network: str, seed: int = 0, hwa: HWAConfig | None = None) -> TrainingConfig:
    """Per-network defaults: the paper's recipe for its MNIST CNN, a longer one for 8x8 digits."""
    if network == "paper_mnist_cnn":  # batch 64, SGD lr 0.1, StepLR(10, 0.3), 20 epochs (paper.md)
        return TrainingConfig(network=network, epochs=20, batch_size=64, lr=0.1, momentum=0.0,
                              lr_step_epochs=10, lr_gamma=0.3, seed=seed, hwa=hwa)
    return TrainingConfig(network=network, seed=seed, hwa=hwa)


@dataclass
class TrainedModel:
    model: nn.Sequential
    config: TrainingConfig
    test_accuracy: float
    cache_key: str
    from_cache: bool


def default_cache_dir() -> Path:
    return Path(os.environ.get("PCM_TWIN_CACHE", Path.cwd() / ".cache")) / "models"


def small_weight_penalty(model: nn.Module, eps: float) -> torch.Tensor:
    """sum((eps - |w|) * (|w| < eps)) over crossbar weights (paper's constraint)."""
    total = torch.zeros(())
    for _, layer in crossbar_layers(model):
        magnitude = layer.weight.abs()
        total = total + ((eps - magnitude) * (magnitude < eps)).sum()
    return total


@torch.no_grad()
def clamp_weights(model: nn.Module, bound: float) -> None:
    for _, layer in crossbar_layers(model):
        layer.weight.clamp_(-bound, bound)


@torch.no_grad()
def evaluate_digital(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    return (model(x).argmax(dim=1) == y).float().mean().item()


def _loss(model: nn.Module, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # The paper's CNN ends in LogSoftmax (NLL loss); cross-entropy on raw logits is the same thing.
    if isinstance(model[-1], nn.LogSoftmax):
        return F.nll_loss(logits, y)
    return F.cross_entropy(logits, y)


def _epochs(model, data: Dataset, config: TrainingConfig, optimizer, scheduler, epochs: int,
            generator: torch.Generator, analog: bool = False) -> None:
    n = data.x_train.shape[0]
    for _ in range(epochs):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, config.batch_size):
            batch = order[start:start + config.batch_size]
            optimizer.zero_grad()
            loss = _loss(model, model(data.x_train[batch]), data.y_train[batch])
            if config.small_weight_penalty > 0:
                loss = loss + config.small_weight_penalty * small_weight_penalty(model, config.small_weight_eps)
            loss.backward()
            optimizer.step()
            if not analog:  # analog tiles keep their weights internally; bounded after conversion
                clamp_weights(model, config.weight_bound)
        if scheduler is not None:
            scheduler.step()


def _train_digital(data: Dataset, config: TrainingConfig) -> nn.Sequential:
    model = build_network(config.network, seed=config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lr_step_epochs, config.lr_gamma)
    _epochs(model, data, config, optimizer, scheduler, config.epochs, generator)
    return model


def _hwa_finetune(model: nn.Sequential, data: Dataset, config: TrainingConfig) -> nn.Sequential:
    """Fine-tune with aihwkit's torch inference tiles and noise injection; return a digital copy."""
    from twin.toolchain.aihwkit_bridge import hwa_rpu_config, analog_to_digital
    from aihwkit.nn.conversion import convert_to_analog
    from aihwkit.optim import AnalogSGD

    assert config.hwa is not None
    torch.manual_seed(config.seed + 1)  # aihwkit's noise injection draws from the global generator
    analog = convert_to_analog(model, hwa_rpu_config(config.hwa))
    optimizer = AnalogSGD(analog.parameters(), lr=config.hwa.lr, momentum=config.momentum)
    optimizer.regroup_param_groups(analog)
    generator = torch.Generator().manual_seed(config.seed + 2)
    _epochs(analog, data, replace(config, small_weight_penalty=0.0), optimizer, None, config.hwa.epochs,
            generator, analog=True)
    digital = build_network(config.network, seed=config.seed)
    analog_to_digital(analog, digital)
    clamp_weights(digital, config.weight_bound)
    return digital


def cache_key(data: Dataset, config: TrainingConfig) -> str:
    payload = json.dumps({"data": data.fingerprint(), "config": asdict(config),
                          "code": TRAINING_CODE_VERSION, "torch": torch.__version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def train(data: Dataset, config: TrainingConfig, cache_dir: Path | None = None) -> TrainedModel:
    """Train (or load from the cache) a constrained network, HWA-fine-tuned if ``config.hwa``."""
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    key = cache_key(data, config)
    path = cache_dir / f"{config.network}-{key}.pt"
    model = build_network(config.network, seed=config.seed)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        from_cache = True
    else:
        # Bit-identical weights need the same torch thread count (float sums are reordered across
        # threads); `twin compare` therefore trains in the parent process before spawning workers.
        torch.manual_seed(config.seed)
        base = replace(config, hwa=None)
        model = _train_digital(data, base) if config.hwa is None else _hwa_finetune(
            train(data, base, cache_dir).model, data, config)
        _save_atomically(model.state_dict(), path)
        from_cache = False
    model.eval()
    accuracy = evaluate_digital(model, data.x_test, data.y_test)
    return TrainedModel(model, config, accuracy, key, from_cache)


def _save_atomically(state: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as handle:
        torch.save(state, handle)
    os.replace(handle.name, path)
