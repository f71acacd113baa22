"""Where the toolchain caches its results, how they are written, and how a trained model is identified.

The cache lives in the user's cache directory (``platformdirs.user_cache_dir("pcm-twin")``, e.g.
``~/.cache/pcm-twin`` on Linux), or in ``$PCM_TWIN_CACHE`` when that variable is set; never in the
working directory, so that a cache outliving a clone is still keyed correctly. Trained networks go
to its ``models`` folder (the key is built in :mod:`twin.toolchain.training`), the simulated-annealing
quantization of a trained network to its ``quantization`` folder (key in :mod:`twin.toolchain.deploy`).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

__all__ = ["CACHE_ENV", "cache_root", "default_cache_dir", "quantization_cache_dir", "model_sha256",
           "save_atomically", "write_atomically"]

CACHE_ENV = "PCM_TWIN_CACHE"


def cache_root() -> Path:
    """``$PCM_TWIN_CACHE`` if the variable is set (non-empty), else the user cache dir of pcm-twin."""
    root = os.environ.get(CACHE_ENV)
    if not root:
        import platformdirs
        root = platformdirs.user_cache_dir("pcm-twin", appauthor=False)
    return Path(root)


def default_cache_dir() -> Path:
    """Where trained networks are cached: ``models`` under :func:`cache_root`."""
    return cache_root() / "models"


def quantization_cache_dir() -> Path:
    """Where quantized networks (the annealed steps of each layer) are cached: ``quantization`` under :func:`cache_root`."""
    return cache_root() / "quantization"


def model_sha256(model: nn.Module | dict[str, torch.Tensor]) -> str:
    """SHA-256 of a model's state_dict: every entry in sorted key order, with its name, dtype, shape
    and the bytes of its contiguous CPU copy. Equal digests mean bit-identical weights."""
    state = model.state_dict() if isinstance(model, nn.Module) else model
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name]
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a tensor")
        tensor = tensor.detach().cpu().contiguous()
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype, bfloat16 included
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()


def save_atomically(state: dict, path: Path) -> None:
    """torch.save to a temporary file beside ``path``, then rename: readers see all or nothing."""
    write_atomically(path, lambda handle: torch.save(state, handle))


def write_atomically(path: Path, write: Callable[[Any], object]) -> None:
    """``write(handle)`` into a temporary file beside ``path``, fsync, then rename over ``path``:
    readers see the old file, the whole new one, or none, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                     delete=False) as handle:
        try:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    os.replace(handle.name, path)
