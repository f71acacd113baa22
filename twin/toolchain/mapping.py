"""Mapping a network's weights onto differential-pair PCM crossbar tiles.

Every crossbar layer is a matrix: Linear ``out x in``; Conv2d ``out_channels x
(in_channels * kh * kw)``. The matrix is transposed onto tiles so that a tile's rows are input
lines (the identity probe drives one row at a time) and its columns are output lines; large
matrices are split into blocks, and a tile never holds two layers. Each unit cell holds a
G+ and a G- device. The last ``reference_rows`` rows of every tile hold reference cells
programmed at known levels (for drift estimation), never weights.

Devices are numbered ``((tile * 2 + sign) * rows + row) * cols + col`` (sign 0 = G+, 1 = G-),
so a tile's devices are one contiguous slice.

Two encodings map weights to conductances:
- :class:`LevelEncoding` (the paper's): w = k+ * step_pos - k- * step_neg, device target
  k * g_max / K;
- :class:`SinglePairEncoding` (aihwkit's ``SinglePairConductanceConverter``): one scale per
  layer, g_max / max|w|, for both signs; used to cross-check the twin against aihwkit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from twin.toolchain.specs import TileGeometry

__all__ = ["TileGeometry", "LayerPlacement", "ChipMapping", "LevelEncoding", "SinglePairEncoding",
           "SyntheticFill", "layer_matrix", "reference_levels", "synthetic_fill"]


def layer_matrix(weight: np.ndarray) -> np.ndarray:
    """A layer's crossbar matrix: (out, fan_in)."""
    return weight.reshape(weight.shape[0], -1)


def reference_levels(count: int, levels: int) -> np.ndarray:
    """Known levels of the reference cells: 1..K repeated (level 0 carries no drift signal)."""
    return (np.arange(count) % levels + 1).astype(np.int16)


@dataclass(frozen=True)
class LayerPlacement:
    name: str
    weight_shape: tuple[int, ...]
    tiles: tuple[int, ...]
    device_pos: np.ndarray = field(repr=False)  # (out, fan_in) device index of G+
    device_neg: np.ndarray = field(repr=False)  # (out, fan_in) device index of G-

    @property
    def matrix_shape(self) -> tuple[int, int]:
        return self.device_pos.shape


