"""The search core of ``twin optimize``: the least-energy value of one schedule parameter
(a correction ``interval`` in ns, a ``threshold``, ...) whose accuracy stays at or above a floor.

``evaluate(value) -> (min_accuracy, energy_j)`` is slow (one simulation per seed), so the search
is economical and reports exactly what it did. A value is *feasible* when its min_accuracy (min
over seeds of min over checkpoints) is ``>= floor``. Method and stopping rule:

1. **Coarse grid.** ``grid_points`` values from ``lo`` to ``hi`` inclusive (geometric for
   ``scale="log"``, evenly spaced for ``"linear"``); with ``integer=True`` they are rounded to
   ints (clamped into ``[ceil(lo), floor(hi)]``) and deduplicated. All are evaluated. Every
   evaluation is cached by value: ``evaluate`` is never called twice for the same value.
2. **Infeasible grid.** If no grid value is feasible the search stops ("no feasible value on the
   grid"); ``best`` is the evaluation with the highest min_accuracy.
3. **Bisection.** Otherwise take the least-energy feasible grid value ``f`` and its grid neighbour
   ``i`` on the lower-energy side (the next larger value when ``energy_decreases_with_value``,
   else the next smaller). Feasibility is *not* assumed monotone in the value (correcting more
   often can make accuracy worse); only the energy direction is used. If ``i`` exists and is
   infeasible, evaluate the midpoint of ``[f, i]`` (geometric ``sqrt(f*i)`` for log, arithmetic
   for linear, rounded for integer): feasible -> new ``f``, else new ``i``. Stop when the relative
   width (``max/min - 1`` for log, ``|f - i| / max(|f|, |i|)`` for linear) is below ``rel_tol``,
   when ``max_evaluations`` calls to ``evaluate`` have been made, or (integer) when the midpoint
   rounds onto an end of the bracket.
4. **Range edge.** If ``f`` is the grid's last value in the low-energy direction, nothing is
   extrapolated: the search stops with "optimum at the search range edge: widen hi" (or ``lo``).
   If ``i`` is feasible but costs more energy (energy not monotone) there is no bracket to refine.

The answer is the least-energy feasible evaluation seen overall (ties go to the value farther in
the low-energy direction), so it is always a value that was actually evaluated and met the floor.
Because feasibility may be non-monotone, a feasible island skipped by the grid can be missed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Callable, Literal

__all__ = ["Evaluation", "SearchResult", "search", "format_result", "result_to_json"]


@dataclass(frozen=True)
class Evaluation:
    """One evaluated parameter value (``value`` is an ``int`` when searching integers)."""

    value: float
    min_accuracy: float  # min over seeds of min over checkpoints
    energy_j: float  # the energy to minimise (mean over seeds)
    feasible: bool  # min_accuracy >= floor


@dataclass(frozen=True)
class SearchResult:
    """Outcome of :func:`search`; ``best`` is the least-energy feasible evaluation, or, when
    none is feasible, the evaluation with the highest min_accuracy ("best found")."""

    feasible: bool
    best: Evaluation
    floor: float
    evaluations: tuple[Evaluation, ...]  # in the order evaluated
    method: str
    stopped_because: str

    @property
    def margin(self) -> float:
        """``best.min_accuracy - floor`` (negative when infeasible)."""
        return self.best.min_accuracy - self.floor


def _check_inputs(lo: float, hi: float, floor: float, scale: str, grid_points: int,
                  max_evaluations: int, rel_tol: float) -> None:
    if scale not in ("log", "linear"):
        raise ValueError(f"scale must be 'log' or 'linear', got {scale!r}")
    for name, x in (("lo", lo), ("hi", hi), ("floor", floor), ("rel_tol", rel_tol)):
        if not math.isfinite(x):
            raise ValueError(f"{name} must be finite, got {x!r}")
    if not lo < hi:
        raise ValueError(f"lo must be < hi, got lo={lo!r}, hi={hi!r}")
    if scale == "log" and lo <= 0:
        raise ValueError(f"lo must be > 0 for scale='log', got lo={lo!r}")
    if grid_points < 2:
        raise ValueError(f"grid_points must be >= 2, got {grid_points!r}")
    if max_evaluations < grid_points:
        raise ValueError(f"max_evaluations must be >= grid_points ({grid_points}), "
                         f"got {max_evaluations!r}")
    if rel_tol <= 0:
        raise ValueError(f"rel_tol must be > 0, got {rel_tol!r}")


def search(evaluate: Callable[[float], tuple[float, float]], lo: float, hi: float, floor: float,
           *, scale: Literal["log", "linear"] = "log", energy_decreases_with_value: bool = True,
           grid_points: int = 6, max_evaluations: int = 12, rel_tol: float = 0.05,
           integer: bool = False) -> SearchResult:
    """Least-energy value in ``[lo, hi]`` with ``min_accuracy >= floor``: coarse grid, then
    bisection towards lower energy (see the module docstring for the exact method and stopping
    rule). ``evaluate`` is called at most ``max_evaluations`` times, never twice per value."""
    _check_inputs(lo, hi, floor, scale, grid_points, max_evaluations, rel_tol)
    log = scale == "log"
    ilo, ihi = math.ceil(lo), math.floor(hi)
    if integer and ilo >= ihi:
        raise ValueError(f"lo..hi must contain at least two integers, got lo={lo!r}, hi={hi!r}")

    def snap(x: float) -> float:
        return min(max(int(round(x)), ilo), ihi) if integer else x

    cache: dict[float, Evaluation] = {}
    order: list[Evaluation] = []

    def run(v: float) -> Evaluation:
        if v in cache:
            return cache[v]
        acc, energy = evaluate(v)
        acc, energy = float(acc), float(energy)
        if math.isnan(acc) or not math.isfinite(energy):
            raise ValueError(f"evaluate({v!r}) returned min_accuracy={acc!r}, energy_j={energy!r}")
        cache[v] = ev = Evaluation(v, acc, energy, acc >= floor)
        order.append(ev)
        return ev

    n = grid_points - 1
    raw = [lo * (hi / lo) ** (k / n) if log else lo + (hi - lo) * k / n for k in range(n + 1)]
    raw[0], raw[-1] = lo, hi
    grid = sorted({snap(x): None for x in raw})
    for v in grid:
        run(v)

    sign = 1 if energy_decreases_with_value else -1  # +1: larger values cost less

    def least_energy(evs: list[Evaluation]) -> Evaluation:
        return min(evs, key=lambda e: (e.energy_j, -sign * e.value))

    def width(a: float, b: float) -> float:
        a, b = sorted((a, b))
        return b / a - 1 if log else (b - a) / max(abs(a), abs(b))

    feasible_grid = [cache[v] for v in grid if cache[v].feasible]
    n_grid = len(order)
    side = "larger" if energy_decreases_with_value else "smaller"
    refined = " No bisection was run (no bracket to refine)."
    if not feasible_grid:
        stopped = "no feasible value on the grid"
    else:
        f = least_energy(feasible_grid).value
        k = grid.index(f) + sign
        if not 0 <= k < len(grid):
            stopped = f"optimum at the search range edge: widen {'hi' if sign > 0 else 'lo'}"
        elif cache[grid[k]].feasible:
            stopped = ("the lower-energy grid neighbour is feasible but costs more energy "
                       "(energy not monotone): no bracket to refine")
        else:
            i = grid[k]
            refined = f" Bisection started from the bracket [{min(f, i):g}, {max(f, i):g}]."
            while True:
                if width(f, i) < rel_tol:
                    stopped = "bracket narrower than rel_tol"
                    break
                if len(order) >= max_evaluations:
                    stopped = "budget exhausted"
                    break
                m = snap(math.sqrt(f * i) if log else (f + i) / 2)
                if m in (f, i):
                    stopped = "bracket cannot be split further at integer resolution"
                    break
                if run(m).feasible:
                    f = m
                else:
                    i = m

    evs = list(order)
    feas = [e for e in evs if e.feasible]
    best = least_energy(feas) if feas else max(evs, key=lambda e: e.min_accuracy)
    method = (
        f"Coarse {scale} grid of {len(grid)} {'integer ' if integer else ''}values over "
        f"[{lo:g}, {hi:g}] ({n_grid} evaluations), then bisection "
        f"({'geometric' if log else 'arithmetic'} midpoint) between the least-energy feasible grid "
        f"value and its infeasible grid neighbour on the lower-energy ({side}-value) side, until "
        f"the bracket's relative width fell below rel_tol={rel_tol:g} or {max_evaluations} "
        f"evaluations were spent ({len(evs) - n_grid} bisection evaluations made).{refined} "
        f"Feasible means min accuracy over seeds and checkpoints >= {floor:g}; feasibility was not "
        f"assumed monotone and nothing was extrapolated beyond the range. The answer is the "
        f"least-energy feasible value actually evaluated. Stopped: {stopped}.")
    return SearchResult(bool(feas), best, floor, tuple(evs), method, stopped)


def format_result(result: SearchResult, parameter: str,
                  unit_formatter: Callable[[float], str] = str) -> str:
    """Plain-text report: verdict first, then the chosen value, stopping reason and all trials."""
    b, fmt = result.best, unit_formatter
    if result.feasible:
        head = (f"feasible: {parameter} = {fmt(b.value)} is the least-energy value found with "
                f"min accuracy >= {result.floor:.4f}")
    else:
        head = (f"infeasible: no evaluated {parameter} reached the accuracy floor "
                f"{result.floor:.4f}; best found {parameter} = {fmt(b.value)}")
    lines = [
        head,
        f"  {parameter}: {fmt(b.value)}",
        f"  energy: {b.energy_j:.6g} J",
        f"  min accuracy: {b.min_accuracy:.4f} (floor {result.floor:.4f}, "
        f"margin {result.margin:+.4f})",
        f"  evaluations: {len(result.evaluations)}",
        f"  stopped because: {result.stopped_because}",
        "",
    ]
    rows = [(str(k), fmt(e.value), f"{e.min_accuracy:.4f}", f"{e.energy_j:.6g}",
             "yes" if e.feasible else "no", "<-" if e == b else "")
            for k, e in enumerate(result.evaluations, 1)]
    header = ("#", parameter, "min accuracy", "energy (J)", "feasible", "")
    widths = [max(len(r[c]) for r in [header, *rows]) for c in range(len(header))]
    for r in [header, *rows]:
        lines.append("  ".join(x.ljust(w) for x, w in zip(r, widths)).rstrip())
    return "\n".join(lines)


def result_to_json(result: SearchResult, parameter: str) -> dict[str, Any]:
    """A JSON-able dict of the whole result (evaluations in the order evaluated)."""
    return {
        "parameter": parameter,
        "feasible": result.feasible,
        "floor": result.floor,
        "best": asdict(result.best),
        "margin": result.margin,
        "n_evaluations": len(result.evaluations),
        "stopped_because": result.stopped_because,
        "method": result.method,
        "evaluations": [asdict(e) for e in result.evaluations],
    }
