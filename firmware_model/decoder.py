"""Decoding a tile's probe reading into the level each device was programmed to.

Firmware: it sees only the probe reading and its own configuration (levels, g_max, which cells
hold weights, where the reference cells are and their known levels), never device ages or the
simulator's state. Two decoders (docs/decoder.md has the measurements):

* :class:`NearestMultipleDecoder` -- the paper's rule, ``round(read / (g_max / K))``. PCM drift is
  one-directional and multiplicative, so after minutes most devices snap a level (or more) low.
* :class:`DriftAwareDecoder` -- estimates where each level sits on this tile *now* (reference
  cells, then the weight reads themselves) and snaps to those centers instead.

This module imports neither simpy nor twin (nor torch): numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from firmware_model.interface import FirmwareConfig, ProbeReading, TileLayout

__all__ = ["DecodeResult", "Decoder", "NearestMultipleDecoder", "DriftAwareDecoder", "make_decoder"]


@dataclass(frozen=True, eq=False)
class DecodeResult:
    """What a decoder concluded about one tile, in local device order (G+ array, then G-)."""

    levels: np.ndarray  # int16 (2 * rows * cols): decoded level, 0 for unused devices
    used: np.ndarray  # bool (2 * rows * cols): devices of weight cells and of reference cells
    centers_us: np.ndarray  # float (K + 1): estimated current conductance of each level on this tile
    drift_metric: float  # mean |read - nominal(decoded)| / spacing over used weight devices at level > 0
    reference_errors: int  # reference devices decoded to a level other than their known one


class Decoder(Protocol):
    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult: ...


@dataclass(frozen=True)
class _Tile:
    """The reading split the way every decoder needs it."""

    reads: np.ndarray  # float64, all devices
    weight: np.ndarray  # bool mask of weight devices
    ref_index: np.ndarray  # local indices of reference devices (G+ then G-)
    ref_level: np.ndarray  # their known levels

    @staticmethod
    def of(reading: ProbeReading, layout: TileLayout) -> _Tile:
        shape = (layout.rows, layout.cols)
        if reading.g_pos.shape != shape or reading.g_neg.shape != shape:
            raise ValueError("probe reading does not match the tile layout")
        cells = np.asarray(layout.reference_cells, dtype=np.int64)
        levels = np.asarray(layout.reference_levels, dtype=np.int64)
        weight = np.asarray(layout.weight_cells, dtype=bool).ravel()
        return _Tile(reads=reading.devices().astype(np.float64),
                     weight=np.concatenate([weight, weight]),
                     ref_index=np.concatenate([cells, cells + layout.rows * layout.cols]),
                     ref_level=np.concatenate([levels, levels]))

    def result(self, levels: np.ndarray, centers: np.ndarray, config: FirmwareConfig) -> DecodeResult:
        used = self.weight.copy()
        used[self.ref_index] = True
        levels = np.where(used, levels, 0).astype(np.int16)
        spacing = config.level_spacing_us
        scored = self.weight & (levels > 0)
        off = np.abs(self.reads[scored] - levels[scored] * spacing) / spacing
        return DecodeResult(levels=levels, used=used, centers_us=np.asarray(centers, dtype=np.float64),
                            drift_metric=float(off.mean()) if off.size else 0.0,
                            reference_errors=int((levels[self.ref_index] != self.ref_level).sum()))


class NearestMultipleDecoder:
    """The paper's rule: level = clip(round(read / spacing), 0, K); centers are the nominal levels."""

    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult:
        tile = _Tile.of(reading, layout)
        k = config.levels
        levels = np.clip(np.rint(tile.reads / config.level_spacing_us), 0, k)
        return tile.result(levels, config.nominal_conductance(np.arange(k + 1)), config)