class ChipMapping:
    """Placement of all crossbar layers on tiles, plus the reference cells of every tile."""

    def __init__(self, layer_shapes: dict[str, tuple[int, ...]], geometry: TileGeometry, levels: int) -> None:
        if levels < 1:
            raise ValueError('"levels" must be >= 1.')
        self.geometry = geometry
        self.levels = levels
        self.layers: dict[str, LayerPlacement] = {}
        tile = 0
        g = geometry
        for name, shape in layer_shapes.items():
            out, fan_in = shape[0], int(np.prod(shape[1:]))
            pos = np.empty((out, fan_in), dtype=np.int64)
            first = tile
            for in0 in range(0, fan_in, g.weight_rows):
                for out0 in range(0, out, g.cols):
                    n_in = min(g.weight_rows, fan_in - in0)
                    n_out = min(g.cols, out - out0)
                    rows = np.arange(n_in)[None, :]  # tile row = input line
                    cols = np.arange(n_out)[:, None]  # tile column = output line
                    pos[out0:out0 + n_out, in0:in0 + n_in] = (tile * 2 * g.rows + rows) * g.cols + cols
                    tile += 1
            neg = pos + g.rows * g.cols  # the G- array of the same tile
            self.layers[name] = LayerPlacement(name, tuple(shape), tuple(range(first, tile)), pos, neg)
        self.n_tiles = tile
        self.n_devices = tile * g.devices_per_tile
        ref_rows = np.arange(g.weight_rows, g.rows)
        cells = (ref_rows[:, None] * g.cols + np.arange(g.cols)[None, :]).reshape(-1)[:g.reference_cells]
        base = np.arange(self.n_tiles)[:, None] * g.devices_per_tile
        self.reference_pos = (base + cells[None, :])  # (tiles, cells)
        self.reference_neg = self.reference_pos + g.rows * g.cols
        self.reference_level = reference_levels(g.reference_cells, levels)

    # --- geometry helpers -------------------------------------------------------------
    def tile_of_device(self) -> np.ndarray:
        return np.arange(self.n_devices) // self.geometry.devices_per_tile

    def weight_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_devices, dtype=bool)
        for layer in self.layers.values():
            mask[layer.device_pos.ravel()] = True
            mask[layer.device_neg.ravel()] = True
        return mask

    def reference_mask(self) -> np.ndarray:
        mask = np.zeros(self.n_devices, dtype=bool)
        mask[self.reference_pos.ravel()] = True
        mask[self.reference_neg.ravel()] = True
        return mask

    # --- levels <-> devices -----------------------------------------------------------
    def device_levels(self, layer_levels: dict[str, tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Target level of every device from each layer's (k_plus, k_minus); unused cells at 0."""
        out = np.zeros(self.n_devices, dtype=np.int16)
        for name, layer in self.layers.items():
            k_plus, k_minus = layer_levels[name]
            for levels, index in ((k_plus, layer.device_pos), (k_minus, layer.device_neg)):
                flat = layer_matrix(np.asarray(levels))
                if flat.shape != index.shape:
                    raise ValueError(f"layer {name!r}: levels of shape {np.shape(levels)} do not match "
                                     f"its weights {layer.weight_shape}")
                if flat.min(initial=0) < 0 or flat.max(initial=0) > self.levels:
                    raise ValueError(f"layer {name!r}: levels must lie in 0..{self.levels}")
                out[index] = flat
        out[self.reference_pos] = self.reference_level[None, :]
        out[self.reference_neg] = self.reference_level[None, :]
        return out

    def layer_levels(self, device_levels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Inverse of :meth:`device_levels`: each layer's (k_plus, k_minus) in its weight shape."""
        return {name: (device_levels[layer.device_pos].reshape(layer.weight_shape),
                       device_levels[layer.device_neg].reshape(layer.weight_shape))
                for name, layer in self.layers.items()}

    def gather(self, values: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """Per layer, (G+ matrix, G- matrix) of any per-device tensor, in (out, fan_in) shape."""
        return {name: (values[torch.from_numpy(layer.device_pos)], values[torch.from_numpy(layer.device_neg)])
                for name, layer in self.layers.items()}


@dataclass(frozen=True, eq=False)
class SyntheticFill:
    """A chip whose every weight position holds a weight (``chip.fill: synthetic``): the network's
    devices as the mapping places them, and synthetic weights on every other weight cell of every
    tile, their (k+, k-) pairs drawn from the network's own pair histogram. Reference cells are on
    every tile, as on the network's. Arrays cover the whole chip, device numbering as the mapping's."""

    tiles: int
    geometry: TileGeometry
    levels: np.ndarray = field(repr=False)  # int16 (tiles * devices_per_tile,): every device's target
    weight: np.ndarray = field(repr=False)  # bool, same length: weight devices (network's and synthetic)
    synthetic: np.ndarray = field(repr=False)  # bool, same length: the synthetic devices among them
    network_devices: int  # devices of the network's tiles (0 .. network_devices - 1)

    @property
    def reference(self) -> np.ndarray:
        """bool per device: the reference devices of every tile."""
        g = self.geometry
        mask = np.zeros((self.tiles, g.devices_per_tile), dtype=bool)
        cells = _reference_cells(g)
        mask[:, cells] = True
        mask[:, cells + g.rows * g.cols] = True
        return mask.reshape(-1)

    def used(self) -> np.ndarray:
        """Chip-wide numbers of every weight and reference device, ascending."""
        return np.flatnonzero(self.weight | self.reference)

    def weight_cells(self, tile: int) -> np.ndarray:
        """bool (rows, cols): the unit cells of ``tile`` that hold a weight (the firmware's layout)."""
        g = self.geometry
        start = tile * g.devices_per_tile
        return self.weight[start:start + g.rows * g.cols].reshape(g.rows, g.cols).copy()


def _reference_cells(g: TileGeometry) -> np.ndarray:
    """Local cell numbers (row * cols + col) of a tile's reference cells: the mapping's."""
    ref_rows = np.arange(g.weight_rows, g.rows)
    return (ref_rows[:, None] * g.cols + np.arange(g.cols)[None, :]).reshape(-1)[:g.reference_cells]


def synthetic_fill(mapping: ChipMapping, device_levels: np.ndarray, tiles: int,
                   generator: np.random.Generator) -> SyntheticFill:
    """Fill every weight cell of ``tiles`` tiles (rows above the reference rows, every column,
    G+ and G-) that the network does not occupy with a synthetic weight.

    Each synthetic cell gets a (k+, k-) pair drawn independently from the histogram of the
    network's own pairs (``device_levels``: the network's targets, as ``ChipMapping.device_levels``
    writes them; with analog targets the pairs are target codes), so the levels of the G+ and
    G- devices, and of the signed weight k+ - k-, follow the network's distribution. Cells are
    drawn in device order (tile, row, column), so one ``generator`` state gives one fill. A
    network whose weights all sit on one pair would give a constant fill: refused."""
    g = mapping.geometry
    if tiles < mapping.n_tiles:
        raise ValueError(f"the network takes {mapping.n_tiles} tiles, the chip has {tiles}")
    device_levels = np.asarray(device_levels)
    if device_levels.shape != (mapping.n_devices,):
        raise ValueError(f"device_levels must hold the network's {mapping.n_devices} devices, "
                         f"got shape {device_levels.shape}")
    cells_per_array = g.rows * g.cols
    real_pos = np.concatenate([layer.device_pos.ravel() for layer in mapping.layers.values()])
    real_neg = real_pos + cells_per_array
    width = int(device_levels.max(initial=0)) + 1
    pairs = device_levels[real_pos].astype(np.int64) * width + device_levels[real_neg].astype(np.int64)
    values, counts = np.unique(pairs, return_counts=True)
    if values.size < 2:
        raise ValueError("the network's weights all sit on one (k+, k-) pair: a synthetic fill drawn from it "
                         "would be constant")

    # every weight cell of the chip: the first weight_rows rows of each tile, all columns
    weight_cell = np.zeros((tiles, cells_per_array), dtype=bool)
    weight_cell[:, :g.weight_rows * g.cols] = True
    occupied = np.zeros((tiles, cells_per_array), dtype=bool)
    occupied.reshape(-1)[(real_pos // g.devices_per_tile) * cells_per_array + real_pos % g.devices_per_tile] = True
    free = weight_cell & ~occupied  # (tiles, cells): cells that get a synthetic weight

    n = tiles * g.devices_per_tile
    levels = np.zeros(n, dtype=np.int16)
    levels[:mapping.n_devices] = device_levels
    by_tile = levels.reshape(tiles, 2, cells_per_array)  # a view: (tile, sign, cell)
    by_tile[mapping.n_tiles:, :, _reference_cells(g)] = mapping.reference_level[None, None, :]
    drawn = values[np.searchsorted(np.cumsum(counts), generator.integers(0, counts.sum(), int(free.sum())),
                                   side="right")]
    by_tile[:, 0][free] = (drawn // width).astype(np.int16)
    by_tile[:, 1][free] = (drawn % width).astype(np.int16)
    weight = np.repeat(weight_cell[:, None, :], 2, axis=1).reshape(-1)
    synthetic = np.repeat(free[:, None, :], 2, axis=1).reshape(-1)
    return SyntheticFill(tiles, g, levels, weight, synthetic, mapping.n_devices)


@dataclass(frozen=True)
class LevelEncoding:
    """The paper's encoding: per layer steps; w = k+ * step_pos - k- * step_neg."""

    mapping: ChipMapping
    steps: dict[str, tuple[float, float]]  # layer -> (step_pos, step_neg)
    g_max_us: float

    def weights(self, conductance: torch.Tensor) -> dict[str, torch.Tensor]:
        """Effective weights from (read-back) conductances: G * K * step / g_max per device."""
        unit = self.mapping.levels / self.g_max_us
        out = {}
        for name, (g_pos, g_neg) in self.mapping.gather(conductance).items():
            step_pos, step_neg = self.steps[name]
            w = g_pos * (unit * step_pos) - g_neg * (unit * step_neg)
            out[name] = w.reshape(self.mapping.layers[name].weight_shape)
        return out


@dataclass(frozen=True)
class SinglePairEncoding:
    """aihwkit's ``SinglePairConductanceConverter``: G+- = clamp(+-w * g_max / max|w|, 0, g_max)."""

    mapping: ChipMapping
    scale: dict[str, float]  # layer -> uS per weight unit
    g_max_us: float

    @classmethod
    def from_weights(cls, mapping: ChipMapping, weights: dict[str, np.ndarray], g_max_us: float
                     ) -> tuple["SinglePairEncoding", torch.Tensor]:
        """The encoding and every device's target conductance (references at their levels)."""
        g_target = torch.zeros(mapping.n_devices, dtype=torch.float32)
        scale = {}
        for name, layer in mapping.layers.items():
            matrix = torch.as_tensor(layer_matrix(np.asarray(weights[name])), dtype=torch.float32)
            scale[name] = g_max_us / max(matrix.abs().max().item(), 1e-7)
            g_target[torch.from_numpy(layer.device_pos)] = (matrix * scale[name]).clamp(0, g_max_us)
            g_target[torch.from_numpy(layer.device_neg)] = (-matrix * scale[name]).clamp(0, g_max_us)
        ref = torch.from_numpy(mapping.reference_level).float() * (g_max_us / mapping.levels)
        g_target[torch.from_numpy(mapping.reference_pos)] = ref
        g_target[torch.from_numpy(mapping.reference_neg)] = ref
        return cls(mapping, scale, g_max_us), g_target

    def weights(self, conductance: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: ((g_pos - g_neg) / self.scale[name]).reshape(self.mapping.layers[name].weight_shape)
                for name, (g_pos, g_neg) in self.mapping.gather(conductance).items()}
