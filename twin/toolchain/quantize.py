"""Differential-pair weight quantization for the PCM twin.

Each weight is stored on two PCM devices, ``w = k_plus * step_pos - k_minus * step_neg``
with integer ``k_plus, k_minus`` in ``0..levels``. The two step sizes are tuned with
simulated annealing (SA) on the L1 quantization error, as in arXiv 2310.00337, but with
a schedule long enough to converge. See docs/quantization.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "QuantSteps", "allowed_values", "quantize", "dequantize", "quantization_error",
    "AnnealSchedule", "AnnealResult", "anneal_steps", "uniform_steps",
    "kmeans_codebook_error", "QuantReport", "compare_quantizers",
]

_INT16_MAX = int(np.iinfo(np.int16).max)  # k arrays are int16


@dataclass(frozen=True)
class QuantSteps:
    """Conductance step of the positive and negative device, and levels above zero (K)."""

    step_pos: float
    step_neg: float
    levels: int

    def __post_init__(self) -> None:
        for name in ("step_pos", "step_neg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))  # normalise numpy scalars
        lv = self.levels
        if isinstance(lv, bool) or not isinstance(lv, (int, np.integer)) or not 0 < lv <= _INT16_MAX:
            raise ValueError(f"levels must be an integer in 1..{_INT16_MAX}, got {lv!r}")
        object.__setattr__(self, "levels", int(lv))


def _pair_grid(levels: int) -> tuple[np.ndarray, np.ndarray]:
    """All (levels+1)^2 (k_plus, k_minus) pairs as flat float64 arrays."""
    k = np.arange(levels + 1, dtype=np.float64)
    kp, km = np.meshgrid(k, k, indexing="ij")
    return kp.ravel(), km.ravel()


def allowed_values(steps: QuantSteps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted unique realizable weights and the (k_plus, k_minus) pair chosen for each.

    Tie-break: when several pairs give the same value (within a relative 1e-12 of the
    largest value), the pair with the smallest ``k_plus + k_minus`` wins (then smallest
    ``k_plus``). Least total conductance means less programming energy and, since that
    pair usually has one device at zero, fewer devices programmed.
    """
    kp, km = _pair_grid(steps.levels)
    # Same expression as dequantize(), so a value on a level round-trips bit-exactly.
    vals = kp * steps.step_pos - km * steps.step_neg
    total = kp + km
    order = np.lexsort((kp, total, vals))
    v = vals[order]
    tol = 1e-12 * steps.levels * max(steps.step_pos, steps.step_neg)
    new_group = np.empty(v.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = np.diff(v) > tol  # float sums of equal values may differ by an ulp
    gid = np.cumsum(new_group)
    # Within each group of equal values, order by cost and take the first.
    by_cost = order[np.lexsort((kp[order], total[order], gid))]
    firsts = np.r_[True, np.diff(gid) > 0]  # gid is already sorted
    chosen = by_cost[firsts]
    return vals[chosen], kp[chosen].astype(np.int16), km[chosen].astype(np.int16)


def _as_weights(w: np.ndarray) -> np.ndarray:
    x = np.asarray(w, dtype=np.float64)
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError("w must be a non-empty array of finite weights")
    return x


def quantize(w: np.ndarray, steps: QuantSteps) -> tuple[np.ndarray, np.ndarray]:
    """Nearest allowed value per element; returns int16 (k_plus, k_minus) of w's shape.

    Weights outside the realizable range clip to the extreme level. A weight exactly
    half-way between two levels goes to the lower one.
    """
    x = _as_weights(w)
    vals, kp, km = allowed_values(steps)
    idx = np.searchsorted(vals, x)
    hi = np.minimum(idx, vals.size - 1)
    lo = np.maximum(idx - 1, 0)
    pick = np.where(vals[hi] - x < x - vals[lo], hi, lo)
    return kp[pick], km[pick]


def dequantize(k_plus: np.ndarray, k_minus: np.ndarray, steps: QuantSteps) -> np.ndarray:
    """Weights realized by the pairs: k_plus * step_pos - k_minus * step_neg (float64)."""
    kp, km = np.asarray(k_plus, np.float64), np.asarray(k_minus, np.float64)
    return kp * steps.step_pos - km * steps.step_neg


def quantization_error(w: np.ndarray, steps: QuantSteps) -> tuple[float, float]:
    """(L1, L2) = (sum |w - q|, sqrt(sum (w - q)^2)): sums over all weights, not means."""
    x = _as_weights(w)
    r = x - dequantize(*quantize(x, steps), steps)
    return float(np.abs(r).sum()), float(np.sqrt(np.square(r).sum()))


def _sorted_l1(ws: np.ndarray, cs: np.ndarray, vals: np.ndarray) -> float:
    """L1 error of snapping sorted weights ``ws`` (prefix sums ``cs``) to sorted ``vals``.

    O(M log N) for M levels instead of O(N): each level owns the weights between its
    midpoints, and the |w - v| sum over a run of sorted weights follows from prefix sums.
    This is what makes thousands of SA iterations cheap.
    """
    n = ws.size
    b = np.empty(vals.size + 1, dtype=np.intp)
    b[0], b[-1] = 0, n
    b[1:-1] = np.searchsorted(ws, 0.5 * (vals[1:] + vals[:-1]))
    lo, hi = b[:-1], b[1:]
    p = np.clip(np.searchsorted(ws, vals), lo, hi)
    below = vals * (p - lo) - (cs[p] - cs[lo])
    above = (cs[hi] - cs[p]) - vals * (hi - p)
    return max(float(below.sum() + above.sum()), 0.0)  # clamp float cancellation


DEFAULT_LEVELS = 8
"""K, levels per device, as in arXiv 2310.00337 (``chip.levels`` takes its default from here)."""


@dataclass(frozen=True)
class AnnealSchedule:
    """SA schedule: geometric cooling T_i = t_start * (t_end/t_start)^(i/(iterations-1)).

    A move adds ``±T * U(0,1) * move_scale * max|w|`` to each step (the paper uses
    move_scale=0.01). After the first round, ``restarts`` more rounds re-heat from the
    best state so far. The run stops early once the best error has not improved by more
    than a relative ``rel_tol`` for ``patience`` iterations (counted across rounds).
    """

    # Defaults chosen by measurement (docs/quantization.md): many short cool-downs beat
    # a few long ones on the rugged L1 landscape, and t_start=1 mostly random-walks.
    iterations: int = 1000
    t_start: float = 0.3
    t_end: float = 1e-3
    move_scale: float = 0.01
    restarts: int = 39
    patience: int = 8000
    rel_tol: float = 1e-6

    def __post_init__(self) -> None:
        checks = {"iterations": self.iterations >= 1, "patience": self.patience >= 1,
                  "restarts": self.restarts >= 0, "t_start": self.t_start >= self.t_end,
                  "t_end": self.t_end > 0, "move_scale": self.move_scale > 0,
                  "rel_tol": self.rel_tol >= 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"{name} out of range: {getattr(self, name)!r}")

    def temperatures(self) -> np.ndarray:
        """Temperature of every iteration of one round."""
        if self.iterations == 1:
            return np.array([self.t_start])
        frac = np.arange(self.iterations) / (self.iterations - 1)
        return self.t_start * (self.t_end / self.t_start) ** frac


@dataclass(frozen=True, eq=False)  # eq=False: ndarray fields make == ambiguous
class AnnealResult:
    """Outcome of anneal_steps; errors are L1 sums. history: best L1 after each iteration."""

    steps: QuantSteps
    initial_steps: QuantSteps
    initial_error: float
    final_error: float
    iterations_run: int
    history: np.ndarray


def uniform_steps(w: np.ndarray, levels: int = DEFAULT_LEVELS) -> QuantSteps:
    """The paper's start: max|w| of each sign / levels.

    A sign with no weights borrows the other sign's step; all-zero weights get 1.0.
    """
    x = _as_weights(w)
    pos = float(x.max()) / levels if x.max() > 0 else 0.0
    neg = float(-x.min()) / levels if x.min() < 0 else 0.0
    pos, neg = pos or neg or 1.0, neg or pos or 1.0
    return QuantSteps(pos, neg, levels)


def anneal_steps(w: np.ndarray, levels: int = DEFAULT_LEVELS, schedule: AnnealSchedule = AnnealSchedule(),
                 seed: int = 0, *, start: QuantSteps | None = None) -> AnnealResult:
    """Tune (step_pos, step_neg) by SA on the L1 error; start defaults to uniform_steps.

    The best state seen (start included) is returned, so the result is never worse
    than the start. A sign with no weights keeps its start step.
    """
    x = _as_weights(w).ravel()
    init = uniform_steps(x, levels) if start is None else start
    if init.levels != levels:
        raise ValueError("start.levels must equal levels")
    rng = np.random.default_rng(seed)
    ws = np.sort(x)
    cs = np.concatenate(([0.0], np.cumsum(ws)))
    kp, km = _pair_grid(levels)

    def objective(dp: float, dn: float) -> float:
        return _sorted_l1(ws, cs, np.sort(kp * dp - km * dn))

    initial_error = quantization_error(x, init)[0]
    e0 = objective(init.step_pos, init.step_neg)
    # Only steps of a sign that has weights move; with no max|w| of its own the
    # absent sign has no natural scale and would just drift.
    move_pos, move_neg = bool((x > 0).any()), bool((x < 0).any())
    if e0 <= 0.0 or not (move_pos or move_neg):
        return AnnealResult(init, init, initial_error, initial_error, 0, np.empty(0))

    wmax = float(np.abs(x).max())
    move = schedule.move_scale * wmax
    floor = 1e-6 * wmax  # steps must stay > 0
    temps = schedule.temperatures()
    best = (init.step_pos, init.step_neg)
    best_e = 1.0  # objective / e0: normalising makes T dimensionless, so the same
    # schedule works whatever the weight scale or count (the paper's raw L1 does not).
    history: list[float] = []

    ref_e, ref_i, n_iter, stop = best_e, 0, 0, False
    for _ in range(1 + schedule.restarts):
        if stop:
            break
        (dp, dn), cur_e = best, best_e  # each round restarts from the best so far
        draws = rng.random((schedule.iterations, 5))
        for i, t in enumerate(temps):
            u = draws[i]
            cp, cn = dp, dn
            if move_pos:
                cp = dp + (1.0 if u[0] < 0.5 else -1.0) * t * u[2] * move
                cp = max(2.0 * floor - cp if cp < floor else cp, floor)  # reflect
            if move_neg:
                cn = dn + (1.0 if u[1] < 0.5 else -1.0) * t * u[3] * move
                cn = max(2.0 * floor - cn if cn < floor else cn, floor)
            e = objective(cp, cn) / e0
            delta = e - cur_e
            if delta <= 0.0 or u[4] < math.exp(-delta / t):  # Metropolis
                dp, dn, cur_e = cp, cn, e
                if e < best_e:
                    best, best_e = (cp, cn), e
            history.append(best_e * e0)
            n_iter += 1
            # Convergence is judged over the whole run, restarts included: a re-heated
            # round cannot beat the best while hot, so a per-round count would cut
            # every restart before it cools.
            if best_e < ref_e * (1.0 - schedule.rel_tol):
                ref_e, ref_i = best_e, n_iter
            stop = best_e == 0.0 or n_iter - ref_i >= schedule.patience
            if stop:
                break

    steps = QuantSteps(best[0], best[1], levels)
    final_error = quantization_error(x, steps)[0]
    if final_error > initial_error:  # fast objective can differ by rounding: stay safe
        steps, final_error = init, initial_error
    hist = np.asarray(history, dtype=np.float64)  # non-increasing: best only improves
    return AnnealResult(steps, init, initial_error, final_error, len(history), hist)


def kmeans_codebook_error(w: np.ndarray, n_levels: int, seed: int = 0) -> tuple[float, float]:
    """(L1, L2) of snapping each weight to its 1-D k-means centre.

    An unconstrained codebook of ``min(n_levels, distinct weights)`` values: a
    lower-bound-like reference the chip cannot realize (k-means minimises L2, not L1).
    """
    from sklearn.cluster import KMeans  # lazy: sklearn import is slow

    x = _as_weights(w).ravel()
    if n_levels < 1:
        raise ValueError("n_levels must be >= 1")
    k = min(int(n_levels), int(np.unique(x).size))
    km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x.reshape(-1, 1))
    r = x - km.cluster_centers_[km.labels_, 0]
    return float(np.abs(r).sum()), float(np.sqrt(np.square(r).sum()))


