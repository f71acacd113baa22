"""Training with the paper's weight constraints, hardware-aware (HWA) fine-tuning, and a cache.

Two constraints make a network fit the self-correcting chip (paper.md):
- a small-weight penalty ``lambda * sum((eps - |w|) * (|w| < eps))`` pushes weights away from
  zero, where they could not be told apart from device noise;
- a large-weight bound clamps ``|w| <= weight_bound`` after every step, so the top level
  ``K * step`` of the quantizer covers the whole range.

HWA fine-tuning uses aihwkit's ``TorchInferenceRPUConfig`` (its C++ tiles fail with this torch)
with additive Gaussian weight noise and output noise injected during training.

Determinism: training always runs single-threaded (:func:`single_threaded`), because float sums
are reordered across intra-op threads and the trained weights would otherwise depend on the
machine's core count or OMP_NUM_THREADS. Library code never reseeds torch's
global generator: initial weights and aihwkit's noise injection (which can only draw from the
global generator) draw inside ``torch.random.fork_rng``; batch order uses its own generator.

Trained weights are cached (see :mod:`twin.toolchain.cache`) under a key that hashes the data
set, the configuration, the training code (version and source), torch's version and the thread
policy, so a second run does not retrain and a cache never serves a network trained differently.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.nn import functional as F

from twin.toolchain.cache import default_cache_dir, model_sha256, save_atomically
from twin.toolchain.data import Dataset
from twin.toolchain.networks import build_network, crossbar_layers

__all__ = ["TrainingConfig", "HWAConfig", "default_training", "TrainedModel", "train", "evaluate_digital",
           "default_cache_dir", "model_sha256", "single_threaded", "cache_key", "TRAINING_CODE_VERSION",
           "THREAD_POLICY"]

TRAINING_CODE_VERSION = "3"  # bump when the training procedure changes: invalidates the cache
THREAD_POLICY = "single-thread"  # how training runs; part of the cache key


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
    model_sha256: str  # of the state_dict (see twin.toolchain.cache.model_sha256)
    cache_file: Path  # where the weights are cached (a content-keyed name: shipped to sweep workers)


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch single-threaded inside the block; the previous thread count is restored after,
    also when the block raises. Training runs in here so its weights do not depend on the
    machine's (or OMP_NUM_THREADS's) thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
    # aihwkit's noise injection can only draw from the global generator: seed it inside a fork,
    # so the caller's global RNG state is untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed + 1)
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


_TRAINING_SOURCES = ("training.py", "networks.py", "aihwkit_bridge.py")


@cache
def _training_source_digest() -> str:
    """SHA-256 of the source files that define training, so that a cache outliving a clone (or
    an edit that forgot to bump TRAINING_CODE_VERSION) never serves a network trained by other code."""
    digest = hashlib.sha256()
    for name in _TRAINING_SOURCES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def cache_key(data: Dataset, config: TrainingConfig) -> str:
    """Hash of everything a trained network depends on: the data set's bytes, the configuration,
    the training code (version number and source digest), torch's version, the thread policy and,
    for HWA fine-tuning, aihwkit's version."""
    payload = json.dumps({
        "data": data.fingerprint(), "config": asdict(config), "code": TRAINING_CODE_VERSION,
        "source": _training_source_digest(), "torch": torch.__version__, "threads": THREAD_POLICY,
        "aihwkit": metadata.version("aihwkit") if config.hwa is not None else None,
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _load_cached(path: Path, model: nn.Module) -> bool:
    """Load ``path`` into ``model``; False (with a warning) if the file is unreadable or does not fit."""
    try:
        model.load_state_dict(torch.load(path, weights_only=True))
    except Exception as exc:  # a damaged or foreign file is retrained and replaced, never used
        warnings.warn(f"ignoring unreadable cached network {path}: {type(exc).__name__}: {exc}", stacklevel=3)
        return False
    return True


def train(data: Dataset, config: TrainingConfig, cache_dir: Path | None = None) -> TrainedModel:
    """Train (or load from the cache) a constrained network, HWA-fine-tuned if ``config.hwa``.

    Training runs single-threaded (bit-identical weights whatever the thread count) and leaves
    the caller's global torch RNG state and thread count as they were.
    """
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    key = cache_key(data, config)
    path = cache_dir / f"{config.network}-{key}.pt"
    model = build_network(config.network, seed=config.seed)
    from_cache = path.exists() and _load_cached(path, model)
    if not from_cache:
        base = replace(config, hwa=None)
        with single_threaded():
            model = _train_digital(data, base) if config.hwa is None else _hwa_finetune(
                train(data, base, cache_dir).model, data, config)
        save_atomically(model.state_dict(), path)
    model.eval()
    accuracy = evaluate_digital(model, data.x_test, data.y_test)
    return TrainedModel(model, config, accuracy, key, from_cache, model_sha256(model), path)
