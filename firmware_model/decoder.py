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

import weakref
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from firmware_model.interface import FirmwareConfig, ProbeReading, TileLayout

__all__ = ["DecodeResult", "Decoder", "NearestMultipleDecoder", "DriftAwareDecoder", "make_decoder"]


@dataclass(frozen=True, eq=False)
class DecodeResult:
    """What a decoder concluded about one tile, in local device order (G+ array, then G-)."""

    levels: np.ndarray  # int16 (2 * rows * cols): decoded level, 0 for unused devices
    used: np.ndarray  # bool (2 * rows * cols): devices of weight cells and of reference cells (read-only)
    centers_us: np.ndarray  # float (K + 1): estimated current conductance of each level on this tile
    drift_metric: float  # mean |read - nominal(decoded)| / spacing over used weight devices at level > 0
    reference_errors: int  # reference devices decoded to a level other than their known one


class Decoder(Protocol):
    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult: ...


@dataclass(frozen=True, eq=False)
class _Ascending:
    """An ascending index array, held as its runs of consecutive indices where they are long:
    copying a few slices is far cheaper than a fancy index over a mostly full tile, with the
    same result (``take(values) == values[index]``, ``put(target, values)``: ``target[index] = values``)."""

    index: np.ndarray
    runs: tuple[tuple[int, int], ...] | None  # (first index, length) per run; None: fancy indexing

    @staticmethod
    def of(index: np.ndarray) -> _Ascending:
        index = np.asarray(index, dtype=np.int64)
        runs = None
        if index.size:
            breaks = np.flatnonzero(np.diff(index) != 1) + 1
            starts, ends = np.concatenate([[0], breaks]), np.concatenate([breaks, [index.size]])
            if index.size >= 256 * starts.size:  # long runs: the slices' own cost is small
                runs = tuple((int(index[a]), int(b - a)) for a, b in zip(starts, ends))
        return _Ascending(index, runs)

    def pieces(self, values: np.ndarray) -> list[np.ndarray]:
        """``values[index]`` in pieces, to be concatenated (slices are views: nothing copied yet)."""
        if self.runs is None:
            return [values[self.index]]
        return [values[first:first + length] for first, length in self.runs]

    def take(self, values: np.ndarray) -> np.ndarray:
        return values[self.index] if self.runs is None else np.concatenate(self.pieces(values))

    def put(self, target: np.ndarray, values: np.ndarray) -> None:
        if self.runs is None:
            target[self.index] = values
            return
        at = 0
        for first, length in self.runs:
            target[first:first + length] = values[at:at + length]
            at += length


@dataclass(frozen=True, eq=False)
class _LayoutIndex:
    """What every decode of one tile needs from the layout alone, computed once per layout.

    The decoders work on the *used* devices only (weight and reference devices; every other
    device decodes to 0 whatever it reads): ``used_index`` lists them in local order, and the
    weight and reference devices are addressed by their position in that list.
    """

    cells: int  # rows * cols: local devices 0..cells-1 are the G+ array, cells..2*cells-1 the G- array
    used: np.ndarray  # bool mask over all local devices (read-only: every result of the layout shares it)
    used_index: _Ascending  # local indices of the used devices
    used_pos: _Ascending  # the G+ ones (cells of the G+ array)
    used_neg: _Ascending  # the G- ones, as cells of the G- array
    weight_at: _Ascending  # positions in used_index of the weight devices (ascending local order)
    ref_at: np.ndarray  # positions in used_index of the reference devices (G+ then G-, layout order)
    ref_level: np.ndarray  # their known levels

    @staticmethod
    def build(layout: TileLayout) -> _LayoutIndex:
        n = layout.rows * layout.cols
        cells = np.asarray(layout.reference_cells, dtype=np.int64)
        levels = np.asarray(layout.reference_levels, dtype=np.int64)
        weight = np.asarray(layout.weight_cells, dtype=bool).ravel()
        if weight.size != n:
            raise ValueError("the layout's weight cells do not match its rows x cols")
        weight = np.concatenate([weight, weight])
        ref_index = np.concatenate([cells, cells + n])
        used = weight.copy()
        used[ref_index] = True  # numpy's indexing rules, as when the whole reading was indexed
        used.flags.writeable = False
        used_index = np.flatnonzero(used)
        split = int(np.searchsorted(used_index, n))
        ref_local = np.arange(2 * n)[ref_index]  # negative indices resolved the same way
        return _LayoutIndex(cells=n, used=used, used_index=_Ascending.of(used_index),
                            used_pos=_Ascending.of(used_index[:split]), used_neg=_Ascending.of(used_index[split:] - n),
                            weight_at=_Ascending.of(np.searchsorted(used_index, np.flatnonzero(weight))),
                            ref_at=np.searchsorted(used_index, ref_local),
                            ref_level=np.concatenate([levels, levels]))


_LAYOUT_INDEX: weakref.WeakKeyDictionary[TileLayout, _LayoutIndex] = weakref.WeakKeyDictionary()
"""Per layout (by identity): a layout is configuration, never changed once the firmware holds it."""


