"""Figures of the compare and sweep reports: the Pareto plot, accuracy curves per policy, and
per-factor effect plots (mean +- standard error at each level)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.report.figures import time_axis
from twin.report.plots import plt

__all__ = ["Point", "pareto_front", "pareto_figure", "curves_figure", "effect_figure"]


@dataclass(frozen=True)
class Point:
    """One policy or sweep configuration: maintenance energy per day (J/day) and an accuracy (fraction)."""

    label: str
    energy_per_day_j: float
    accuracy: float
    accuracy_err: float  # the error bar (fraction): std or standard error, as the caption says
    tag: str = ""  # a short name drawn beside the point when the label is long (the legend pairs them)

    @property
    def mark(self) -> str:
        return self.tag or self.label

    @property
    def legend(self) -> str:
        return f"{self.tag}: {self.label}" if self.tag else self.label


def pareto_front(points: list[Point]) -> list[Point]:
    """The points no other point beats on both axes (less energy and higher accuracy, or equal on
    one and better on the other), by increasing energy."""
    front = []
    for p in points:
        dominated = any((q.energy_per_day_j <= p.energy_per_day_j and q.accuracy >= p.accuracy)
                        and (q.energy_per_day_j < p.energy_per_day_j or q.accuracy > p.accuracy) for q in points)
        if not dominated:
            front.append(p)
    return sorted(front, key=lambda p: (p.energy_per_day_j, -p.accuracy, p.label))


def pareto_figure(points: list[Point], title: str, accuracy_label: str, error_label: str):
    """Maintenance energy per day (log axis; a zero is drawn at a tenth of the least non-zero
    value, as the axis says) against accuracy, the Pareto front joined."""
    shown = len(points) <= 20  # more points than that: the front is labelled, the legend left out
    fig, ax = plt.subplots(figsize=(8, 5 + (0.16 * len(points) if shown else 0)))
    positive = [p.energy_per_day_j for p in points if p.energy_per_day_j > 0]
    floor = min(positive) / 10 if positive else 1e-12

    def x(p: Point) -> float:
        return max(p.energy_per_day_j, floor)

    front = pareto_front(points)
    cmap = plt.get_cmap("tab10" if len(points) <= 10 else "tab20")
    for i, p in enumerate(points):
        ax.errorbar([x(p)], [100 * p.accuracy], yerr=[100 * p.accuracy_err], marker="o", capsize=3,
                    color=cmap(i % cmap.N), label=p.legend if shown else None)
    if len(front) > 1:
        ax.plot([x(p) for p in front], [100 * p.accuracy for p in front], "--", color="black", linewidth=0.8,
                label="Pareto front")
    placed: dict[tuple[float, float], int] = {}
    for p in points if shown else front:
        at = (x(p), 100 * p.accuracy)
        placed[at] = placed.get(at, -1) + 1  # points on top of each other: their names stacked, not overprinted
        ax.annotate(p.mark, at, textcoords="offset points", xytext=(4, 4 + 9 * placed[at]), fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel(f"maintenance energy per day of deployment (J/day, log scale; zero drawn at {floor:.1g})")
    ax.set_ylabel(f"{accuracy_label} (%), {error_label}")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), frameon=False)
    return fig


def curves_figure(times_s: list[float], curves: dict[str, list[list[float]]], duration_s: float, title: str):
    """Mean accuracy over seeds at each checkpoint, one line per policy, on a log time axis."""
    fig, ax = plt.subplots(figsize=(8, 4.5))
    t = np.array(times_s, dtype=float)
    for label, runs in curves.items():
        if runs and all(len(r) == t.size for r in runs):
            ax.plot(t, 100 * np.mean(np.array(runs, dtype=float), axis=0), "o-", markersize=3, label=label)
    time_axis(ax, t.min() / 2 if t.size else 0.5, max(t.max() if t.size else 1.0, duration_s) * 1.5)
    ax.set_ylim(0, 101)
    ax.set_ylabel("test accuracy (%), mean over seeds")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def effect_figure(factor: str, levels: list[str], panels: list[tuple[str, list[float], list[float], bool]]):
    """One panel per figure: its mean and standard error at each level of ``factor``. ``panels``:
    (axis label with unit, means, standard errors, log scale)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.8), squeeze=False)
    x = np.arange(len(levels))
    for ax, (label, means, errors, log) in zip(axes[0], panels):
        means_arr, errors_arr = np.array(means, dtype=float), np.array(errors, dtype=float)
        ax.errorbar(x, means_arr, yerr=errors_arr, marker="o", capsize=4, linestyle="-", color="tab:blue")
        ax.set_xticks(x, levels, rotation=30 if max((len(v) for v in levels), default=0) > 6 else 0, fontsize=8,
                      ha="right" if max((len(v) for v in levels), default=0) > 6 else "center")
        if log and np.all(means_arr[np.isfinite(means_arr)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel(factor)
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"effect of {factor}: mean ± standard error over the runs at each level", fontsize=10)
    return fig