@dataclass(frozen=True)
class QuantReport:
    """L1/L2 errors (sums over weights) of SA steps, the uniform start, and k-means.

    ``kmeans_clusters`` is the number of distinct values the SA-quantized weights
    actually use; k-means gets that many clusters (capped by distinct weights).
    """

    levels: int
    n_weights: int
    sa_steps: QuantSteps
    uniform_steps: QuantSteps
    sa_l1: float
    sa_l2: float
    uniform_l1: float
    uniform_l2: float
    kmeans_l1: float
    kmeans_l2: float
    kmeans_clusters: int
    sa_distinct_used: int
    uniform_distinct_used: int
    sa_iterations: int

    def as_rows(self) -> list[dict]:
        """One dict per method: method, l1, l2, distinct_values, step_pos, step_neg."""
        def row(name: str, l1: float, l2: float, n: int, s: QuantSteps | None) -> dict:
            return {"method": name, "l1": l1, "l2": l2, "distinct_values": n,
                    "step_pos": s.step_pos if s else None,
                    "step_neg": s.step_neg if s else None}

        return [
            row("sa", self.sa_l1, self.sa_l2, self.sa_distinct_used, self.sa_steps),
            row("uniform", self.uniform_l1, self.uniform_l2, self.uniform_distinct_used,
                self.uniform_steps),
            row("kmeans", self.kmeans_l1, self.kmeans_l2, self.kmeans_clusters, None),
        ]


