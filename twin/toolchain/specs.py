"""What the toolchain is asked to build: tile geometry and the network (no torch here, so that
the scenario schema can derive its sections from these dataclasses without loading torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

from twin.params import check_bounds, param
from twin.toolchain.quantize import AnnealSchedule

__all__ = ["TileGeometry", "NetworkSpec", "ARCHITECTURE_DATASET", "CROSSBAR_SHAPES", "tiles_needed"]

ARCHITECTURE_DATASET = {"digits_cnn": "digits", "paper_mnist_cnn": "mnist"}
"""The dataset each network architecture runs on."""

CROSSBAR_SHAPES: dict[str, dict[str, tuple[int, int]]] = {
    "digits_cnn": {"conv1": (8, 9), "conv2": (12, 72), "fc": (10, 48)},
    "paper_mnist_cnn": {"conv1": (8, 9), "conv2": (12, 72), "fc": (10, 192)},
}
"""Each architecture's crossbar matrices (out, fan_in), known without building the network, so a
scenario's tile count is checked at validate time (a test holds them to twin.toolchain.networks)."""

_SA = {f.name: f.default for f in fields(AnnealSchedule)}  # the quantizer owns its defaults


@dataclass(frozen=True)
class TileGeometry:
    rows: int = param(256, ge=1, source="IBM HERMES core / Le Gallo et al. 2023: 256x256")
    cols: int = param(256, ge=1, source="IBM HERMES core / Le Gallo et al. 2023: 256x256")
    reference_cells: int = param(64, ge=0, source="assumption: 8 cells per level at K = 8")

    def __post_init__(self) -> None:
        check_bounds(self)
        if self.reference_rows >= self.rows:
            raise ValueError(f'"reference_cells": {self.reference_cells} reference cells fill all {self.rows} rows '
                             f"of {self.cols} columns; leave at least one row for weights")

    @property
    def reference_rows(self) -> int:
        return math.ceil(self.reference_cells / self.cols)

    @property
    def weight_rows(self) -> int:
        return self.rows - self.reference_rows

    @property
    def devices_per_tile(self) -> int:
        return 2 * self.rows * self.cols

    def tiles_for(self, out: int, fan_in: int) -> int:
        """Tiles a matrix of ``out`` outputs and ``fan_in`` inputs takes (inputs on rows, a tile
        never holds two layers): the blocks of ``twin.toolchain.mapping.ChipMapping``."""
        return math.ceil(fan_in / self.weight_rows) * math.ceil(out / self.cols)


def tiles_needed(architecture: str, geometry: TileGeometry) -> int:
    """Tiles the architecture's crossbar layers take on tiles of ``geometry``."""
    return sum(geometry.tiles_for(out, fan_in) for out, fan_in in CROSSBAR_SHAPES[architecture].values())


@dataclass(frozen=True)
class NetworkSpec:
    """The network a scenario deploys and how it is trained and quantized."""

    architecture: Literal["digits_cnn", "paper_mnist_cnn"] = param("digits_cnn", source="assumption: the small default")
    dataset: Literal["digits", "mnist"] = param("digits", source="scikit-learn's bundled 8x8 digits")
    data_path: Path | None = param(None, source="folder with the four MNIST IDX files (mnist only)")
    checkpoint: Path | None = param(None, source="a torch state_dict file; None = train (cached)")
    hwa: bool = param(False, source="assumption: plain digital training")
    epochs: int | None = param(None, ge=1, source="None = the network's default (twin.toolchain.training)")
    sa_iterations: int = param(_SA["iterations"], ge=1, source="twin.toolchain.quantize.AnnealSchedule")
    sa_restarts: int = param(_SA["restarts"], ge=0, source="twin.toolchain.quantize.AnnealSchedule")
    # seed of the data split, training and quantization; None = the scenario's seed. `twin compare`
    # pins it to the first seed so that its seeds vary only the chip (programming, reads).
    seed: int | None = param(None, ge=0, le=2**32 - 1, source="None = the scenario's seed (0 .. 2^32 - 1)")

    def __post_init__(self) -> None:
        check_bounds(self)
