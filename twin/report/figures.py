"""The figures of a run's report (matplotlib), each built from the folder's files only. Every
function returns an open figure; twin.report.plots turns it into PNG and SVG bytes."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import FuncFormatter, MaxNLocator

from twin.chip.ledger import ENERGY_COMPONENTS, INFERENCE_COMPONENTS, MAINTENANCE_COMPONENTS
from twin.device.parameters import ENDURANCE_CYCLES
from twin.report.fmt import duration_s as human_duration, si
from twin.report.folder import Table
from twin.report.plots import plt
from twin.units import DAY, HOUR, MINUTE, MONTH, MS, SECOND, US, WEEK, YEAR

__all__ = ["OPERATIONS", "COMPONENT_COLOURS", "time_axis", "accuracy_figure", "energy_figure", "campaigns_figure",
           "wear_figure", "traffic_figure"]

OPERATIONS: dict[str, tuple[str, ...]] = {
    "initial programming": ("initial_programming",),
    "maintenance": MAINTENANCE_COMPONENTS,
    "inference": INFERENCE_COMPONENTS,
    "static power": ("static",),
}
"""Each energy component under the operation that spends it (twin.chip.ledger's groups)."""
assert sorted(c for group in OPERATIONS.values() for c in group) == sorted(ENERGY_COMPONENTS)

COMPONENT_COLOURS = {c: plt.get_cmap("tab10")(i) for i, c in enumerate(ENERGY_COMPONENTS)}

_TIME_TICKS = [(US, "1 µs"), (MS, "1 ms"), (SECOND, "1 s"), (MINUTE, "1 min"), (HOUR, "1 h"), (DAY, "1 d"),
               (WEEK, "1 w"), (MONTH, "1 mo"), (YEAR, "1 y"), (10 * YEAR, "10 y"), (100 * YEAR, "100 y")]


RUG_ABOVE = 30
"""More campaigns than this are marked as ticks at the bottom of the accuracy plot, not lines across it."""


def time_axis(ax, lo_s: float, hi_s: float) -> None:
    """A log time axis in seconds, labelled in human units (1 min, 1 h, 1 d, 1 y) inside its range."""
    ax.set_xscale("log")
    ax.set_xlim(lo_s, hi_s)
    ticks = [(ns / SECOND, label) for ns, label in _TIME_TICKS if lo_s <= ns / SECOND <= hi_s]
    if len(ticks) >= 2:
        ax.set_xticks([t for t, _ in ticks], [label for _, label in ticks])
        ax.minorticks_off()
    ax.set_xlabel("time since deployment (log scale)")


def accuracy_figure(summary: dict, campaign_starts_s: np.ndarray):
    """Accuracy against time (log axis), campaigns marked, beside the same programming left alone
    and with GDC only; the digital network's accuracy as a reference line."""
    rows = summary["accuracy"]
    t = np.array([r["t_s"] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(8, 4.6))
    lo = min([t.min()] + ([campaign_starts_s.min()] if campaign_starts_s.size else [])) / 2
    hi = max(t.max(), summary["duration_s"]) * 1.5
    n = campaign_starts_s.size
    if n:  # a few campaigns: full-height lines; many (a year of daily ones): a rug at the bottom
        ax.vlines(campaign_starts_s, 0, 100 if n <= RUG_ABOVE else 4, colors="tab:orange", linewidth=1.0,
                  alpha=0.7 if n <= RUG_ABOVE else 0.4,
                  label=f"correction campaign ({n:,}{'' if n <= RUG_ABOVE else ': ticks at the bottom'})")
    policy = summary["policy"].get("name", "policy")
    acc = 100 * np.array([r["accuracy"] for r in rows], dtype=float)
    std = 100 * np.array([r.get("accuracy_std") or 0.0 for r in rows], dtype=float)
    ax.plot(t, acc, "o-", color="tab:blue", markersize=3, label=f"{policy} (this run)")
    if np.any(std > 0):
        ax.fill_between(t, acc - std, acc + std, color="tab:blue", alpha=0.15, linewidth=0)
    for key, label, style in (("accuracy_gdc_only", "GDC only, never corrected", "s--"),
                              ("accuracy_left_alone", "left alone (no GDC, never corrected)", "^:")):
        if all(isinstance(r.get(key), (int, float)) for r in rows):
            ax.plot(t, [100 * r[key] for r in rows], style, color="tab:green" if "gdc" in key else "tab:gray",
                    markersize=3, label=label)
    if isinstance(summary.get("digital_accuracy"), (int, float)):
        ax.axhline(100 * summary["digital_accuracy"], color="black", linewidth=0.8, linestyle="-.",
                   label="digital network (no PCM)")
    time_axis(ax, lo, hi)
    ax.set_ylim(0, 101)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{summary['scenario']['name']}: accuracy against time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    return fig


def energy_figure(energy_j: dict, per_campaign: dict[str, np.ndarray]):
    """(a) each operation's energy split by component (100% bars, total at the end of each bar);
    (b) each campaign's maintenance energy, stacked by component."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.1, 1]})
    names = list(OPERATIONS)
    used = set()
    for y, name in enumerate(names):
        total = sum(energy_j.get(c, 0.0) for c in OPERATIONS[name])
        start = 0.0
        for c in OPERATIONS[name]:
            share = 100 * energy_j.get(c, 0.0) / total if total > 0 else 0.0
            if share > 0:
                left.barh(y, share, left=start, color=COMPONENT_COLOURS[c], label=None if c in used else c)
                used.add(c)
                start += share
        left.text(101, y, si(total, "J"), va="center", fontsize=8)
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlim(0, 125)
    left.set_xticks([0, 25, 50, 75, 100])
    left.set_xlabel("share of the operation's energy (%); total in J at the right")
    left.set_title("energy by operation and component")
    left.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=4, frameon=False)
    campaigns = per_campaign["campaign"]
    if campaigns.size == 0:
        right.text(0.5, 0.5, "no correction campaigns", ha="center", va="center", transform=right.transAxes)
        right.set_axis_off()
    else:
        stacks = [(c, per_campaign.get(f"energy_{c}_j")) for c in MAINTENANCE_COMPONENTS]
        stacks = [(c, np.nan_to_num(v)) for c, v in stacks if v is not None and np.nansum(v) > 0]
        bottom = np.zeros(campaigns.size)
        for c, values in stacks:
            if campaigns.size <= 150:
                right.bar(campaigns, values, bottom=bottom, color=COMPONENT_COLOURS[c], label=c, width=0.8)
            else:  # thousands of campaigns: bands instead of bars
                right.fill_between(campaigns, bottom, bottom + values, color=COMPONENT_COLOURS[c], label=c,
                                   step="mid", linewidth=0)
            bottom = bottom + values
        right.set_xlabel("campaign")
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("maintenance energy per campaign (J)")
        right.set_title("maintenance energy of each campaign")
        right.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        right.legend(fontsize=7, loc="best")
        right.grid(True, axis="y", alpha=0.3)
    return fig


def campaigns_figure(per_campaign: dict[str, np.ndarray]):
    """Per campaign: weight devices misread, devices held off their original level after it, and
    devices it corrected."""
    fig, ax = plt.subplots(figsize=(8, 4))
    x = per_campaign["campaign"]
    marker = "o" if x.size <= 100 else ""
    for key, label, colour in (("misread", "misread by the campaign's decode", "tab:red"),
                               ("displaced", "held off their original level after it", "tab:purple"),
                               ("devices_corrected", "corrected (re-programmed)", "tab:blue")):
        values = per_campaign.get(key)
        if values is not None and not np.all(np.isnan(values)):
            ax.plot(x, values, marker=marker, markersize=3, color=colour, label=label)
    if x.size == 1:
        ax.set_xlim(x[0] - 1, x[0] + 1)
    ax.set_xlabel("campaign")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("devices")
    ax.set_title("what each correction campaign read wrong and left displaced")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return fig


def wear_figure(wear: Table, duration_s: float):
    """Devices per pulse count (initial programming and maintenance apart) on a log axis that
    reaches the endurance limit, so the distance to it shows."""
    fig, ax = plt.subplots(figsize=(8, 4))
    pulses = wear.floats("pulses")
    for key, label, colour in (("initial_devices", "initial programming", "tab:blue"),
                               ("maintenance_devices", "maintenance (campaigns)", "tab:orange")):
        devices = wear.floats(key)
        keep = (pulses > 0) & (devices > 0)  # 0 pulses has no place on a log axis
        ax.plot(pulses[keep], devices[keep], ".-", color=colour, label=label, markersize=3, linewidth=1)
    ax.axvline(ENDURANCE_CYCLES, color="tab:red", linestyle="--",
               label=f"endurance limit ~{ENDURANCE_CYCLES:.0e} cycles")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.8, ENDURANCE_CYCLES * 5)
    ax.set_xlabel("pulses per device (log scale; devices with 0 pulses not shown)")
    ax.set_ylabel("devices with that many pulses")
    ax.set_title(f"wear after {human_duration(duration_s)}: pulses per device against endurance")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return fig


def traffic_figure(traffic: dict, per_campaign: dict[str, np.ndarray], duration_s: float, bins: int = 50):
    """(a) request latency percentiles; (b) availability over time: the share of each time bin in
    which a complete replica could serve (maintenance holds of the campaigns)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    lat = traffic.get("latency_s") or {}
    keys = [k for k in ("mean", "p50", "p95", "p99", "max") if isinstance(lat.get(k), (int, float))]
    labels = [k + (" (lower bound)" if k == "max" and lat.get("estimated") else "") for k in keys]
    left.bar(range(len(keys)), [1e6 * lat[k] for k in keys], color="tab:blue")
    left.set_xticks(range(len(keys)), labels, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("latency (µs, log scale)")
    left.set_title("request latency" + (" (estimated from windows)" if lat.get("estimated") else ""))
    left.grid(True, axis="y", alpha=0.3)
    edges = np.linspace(0.0, duration_s, bins + 1)
    lost = np.zeros(bins)
    if per_campaign["campaign"].size and "network_unavailable_ns" in per_campaign:
        # a campaign's lost time spread evenly over its span [start, end], shared among the bins it covers
        # (a long campaign in a short run can outlast a bin: booking it all to one bin would go below 0%)
        seconds = np.nan_to_num(per_campaign["network_unavailable_ns"]) / SECOND
        for a, b, amount in zip(per_campaign["start_s"], per_campaign["end_s"], seconds):
            if amount <= 0:
                continue
            overlap = np.clip(np.minimum(edges[1:], b) - np.maximum(edges[:-1], a), 0.0, None)
            if b > a and overlap.sum() > 0:
                lost += amount * overlap / overlap.sum()
            else:  # an instant: the bin it falls in
                lost[min(max(int(np.searchsorted(edges, a, side="right")) - 1, 0), bins - 1)] += amount
    availability = 100 * (1 - np.minimum(lost / np.diff(edges), 1.0))
    right.stairs(availability, edges / (DAY / SECOND), color="tab:green", linewidth=1.5, baseline=None)
    spread = max(100 - availability.min(), 1e-9)
    right.set_ylim(100 - 1.2 * spread, 100 + 0.2 * spread)
    decimals = max(0, int(np.ceil(-np.log10(spread))) + 1)
    right.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.{decimals}f}"))
    right.set_xlabel("time since deployment (days)")
    right.set_ylabel("availability (% of each bin's time)")
    right.set_title(f"availability over time ({bins} bins of {human_duration(duration_s / bins)})")
    right.grid(True, alpha=0.3)
    return fig