def _layout_index(layout: TileLayout) -> _LayoutIndex:
    index = _LAYOUT_INDEX.get(layout)
    if index is None:
        index = _LAYOUT_INDEX[layout] = _LayoutIndex.build(layout)
    return index


@dataclass(frozen=True, eq=False)
class _Tile:
    """The reading split the way every decoder needs it, for the used devices only."""

    index: _LayoutIndex
    reads: np.ndarray  # float64, the used devices (index.used_index order)
    weights: np.ndarray  # float64, the weight devices' reads (ascending local order)
    ref_reads: np.ndarray  # float64, the reference devices' reads (G+ then G-)

    @property
    def ref_level(self) -> np.ndarray:
        return self.index.ref_level

    @staticmethod
    def of(reading: ProbeReading, layout: TileLayout) -> _Tile:
        shape = (layout.rows, layout.cols)
        if reading.g_pos.shape != shape or reading.g_neg.shape != shape:
            raise ValueError("probe reading does not match the tile layout")
        index = _layout_index(layout)
        # The reads of the used devices only: never the whole tile (most of a tile may be unused).
        reads = np.concatenate(index.used_pos.pieces(reading.g_pos.reshape(-1)) +
                               index.used_neg.pieces(reading.g_neg.reshape(-1))).astype(np.float64, copy=False)
        return _Tile(index, reads, index.weight_at.take(reads), reads[index.ref_at])

    def result(self, levels: np.ndarray, centers: np.ndarray, config: FirmwareConfig) -> DecodeResult:
        """``levels``: the decoded level of every used device (``reads`` order)."""
        index = self.index
        levels = np.asarray(levels).astype(np.int16, copy=False)
        full = np.zeros(index.used.size, dtype=np.int16)
        index.used_index.put(full, levels)
        spacing = config.level_spacing_us
        weight_levels = index.weight_at.take(levels)
        # |read - level * spacing| / spacing element by element (in place), then the scored ones:
        # the same values in the same order as selecting them first.
        off = weight_levels * spacing
        np.subtract(self.weights, off, out=off)
        np.abs(off, out=off)
        np.divide(off, spacing, out=off)
        off = off[weight_levels > 0]
        return DecodeResult(levels=full, used=index.used, centers_us=np.asarray(centers, dtype=np.float64),
                            drift_metric=float(off.mean()) if off.size else 0.0,
                            reference_errors=int((levels[index.ref_at] != index.ref_level).sum()))


class NearestMultipleDecoder:
    """The paper's rule: level = clip(round(read / spacing), 0, K); centers are the nominal levels."""

    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult:
        tile = _Tile.of(reading, layout)
        k = config.levels
        levels = np.clip(np.rint(tile.reads / config.level_spacing_us), 0, k)
        return tile.result(levels, config.nominal_conductance(np.arange(k + 1)), config)


