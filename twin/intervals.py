"""Half-open integer intervals [a, b): union, intersection and total length (availability,
power schedules, simulation windows)."""

from __future__ import annotations

__all__ = ["Interval", "merged", "intersected", "total_ns"]

Interval = tuple[int, int]


def merged(intervals: list[Interval]) -> list[Interval]:
    """The sorted, disjoint union of ``intervals`` (empty ones dropped)."""
    out: list[Interval] = []
    for a, b in sorted(intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def intersected(a: list[Interval], b: list[Interval]) -> list[Interval]:
    """The intersection of two unions of intervals, sorted and disjoint (linear time)."""
    a, b = merged(a), merged(b)
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if lo < hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def total_ns(intervals: list[Interval]) -> int:
    """Length of the union of ``intervals``."""
    return sum(b - a for a, b in merged(intervals))