def _isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted non-decreasing fit (pool adjacent violators); K is small, so a loop is fine."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for yi, wi in zip(y.tolist(), w.tolist()):
        blocks.append([yi, wi, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2, n2 = blocks.pop()
            m1, w1, n1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.concatenate([np.full(int(n), m) for m, _, n in blocks])


@dataclass(frozen=True)
class DriftAwareDecoder:
    """Snap each read to the nearest *drifted* level center of this tile.

    1. Start from the reference cells: per level, the median ratio read / nominal (a drift
       factor); levels without references interpolate it linearly in log(level); the factors are
       made non-decreasing in level (lower levels drift at least as fast: mean nu 0.1 near zero vs
       0.049 at g_max), which pools the references of levels that drift alike. Level 0 has no
       references: its center is the median of the weight reads below half of level 1's.
    2. ``em_iterations`` of expectation-maximisation on a histogram of the weight reads above the
       0|1 cut: a mixture of K Gaussians in asinh(G / (spread_knee * g_max)), where a level's
       spread (programming noise 0.26 uS at 0 to 1.05 uS at g_max, drift spread proportional to
       G) is about the same for every level, so they share one width. It estimates how many
       devices sit at each level, so a crowded level does not drag a sparse neighbour's center
       (real layers hold far more small than large weights). Level 0 is the median below the cut.
    3. If the fitted populations of levels 1..K-1 are within ``balance_ratio`` of each other
       (the top level is left out: its read-back spreads widest, so the shared-width fit
       undercounts it), ``refine_iterations`` Lloyd steps follow: each center moves to the median
       of its cell, cut at midpoints in the same asinh scale (cells under ``min_cluster`` reads
       keep their center). With equally populated levels this is the sharper estimate (K = 8:
       0.2-0.5 points); with unequal ones the crowded levels' overflow drags the cell medians
       (K = 8 after 1 h, populations falling 12x from level 1 to K: 20% wrong vs 11% for the fit).
    4. Decision boundaries: the plain midpoint between adjacent centers (given the true class
       medians it is within 0.05 points of the best cut for every pair but 0|1, measured), except
       where the smoothed histogram of the weight reads has a clear valley between two centers
       (density below ``valley_depth`` times the lower of the two center densities): the valley
       is taken. Level 0 is far narrower than level 1 (half its devices read exactly 0), so its
       best cut lies well below the midpoint (0.4 points of error at K = 8 after a year).

    Steps 2-4 learn from the tile's own histogram, which needs devices: a tile with fewer than
    ``min_devices`` weight devices (a small layer) keeps the reference centers and midpoints
    (measured at K = 8 after 1 h: with 144 devices the fit would add 3 points of error).
    """

    em_iterations: int = 10  # Gaussian-mixture steps after the reference-based start
    refine_iterations: int = 16  # Lloyd steps when the levels are about equally populated (step 3)
    balance_ratio: float = 1.25  # largest / smallest fitted population of levels 1..K-1 for Lloyd
    spread_knee: float = 0.4  # fraction of g_max where a level's spread turns from constant to proportional
    min_devices: int = 4096  # fewer weight devices: reference centers and midpoints only
    min_cluster: int = 8  # a level with fewer weight reads keeps its center
    valley_boundaries: bool = True  # use density valleys where they are clear
    valley_depth: float = 0.5  # valley density / lower center density below which a valley counts
    bins_per_level: int = 60  # valley histogram bins per nominal level spacing (the EM uses 100)
    smoothing_bins: float = 3.0  # std of the Gaussian smoothing kernel, in bins

    def __post_init__(self) -> None:
        if min(self.em_iterations, self.refine_iterations) < 0 or self.min_cluster < 1 or self.bins_per_level < 4:
            raise ValueError("iterations >= 0, min_cluster >= 1 and bins_per_level >= 4 required")
        if self.balance_ratio < 1:
            raise ValueError('"balance_ratio" must be >= 1')
        if self.spread_knee <= 0 or self.smoothing_bins <= 0 or not 0 < self.valley_depth <= 1:
            raise ValueError("spread_knee > 0, smoothing_bins > 0 and valley_depth in (0, 1] required")

    # --- step 1 ------------------------------------------------------------------------------
    def initial_centers(self, tile: _Tile, weights: np.ndarray, config: FirmwareConfig) -> np.ndarray:
        k_max, spacing = config.levels, config.level_spacing_us
        ks = np.arange(1, k_max + 1)
        factor, count = np.ones(k_max), np.zeros(k_max)
        known = (tile.ref_level >= 1) & (tile.ref_level <= k_max)
        ref_reads, ref_levels = tile.reads[tile.ref_index][known], tile.ref_level[known]
        for k in np.unique(ref_levels):
            factor[k - 1] = np.median(ref_reads[ref_levels == k]) / (k * spacing)
            count[k - 1] = np.count_nonzero(ref_levels == k)
        have = count > 0
        if have.any():  # no references at all: start from the nominal levels
            factor = np.interp(np.log(ks), np.log(ks[have]), factor[have])  # flat beyond the ends
            factor = _isotonic(factor, np.where(have, count, 1e-3))
        centers = np.concatenate([[0.0], ks * spacing * np.maximum(factor, 1e-3)])
        low = weights[weights < centers[1] / 2]
        centers[0] = float(np.median(low)) if low.size else 0.0
        return self._increasing(centers, spacing)

    @staticmethod
    def _increasing(centers: np.ndarray, spacing: float) -> np.ndarray:
        step = 1e-3 * spacing * np.arange(centers.size)  # keeps every cell non-empty in width
        return np.maximum.accumulate(centers - step) + step

    # --- step 4: boundaries -------------------------------------------------------------------
    def _histogram(self, weights: np.ndarray, spacing: float) -> tuple[np.ndarray, float] | None:
        if not self.valley_boundaries:
            return None
        width = spacing / self.bins_per_level
        counts = np.bincount(np.maximum(weights / width, 0).astype(np.int64)).astype(np.float64)
        half = int(np.ceil(4 * self.smoothing_bins))
        kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / self.smoothing_bins) ** 2)
        return np.convolve(counts, kernel / kernel.sum(), mode="same"), width

    def boundaries(self, centers: np.ndarray, histogram: tuple[np.ndarray, float] | None,
                   knee_us: float | None = None) -> np.ndarray:
        """Cuts between adjacent centers: midpoints (in asinh(G / knee) if given), or clear valleys."""
        if knee_us is None:
            bounds = (centers[1:] + centers[:-1]) / 2
        else:
            t = np.arcsinh(centers / knee_us)
            bounds = knee_us * np.sinh((t[1:] + t[:-1]) / 2)
        if histogram is None:
            return bounds
        density, width = histogram
        index = np.clip((centers / width).astype(np.int64), 0, density.size - 1)
        for k in range(bounds.size):
            lo, hi = index[k], index[k + 1]
            if hi - lo < 4:
                continue
            j = lo + int(np.argmin(density[lo:hi + 1]))
            if density[j] < self.valley_depth * min(density[lo], density[hi]):
                bounds[k] = (j + 0.5) * width
        return bounds

    # --- step 2: the mixture fit ---------------------------------------------------------------
    def _mixture(self, weights: np.ndarray, centers: np.ndarray, cut: float, spacing: float,
                 knee: float) -> tuple[np.ndarray, np.ndarray]:
        """EM in asinh scale: refined centers and the estimated device count of levels 1..K.

        Level 0 stays out of the mixture: clamped at 0 S, with read noise as large as its
        conductance, it is a spike plus a long tail that a Gaussian would misfit (a level-1
        component then slides down into that tail). Its devices are the reads below ``cut``.
        """
        k_max, below = centers.size - 1, int(np.searchsorted(weights, cut))
        if below >= self.min_cluster:
            centers = centers.copy()
            centers[0] = weights[(below - 1) // 2]
        upper = weights[below:]
        if upper.size < self.min_cluster * k_max:
            return centers, np.full(k_max, upper.size / k_max)
        width = spacing / 100
        y = knee * np.arcsinh(upper / knee)
        counts = np.bincount(np.maximum(y / width, 0).astype(np.int64)).astype(np.float64)
        x = (np.arange(counts.size) + 0.5) * width
        ks = np.arange(1, k_max + 1)
        mu = knee * np.arcsinh(centers[1:] / knee)
        sigma = 0.3 * (np.median(np.diff(mu)) if k_max > 1 else mu[0])
        share = np.full(k_max, 1.0 / k_max)
        for _ in range(self.em_iterations):
            log_p = -0.5 * ((x[None, :] - mu[:, None]) / sigma) ** 2 + np.log(share)[:, None]
            p = np.exp(log_p - log_p.max(axis=0))
            mass = p / p.sum(axis=0) * counts  # (level, bin): expected devices of each level per bin
            n = mass.sum(axis=1)
            mean = (mass * x).sum(axis=1) / np.maximum(n, 1e-12)
            sigma = max(np.sqrt((mass * (x[None, :] - mean[:, None]) ** 2).sum() / upper.size), width)
            share = np.maximum(n / upper.size, 1e-9)
            # Weighted medians, not means: drift makes every level's read-back skewed upward.
            cum = np.cumsum(mass, axis=1)
            median = knee * np.sinh(x[np.minimum((cum < cum[:, -1:] / 2).sum(axis=1), x.size - 1)] / knee)
            g = np.where(n >= self.min_cluster, median, centers[1:])
            factor = _isotonic(g / (ks * spacing), np.maximum(n, 1e-9))
            centers = self._increasing(np.concatenate([[centers[0]], ks * spacing * factor]), spacing)
            mu = knee * np.arcsinh(centers[1:] / knee)
        return centers, share * upper.size

    # --- the whole -----------------------------------------------------------------------------
    def estimate(self, tile: _Tile, config: FirmwareConfig) -> tuple[np.ndarray, np.ndarray]:
        """Level centers and decision boundaries for this tile."""
        spacing, knee = config.level_spacing_us, self.spread_knee * config.g_max_us
        weights = np.sort(tile.reads[tile.weight])
        centers = self.initial_centers(tile, weights, config)
        if weights.size < self.min_devices:  # too thin a histogram to learn from: references only
            return centers, self.boundaries(centers, None)
        histogram = self._histogram(weights, spacing)
        population = np.ones(centers.size - 1)
        if self.em_iterations:
            centers, population = self._mixture(weights, centers, self.boundaries(centers, histogram)[0], spacing, knee)
        inner = population[:-1] if population.size > 2 else population  # see step 3
        balanced = inner.max() <= self.balance_ratio * inner.min()
        for _ in range(self.refine_iterations if balanced else 0):
            cuts = self.boundaries(centers, histogram, knee)
            edges = np.concatenate([[0], np.searchsorted(weights, cuts), [weights.size]])
            lo, n = edges[:-1], np.diff(edges)
            mid_lo = np.minimum(lo + (n - 1) // 2, weights.size - 1)
            mid_hi = np.minimum(lo + n // 2, weights.size - 1)
            medians = (weights[mid_lo] + weights[mid_hi]) / 2
            centers = self._increasing(np.where(n >= self.min_cluster, medians, centers), spacing)
        return centers, self.boundaries(centers, histogram)

    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult:
        tile = _Tile.of(reading, layout)
        centers, bounds = self.estimate(tile, config)
        levels = np.searchsorted(bounds, tile.reads, side="right")
        return tile.result(levels, centers, config)


def make_decoder(name: str) -> Decoder:
    """``"nearest"`` (the paper's rule) or ``"drift_aware"``."""
    if name == "nearest":
        return NearestMultipleDecoder()
    if name == "drift_aware":
        return DriftAwareDecoder()
    raise ValueError(f"unknown decoder {name!r}: expected 'nearest' or 'drift_aware'")