def _levels_of(reads: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``np.searchsorted(bounds, reads, side="right")`` as int16: the number of bounds at or below
    each read (NaN reads above every bound, as searchsorted sorts NaN last).

    For sorted bounds that count is a sum of K comparisons, which vectorise; searchsorted's binary
    search over unsorted reads does not (about 10x slower on a 256 x 256 tile). Unsorted or NaN
    bounds (never produced here) take searchsorted itself.
    """
    if bounds.size >= np.iinfo(np.int16).max or np.isnan(bounds).any() or (bounds[1:] < bounds[:-1]).any():
        return np.searchsorted(bounds, reads, side="right").astype(np.int16)
    levels = np.zeros(reads.shape, dtype=np.int16)
    at_or_above = np.empty(reads.shape, dtype=bool)
    for bound in bounds:
        np.greater_equal(reads, bound, out=at_or_above)
        levels += at_or_above
    nan = np.isnan(reads)
    if nan.any():
        levels[nan] = bounds.size
    return levels


def _bin_of(values: np.ndarray, width: float) -> np.ndarray:
    """Each value's histogram bin: int(max(value / width, 0))."""
    return np.maximum(values / width, 0).astype(np.int64)


def _sorted_bin_counts(values: np.ndarray, width: float) -> np.ndarray:
    """``np.bincount(_bin_of(values, width))`` for ``values`` sorted ascending, without binning every value.

    A value's bin never falls as the value grows (a correctly rounded division, max and truncation
    are all monotone), so every bin is one run of the sorted values. Each run's start is found by
    binary search near ``bin * width`` and then moved, one value at a time, until the bins of the
    values on both sides of it say exactly that it is the start: the counts are bincount's. Where
    that does not settle at once (many equal values at a bin's edge), or for non-finite values,
    bincount itself counts.
    """
    n = values.size
    if n == 0 or not (np.isfinite(values[0]) and np.isfinite(values[-1])):
        return np.bincount(_bin_of(values, width))
    top = int(_bin_of(values[-1:], width)[0])  # the last value's bin is the largest
    if top > 4 * n:
        return np.bincount(_bin_of(values, width))
    bins = np.arange(1, top + 1)
    starts = np.searchsorted(values, bins * width)  # where bins 1..top start, up to rounding
    for _ in range(8):
        back = (starts > 0) & (_bin_of(values[np.maximum(starts - 1, 0)], width) >= bins)
        ahead = (starts < n) & (_bin_of(values[np.minimum(starts, n - 1)], width) < bins)
        if not (back.any() or ahead.any()):  # exactly the first value of each bin
            return np.diff(np.concatenate([[0], starts, [n]]))
        starts = starts - back + ahead
    return np.bincount(_bin_of(values, width))


def _sorted_median(values: np.ndarray) -> float:
    """``np.median(values)`` of values sorted ascending and free of NaN: the middle value, or the
    mean (a + b) / 2 of the middle two, read off without np.median's partition. Values that
    compare equal are the same double except +0 and -0, so where zeros sit in the middle and a -0
    is among them (np.median would return whichever sign its partition puts there), np.median decides."""
    m = values.size
    a, b = values[(m - 1) // 2], values[m // 2]
    if (a == 0 or b == 0) and np.signbit(values[np.searchsorted(values, 0.0):np.searchsorted(values, 0.0, "right")]).any():
        return float(np.median(values))
    return float((a + b) / 2)  # m odd: a == b and (a + a) / 2 == a


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
        factor = np.ones(k_max)
        known = (tile.ref_level >= 1) & (tile.ref_level <= k_max)
        ref_reads, ref_levels = tile.ref_reads[known], tile.ref_level[known]
        n = np.bincount(ref_levels - 1, minlength=k_max)  # references of each level 1..K
        count, have = n.astype(np.float64), n > 0
        if np.isnan(ref_reads).any():  # np.median's NaN rule, level by level
            for k in np.flatnonzero(have) + 1:
                factor[k - 1] = np.median(ref_reads[ref_levels == k]) / (k * spacing)
        elif have.any():
            # Every level's median at once: sorted by (level, read), a level's reads form one run,
            # and its median is (a + b) / 2 of the run's middle pair (a == b for an odd count), as
            # np.median computes it (a zero's sign aside, which the max(., 1e-3) below erases).
            ordered = ref_reads[np.lexsort((ref_reads, ref_levels))]
            start = np.cumsum(n) - n
            lo, hi = (start + (n - 1) // 2)[have], (start + n // 2)[have]
            factor[have] = (ordered[lo] + ordered[hi]) / 2 / (ks[have] * spacing)
        if have.any():  # no references at all: start from the nominal levels
            factor = np.interp(np.log(ks), np.log(ks[have]), factor[have])  # flat beyond the ends
            factor = _isotonic(factor, np.where(have, count, 1e-3))
        centers = np.concatenate([[0.0], ks * spacing * np.maximum(factor, 1e-3)])
        cut = centers[1] / 2
        low = weights[:np.searchsorted(weights, cut) if cut == cut else 0]  # sorted: the weights < cut (none < NaN)
        centers[0] = _sorted_median(low) if low.size else 0.0
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
        counts = _sorted_bin_counts(weights, width).astype(np.float64)  # weights are sorted
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
        wide = np.flatnonzero(index[1:] - index[:-1] >= 4)  # pairs with room for a valley between them
        if wide.size:
            # All pairs at once: each pair's bins lo..hi as one row, padded with +inf (never the first minimum).
            lo, hi = index[wide], index[wide + 1]
            span = np.arange(int((hi - lo).max()) + 1)
            window = np.where(span <= (hi - lo)[:, None],
                              density[np.minimum(lo[:, None] + span, density.size - 1)], np.inf)
            j = lo + np.argmin(window, axis=1)  # the first lowest bin between the two centers
            valley = density[j] < self.valley_depth * np.minimum(density[lo], density[hi])
            bounds[wide[valley]] = (j[valley] + 0.5) * width
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
        # y is sorted as upper is, unless asinh's rounding broke a tie the other way (checked).
        counts = (_sorted_bin_counts(y, width) if bool(np.all(y[1:] >= y[:-1])) else
                  np.bincount(_bin_of(y, width))).astype(np.float64)
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
        weights = np.sort(tile.weights)
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
            moved = self._increasing(np.where(n >= self.min_cluster, medians, centers), spacing)
            if moved.tobytes() == centers.tobytes():  # a fixed point: every further step returns it again
                break
            centers = moved
        return centers, self.boundaries(centers, histogram)

    def decode(self, reading: ProbeReading, layout: TileLayout, config: FirmwareConfig) -> DecodeResult:
        tile = _Tile.of(reading, layout)
        centers, bounds = self.estimate(tile, config)
        return tile.result(_levels_of(tile.reads, bounds), centers, config)


def make_decoder(name: str) -> Decoder:
    """``"nearest"`` (the paper's rule) or ``"drift_aware"``."""
    if name == "nearest":
        return NearestMultipleDecoder()
    if name == "drift_aware":
        return DriftAwareDecoder()
    raise ValueError(f"unknown decoder {name!r}: expected 'nearest' or 'drift_aware'")