def _distinct_used(x: np.ndarray, steps: QuantSteps) -> int:
    return int(np.unique(dequantize(*quantize(x, steps), steps)).size)


def compare_quantizers(w: np.ndarray, levels: int = DEFAULT_LEVELS,
                       schedule: AnnealSchedule = AnnealSchedule(), seed: int = 0) -> QuantReport:
    """Run SA and both baselines on the same weights (seed drives SA and k-means)."""
    x = _as_weights(w).ravel()
    sa = anneal_steps(x, levels, schedule, seed)
    uni = uniform_steps(x, levels)
    n_sa = _distinct_used(x, sa.steps)
    sa_l1, sa_l2 = quantization_error(x, sa.steps)
    u_l1, u_l2 = quantization_error(x, uni)
    k_l1, k_l2 = kmeans_codebook_error(x, n_sa, seed)
    return QuantReport(
        levels=levels, n_weights=int(x.size), sa_steps=sa.steps, uniform_steps=uni,
        sa_l1=sa_l1, sa_l2=sa_l2, uniform_l1=u_l1, uniform_l2=u_l2,
        kmeans_l1=k_l1, kmeans_l2=k_l2, kmeans_clusters=min(n_sa, int(np.unique(x).size)),
        sa_distinct_used=n_sa, uniform_distinct_used=_distinct_used(x, uni),
        sa_iterations=sa.iterations_run,
    )
