"""The service model of one inference: its time and energy on the tiles, from the mapping and the
per-operation costs (docs/service-model.md). numpy and the standard library only: no torch, no simpy.

A crossbar layer's matrix (out x fan_in) is cut into blocks of ``geometry.weight_rows`` input lines
by ``geometry.cols`` output lines, one block per tile, allocated exactly as
:class:`twin.toolchain.mapping.ChipMapping` does (layers in order; for each layer, ``in0`` outer,
``out0`` inner; consecutive tile numbers). Per inference a layer runs ``positions`` MVMs (a conv
layer one per output position, a linear layer one) on every one of its tiles, those tiles in
parallel; then the digital unit adds the partial sums of its ``row_blocks`` input blocks and
applies bias, activation and pooling, ``lanes`` element operations per cycle. Times are exact
integer nanoseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Sequence

from twin.toolchain.specs import TileGeometry

__all__ = ["LayerShape", "LayerService", "ServiceModel", "service_model"]

EnergyScaling = Literal["full", "used"]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_int(name: str, value: object, minimum: int) -> None:
    if not _is_int(value) or value < minimum:
        raise ValueError(f'"{name}" must be an integer >= {minimum}, got {value!r}')


def _check_real(name: str, value: object, minimum: float = 0.0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise ValueError(f'"{name}" must be a finite number >= {minimum:g}, got {value!r}')


@dataclass(frozen=True)
class LayerShape:
    """What the service model needs about one crossbar layer (torch-free;
    :func:`twin.traffic.shapes.layer_shapes` extracts it from a network)."""

    name: str
    out: int  # crossbar matrix rows = output channels / features
    fan_in: int  # crossbar matrix columns = input lines
    positions: int  # MVMs per inference: output positions (conv: H_out * W_out; linear: 1)
    digital_ops: int  # element ops after the MVMs per inference: bias adds, activation, pooling comparisons

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f'"name" must be a non-empty string, got {self.name!r}')
        for field, minimum in (("out", 1), ("fan_in", 1), ("positions", 1), ("digital_ops", 0)):
            value = getattr(self, field)
            if not _is_int(value) or value < minimum:
                raise ValueError(f'layer {self.name!r}: "{field}" must be an integer >= {minimum}, got {value!r}')


@dataclass(frozen=True)
class LayerService:
    """One crossbar layer of one inference on one replica of the network."""

    name: str
    tiles: tuple[int, ...]  # tiles of the layer (of one replica, 0-based as in ChipMapping)
    mvms: int  # MVMs per inference on each of its tiles (= positions)
    row_blocks: int  # tiles along the input dimension: partial sums to accumulate digitally
    analog_ns: int  # per inference: positions * mvm_ns (its tiles run in parallel)
    digital_ops: int  # per inference, including the accumulation adds (row_blocks - 1) * out * positions
    digital_ns: int  # per inference: ceil(digital_ops / lanes) * digital_op_ns
    tile_energy_j: tuple[float, ...]  # per tile (same order as tiles), MVM energy per inference
    digital_energy_j: float  # per inference
    ops: int  # useful ops per inference: 2 * out * fan_in * positions

    @property
    def time_ns(self) -> int:
        """Per inference: the MVMs, then the digital unit."""
        return self.analog_ns + self.digital_ns

    @property
    def mvm_energy_j(self) -> float:
        return math.fsum(self.tile_energy_j)

    @property
    def energy_j(self) -> float:
        return self.mvm_energy_j + self.digital_energy_j


@dataclass(frozen=True)
class ServiceModel:
    """Time and energy of one request of ``batch`` inferences, run one after another on the tiles
    of one replica. Layer ``i`` is pipeline stage ``i``."""

    layers: tuple[LayerService, ...]
    batch: int  # inferences per request

    # --- per inference ------------------------------------------------------------------
    @property
    def inference_ns(self) -> int:
        """Latency of one inference: the sum of its layer times."""
        return sum(layer.time_ns for layer in self.layers)

    @property
    def mvm_energy_per_inference_j(self) -> float:
        return math.fsum(layer.mvm_energy_j for layer in self.layers)

    @property
    def digital_energy_per_inference_j(self) -> float:
        return math.fsum(layer.digital_energy_j for layer in self.layers)

    @property
    def energy_per_inference_j(self) -> float:
        return self.mvm_energy_per_inference_j + self.digital_energy_per_inference_j

    @property
    def ops_per_inference(self) -> int:
        return sum(layer.ops for layer in self.layers)

    @property
    def mvms_per_inference(self) -> int:
        """MVMs over all tiles (a layer's ``mvms`` on each of its tiles)."""
        return sum(layer.mvms * len(layer.tiles) for layer in self.layers)

    # --- per request --------------------------------------------------------------------
    @property
    def sequential_ns(self) -> int:
        """Sequential chaining: the request holds all tiles of its replica for this long."""
        return self.batch * self.inference_ns

    def stage_ns(self, i: int) -> int:
        """Pipelined chaining: the request holds the tiles of layer ``i`` for this long."""
        return self.batch * self.layers[i].time_ns

    @property
    def bottleneck_ns(self) -> int:
        """The slowest stage: a pipeline accepts at most one request per this interval."""
        return max(self.stage_ns(i) for i in range(len(self.layers)))

    @property
    def mvm_energy_j(self) -> float:
        return self.batch * self.mvm_energy_per_inference_j

    @property
    def digital_energy_j(self) -> float:
        return self.batch * self.digital_energy_per_inference_j

    @property
    def energy_j(self) -> float:
        return self.mvm_energy_j + self.digital_energy_j

    # --- tiles ----------------------------------------------------------------------------
    @property
    def n_tiles(self) -> int:
        """Tiles of one replica."""
        return sum(len(layer.tiles) for layer in self.layers)

    def tile_energy_j(self) -> dict[int, float]:
        """MVM energy per request of every tile of the replica."""
        return {tile: self.batch * e for layer in self.layers for tile, e in zip(layer.tiles, layer.tile_energy_j)}

    def tops_per_watt(self, extra_j_per_inference: float = 0.0) -> float:
        """Useful ops per joule / 1e12, with ``extra_j_per_inference`` (static power, off-chip
        traffic ...) added to the energy of an inference."""
        _check_real("extra_j_per_inference", extra_j_per_inference)
        energy = self.energy_per_inference_j + extra_j_per_inference
        return math.inf if energy == 0 else self.ops_per_inference / energy / 1e12


def service_model(layers: Sequence[LayerShape], geometry: TileGeometry, mvm_ns: int, mvm_j: float,
                  digital_op_ns: int, digital_op_j: float, lanes: int, batch: int = 1,
                  energy_scaling: EnergyScaling = "full") -> ServiceModel:
    """The service model of ``layers`` (in forward order) on tiles of ``geometry``.

    ``mvm_ns``/``mvm_j``: one MVM on one tile (``timing.mvm``/``energy.mvm``);
    ``digital_op_ns``: one cycle of the digital unit, ``lanes`` element ops per cycle
    (``timing.digital_op``, ``chip.digital_lanes``); ``digital_op_j``: one element op
    (``energy.digital_op``). ``energy_scaling="full"``: every MVM costs ``mvm_j`` whatever part
    of the tile its block uses; ``"used"``: ``mvm_j * rows_used * cols_used / (rows * cols)``.
    An MVM takes ``mvm_ns`` either way.
    """
    layers = tuple(layers)
    if not layers:
        raise ValueError('"layers" must hold at least one layer')
    for layer in layers:
        if not isinstance(layer, LayerShape):
            raise ValueError(f'"layers" must hold LayerShape, got {type(layer).__name__}')
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError(f'"layers": duplicate layer names in {names}')
    if not isinstance(geometry, TileGeometry):
        raise ValueError(f'"geometry" must be a TileGeometry, got {type(geometry).__name__}')
    _check_int("mvm_ns", mvm_ns, 1)
    _check_real("mvm_j", mvm_j)
    _check_int("digital_op_ns", digital_op_ns, 1)
    _check_real("digital_op_j", digital_op_j)
    _check_int("lanes", lanes, 1)
    _check_int("batch", batch, 1)
    if energy_scaling not in ("full", "used"):
        raise ValueError(f'"energy_scaling" must be "full" or "used", got {energy_scaling!r}')

    g = geometry
    services = []
    tile = 0
    for layer in layers:
        tiles, energies = [], []
        for in0 in range(0, layer.fan_in, g.weight_rows):  # ChipMapping's loop order
            for out0 in range(0, layer.out, g.cols):
                rows_used = min(g.weight_rows, layer.fan_in - in0)
                cols_used = min(g.cols, layer.out - out0)
                per_mvm = mvm_j if energy_scaling == "full" else mvm_j * (rows_used * cols_used) / (g.rows * g.cols)
                tiles.append(tile)
                energies.append(layer.positions * per_mvm)
                tile += 1
        row_blocks = -(-layer.fan_in // g.weight_rows)
        digital_ops = layer.digital_ops + (row_blocks - 1) * layer.out * layer.positions
        services.append(LayerService(
            name=layer.name, tiles=tuple(tiles), mvms=layer.positions, row_blocks=row_blocks,
            analog_ns=layer.positions * mvm_ns, digital_ops=digital_ops,
            digital_ns=-(-digital_ops // lanes) * digital_op_ns, tile_energy_j=tuple(energies),
            digital_energy_j=digital_ops * digital_op_j, ops=2 * layer.out * layer.fan_in * layer.positions))
    return ServiceModel(layers=tuple(services), batch=batch)
