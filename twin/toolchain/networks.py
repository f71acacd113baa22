"""The networks the twin deploys, as ``nn.Sequential`` so that every crossbar layer is in order.

Biases stay in the digital periphery (as aihwkit's default ``digital_bias=True``); only the
weight matrices of Conv2d and Linear layers go onto PCM crossbars.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

__all__ = ["build_network", "NETWORKS", "crossbar_layers", "count_parameters"]


def digits_cnn() -> nn.Sequential:
    """8x8 digits: 1,446 parameters (conv 80 + conv 876 + linear 490)."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3, padding=1)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(8, 12, 3, padding=1)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(48, 10)),
    ]))


def paper_mnist_cnn() -> nn.Sequential:
    """The paper's MNIST CNN (2,886 parameters), as in its reference code."""
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 8, 3)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(3, stride=3, padding=1)),
        ("conv2", nn.Conv2d(8, 12, 3)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2, stride=2, padding=1)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(192, 10)), ("log_softmax", nn.LogSoftmax(dim=1)),
    ]))


NETWORKS = {"digits_cnn": (digits_cnn, 8), "paper_mnist_cnn": (paper_mnist_cnn, 28)}


def build_network(name: str, seed: int = 0) -> nn.Sequential:
    """A freshly initialised network; the seed fixes its initial weights.

    nn.Module initialisers can only draw from torch's global generator: they draw inside
    ``fork_rng``, seeded there, so the caller's global RNG state is left as it was.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(sorted(NETWORKS))}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NETWORKS[name][0]()


def crossbar_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer whose weights live on a crossbar, in forward order."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
