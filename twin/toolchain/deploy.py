"""The offline toolchain's last steps: quantize a trained network and place it on the chip.

The quantization (simulated annealing of each layer's steps plus the uniform and k-means baselines
of its report, seconds per network) is cached: :func:`quantize_network` stores each layer's
:class:`~twin.toolchain.quantize.QuantReport` under a key of everything that determines it
(:func:`quantization_key`) in :func:`twin.toolchain.cache.quantization_cache_dir`, and a second call
with the same weights, levels, schedule and seed reads it back instead of annealing again. The levels
``k_plus, k_minus`` are always recomputed from the steps (milliseconds), so a cached result is the
computed one, bit for bit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import warnings
from dataclasses import asdict, dataclass, fields
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from twin.toolchain.cache import quantization_cache_dir, write_atomically
from twin.toolchain.readout import Deployment
from twin.toolchain.mapping import ChipMapping, LevelEncoding, SinglePairEncoding, TileGeometry
from twin.toolchain.networks import crossbar_layers
from twin.device.pcm import DeviceArray, PCMParameters, PCMStatistics
from twin.toolchain.quantize import (DEFAULT_LEVELS, AnnealSchedule, QuantReport, QuantSteps, compare_quantizers,
                                     dequantize, quantize)

__all__ = ["LayerQuantization", "quantize_network", "quantization_key", "QUANTIZATION_CODE_VERSION", "quantized_model",
           "deploy_levels", "deploy_analog", "analog_codes"]


@dataclass(frozen=True, eq=False)
class LayerQuantization:
    steps: QuantSteps
    k_plus: np.ndarray
    k_minus: np.ndarray
    report: QuantReport


def crossbar_weights(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: layer.weight.detach().cpu().numpy().astype(np.float64) for name, layer in crossbar_layers(model)}


def quantize_network(model: nn.Module, levels: int = DEFAULT_LEVELS, schedule: AnnealSchedule = AnnealSchedule(),
                     seed: int = 0, *, cache_dir: Path | None = None, use_cache: bool = True
                     ) -> dict[str, LayerQuantization]:
    """SA-tuned steps per layer (each layer has its own tiles and output scale), then levels.

    With ``use_cache`` the layers' reports are read from (or, computed, written to) ``cache_dir``
    (default :func:`~twin.toolchain.cache.quantization_cache_dir`) under :func:`quantization_key`;
    an unreadable or inconsistent cache file is warned about, recomputed and replaced.
    """
    weights = crossbar_weights(model)
    path = None
    reports = None
    if use_cache:
        key = quantization_key(weights, levels, schedule, seed)
        path = (quantization_cache_dir() if cache_dir is None else Path(cache_dir)) / f"quant-{key[:20]}.json"
        reports = _load_reports(path, key, weights, levels) if path.exists() else None
    if reports is None:
        reports = {name: compare_quantizers(w, levels, schedule, seed + i) for i, (name, w) in enumerate(weights.items())}
        if path is not None:
            _save_reports(path, key, reports)
    out = {}
    for name, w in weights.items():
        report = reports[name]
        k_plus, k_minus = quantize(w, report.sa_steps)
        out[name] = LayerQuantization(report.sa_steps, k_plus, k_minus, report)
    return out


QUANTIZATION_CODE_VERSION = "1"  # bump when the quantization procedure changes: invalidates the cache
_QUANTIZATION_SOURCES = ("quantize.py", "deploy.py")
_CACHE_FORMAT = 1


@cache
def _quantization_source_digest() -> str:
    """SHA-256 of the source files that define the quantization (an edit that forgets to bump
    QUANTIZATION_CODE_VERSION still misses the cache)."""
    digest = hashlib.sha256()
    for name in _QUANTIZATION_SOURCES:
        digest.update(name.encode() + b"\0" + (Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


def quantization_key(weights: dict[str, np.ndarray], levels: int, schedule: AnnealSchedule, seed: int) -> str:
    """SHA-256 (hex) of everything :func:`quantize_network`'s result depends on: every crossbar
    layer in order (name, dtype, shape and the bytes of its float64 weights: layer i anneals with
    seed + i), the levels, the whole annealing schedule, the seed, the quantization code (version
    and source digest) and the versions of numpy (annealing draws) and scikit-learn (the k-means
    baseline of the report)."""
    layers = []
    for name, w in weights.items():
        w = np.ascontiguousarray(w)
        layers.append([name, str(w.dtype), list(w.shape), hashlib.sha256(w.tobytes()).hexdigest()])
    payload = json.dumps({
        "layers": layers, "levels": int(levels), "schedule": asdict(schedule), "seed": int(seed),
        "code": QUANTIZATION_CODE_VERSION, "source": _quantization_source_digest(),
        "numpy": np.__version__, "sklearn": metadata.version("scikit-learn"),
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _save_reports(path: Path, key: str, reports: dict[str, QuantReport]) -> None:
    """JSON (floats written exactly: shortest repr, read back to the same double), written atomically."""
    data = {"format": _CACHE_FORMAT, "key": key,
            "layers": [{"name": name, "report": asdict(report)} for name, report in reports.items()]}
    text = json.dumps(data, indent=1) + "\n"
    try:
        write_atomically(path, lambda handle: handle.write(text.encode()))
    except OSError as exc:  # a read-only or full cache costs the next run the annealing, nothing else
        warnings.warn(f"could not cache the quantization in {path}: {exc}", stacklevel=3)


def _typed(value: Any, kind: str) -> Any:
    """``value`` as read from JSON, checked against a QuantReport field's annotation."""
    if kind == "QuantSteps":
        if not isinstance(value, dict) or set(value) != {"step_pos", "step_neg", "levels"}:
            raise ValueError("malformed steps")
        return QuantSteps(_typed(value["step_pos"], "float"), _typed(value["step_neg"], "float"),
                          _typed(value["levels"], "int"))
    expected = {"int": int, "float": float}[kind]
    if type(value) is not expected:  # exactly: no bool for int, no int for float
        raise ValueError(f"{value!r} is not a {kind}")
    return value


def _load_reports(path: Path, key: str, weights: dict[str, np.ndarray], levels: int) -> dict[str, QuantReport] | None:
    """The cached reports, or None (with a warning) if the file is unreadable or does not fit."""
    try:
        data = json.loads(path.read_text())
        if data.get("format") != _CACHE_FORMAT or data.get("key") != key:
            raise ValueError("written for another key or format")
        layers = data["layers"]
        if [layer["name"] for layer in layers] != list(weights):
            raise ValueError("other layers")
        annotations = {f.name: str(f.type) for f in fields(QuantReport)}
        reports = {}
        for layer in layers:
            raw = layer["report"]
            if set(raw) != set(annotations):
                raise ValueError("other report fields")
            report = QuantReport(**{name: _typed(raw[name], kind) for name, kind in annotations.items()})
            if report.levels != levels or report.sa_steps.levels != levels or \
                    report.n_weights != weights[layer["name"]].size:
                raise ValueError("a report of other levels or weights")
            reports[layer["name"]] = report
        return reports
    except Exception as exc:  # a damaged or foreign file is recomputed and replaced, never used
        warnings.warn(f"ignoring unreadable cached quantization {path}: {type(exc).__name__}: {exc}", stacklevel=3)
        return None


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
