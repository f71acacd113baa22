"""A run's results as flat records: the summary (summary.json) and the tables (CSV), read off the
observers of a built run (``twin.scenario.build.Assembly``). The summary's keys: docs/chip.md,
"Outputs"; every CSV column: twin/report/columns.py (docs/data-dictionary.md).
"""

from __future__ import annotations

import bisect
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

from twin.atomic import finite_or_null
from twin.chip.ledger import ENERGY_COMPONENTS, maintenance_energy
from twin.report.columns import DEVICE_ROWS_MAX  # re-exported: defined with the columns it bounds
from twin.report.traffic import service_rows, traffic_summary
from twin.units import SECOND

__all__ = ["Result", "SCHEMA_VERSION", "DEVICE_ROWS_MAX", "collect", "campaign_rows", "device_pulse_tables",
           "fault_summary", "versions"]

SCHEMA_VERSION = 3  # 3: accuracy rows with the unmaintained baselines; 2: availability {time, requests}, traffic

ACCURACY_KEYS = ("t_s", "t_ns", "accuracy", "accuracy_std", "accuracy_left_alone", "accuracy_gdc_only")
"""The keys of each summary.json ``accuracy`` row (the timeline's accuracy columns)."""



@dataclass
class Result:
    """The summary (summary.json) plus flat record tables (lists of dicts: ``pandas.DataFrame(rows)``)."""

    summary: dict
    timeline: list[dict]
    campaigns: list[dict]
    device_pulses: list[dict]
    trace: list[dict] | None = None
    service: list[dict] | None = None  # service.csv: per layer and tile, per inference (traffic only)
    # device_pulses_histogram.csv, instead of device_pulses (then None) above DEVICE_ROWS_MAX devices
    device_pulse_histogram: list[dict] | None = None
    vcd: str | None = None  # waveform.vcd's text, with outputs.vcd (docs/waveforms.md)

    def frames(self) -> dict:
        """The record tables as pandas DataFrames (needs pandas installed): timeline, campaigns,
        and device_pulses or, on a chip with more than DEVICE_ROWS_MAX pulsed devices,
        device_pulse_histogram."""
        import pandas as pd
        return {name: pd.DataFrame(getattr(self, name)) for name in
                ("timeline", "campaigns", "device_pulses", "device_pulse_histogram") if getattr(self, name) is not None}


def versions() -> dict:
    out = {}
    for name in ("pcm-twin", "torch", "aihwkit", "numpy", "simpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                                           cwd=Path(__file__).parent, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        out["git_commit"] = None
    return out


def _timeline(assembly) -> list[dict]:
    """timeline.csv: per checkpoint, the chip's accuracy beside the same programming left alone
    (``accuracy_left_alone``: never corrected, no GDC; ``accuracy_gdc_only``: never corrected, GDC)."""
    baselines = assembly.observers.baselines.rows
    return [{"t_s": c.t_ns / SECOND, "t_ns": c.t_ns, "accuracy": c.accuracy, "accuracy_std": c.accuracy_std,
             "accuracy_left_alone": b.left_alone, "accuracy_gdc_only": b.gdc_only,
             "campaigns": c.campaigns, "pulses": c.pulses, "energy_j": c.energy_j}
            for c, b in zip(assembly.observers.accuracy.rows, baselines, strict=True)]


def campaign_rows(assembly) -> list[dict]:
    """campaigns.csv: one row per campaign and tile, times in s and exact integer ns."""
    scores = assembly.observers.scoring.scores
    layout = assembly.chip.layout
    replica_tiles = layout.mapped_tiles // (assembly.chip.traffic.workload.replicas if assembly.chip.traffic else 1)
    outages = assembly.observers.availability.unavailable(assembly.chip.duration_ns)
    outage_starts = [a for a, _ in outages]
    rows = []
    for r in assembly.observers.campaigns.ordered():
        score = scores.get((r.campaign, r.tile), {"misread": 0, "displaced": 0})
        row = {"campaign": r.campaign, "tile": r.tile, "start_s": r.start_ns / SECOND, "end_s": r.end_ns / SECOND,
               "start_ns": r.start_ns, "end_ns": r.end_ns, "reads": r.reads, "partial_set": r.partial_set,
               "reset": r.reset, "unavailable_s": r.unavailable_ns / SECOND, "unavailable_ns": r.unavailable_ns,
               "network_unavailable_ns": _overlap_ns(r.holds, outages, outage_starts),
               "replica": r.tile // replica_tiles, "corrected": r.corrected, "devices_corrected": r.devices_corrected,
               "misread": score["misread"] if assembly.observers.scoring.levels_scored else None,
               "displaced": score["displaced"], "drift_metric": r.drift_metric}
        row.update({f"energy_{c}_j": r.energy.get(c, 0.0) for c in ENERGY_COMPONENTS if c != "static"})
        rows.append(row)
    return rows


def _overlap_ns(holds: list[tuple[int, int]], outages: list[tuple[int, int]], starts: list[int]) -> int:
    """Time within ``holds`` when no complete replica could serve (``outages``: sorted, disjoint)."""
    total = 0
    for a, b in holds:
        k = max(bisect.bisect_right(starts, a) - 1, 0)
        while k < len(outages) and outages[k][0] < b:
            total += max(0, min(b, outages[k][1]) - max(a, outages[k][0]))
            k += 1
    return total


def device_pulse_tables(assembly, max_rows: int | None = None) -> tuple[list[dict] | None, list[dict] | None]:
    """(device_pulses rows, None) with one row per device that took a pulse, or (None, histogram
    rows) when more than ``max_rows`` (default :data:`DEVICE_ROWS_MAX`) devices did: per pulse
    count, how many of those devices took that many pulses in the initial programming and in
    maintenance (counts where neither has a device are left out)."""
    wear = assembly.observers.wear
    pulsed = np.flatnonzero((wear.maintenance + wear.initial) > 0)
    if pulsed.size <= (DEVICE_ROWS_MAX if max_rows is None else max_rows):
        return _device_pulses(assembly, pulsed), None
    initial = np.bincount(wear.initial[pulsed])
    maintenance = np.bincount(wear.maintenance[pulsed])
    size = max(initial.size, maintenance.size)
    initial, maintenance = np.pad(initial, (0, size - initial.size)), np.pad(maintenance, (0, size - maintenance.size))
    return None, [{"pulses": p, "initial_devices": int(initial[p]), "maintenance_devices": int(maintenance[p])}
                  for p in np.flatnonzero((initial > 0) | (maintenance > 0)).tolist()]


def _device_pulses(assembly, pulsed: np.ndarray) -> list[dict]:
    wear = assembly.observers.wear
    layout = assembly.chip.layout
    out = []
    for d in pulsed.tolist():
        tile, rest = divmod(d, layout.devices_per_tile)
        sign, cell = divmod(rest, layout.rows * layout.cols)
        out.append({"tile": tile, "array": "G+" if sign == 0 else "G-", "row": cell // layout.cols,
                    "col": cell % layout.cols, "initial_pulses": int(wear.initial[d]),
                    "maintenance_pulses": int(wear.maintenance[d])})
    return out


def fault_summary(assembly) -> dict | None:
    """summary.json ``faults`` (docs/faults.md): with a ``faults`` section, or when the firmware gave
    a tile up without one; None otherwise (a run without faults reports exactly what it did before)."""
    chip = assembly.chip
    if chip.faults is None and not chip.controller.dead_tiles:
        return None
    return assembly.observers.faults.summary(chip.controller.faulty, chip.controller.dead_tiles,
                                             chip.layout.tiles * chip.layout.devices_per_tile)


def collect(assembly, wall_s: float) -> Result:
    """The results of a finished run."""
    scenario, chip, obs = assembly.scenario, assembly.chip, assembly.observers
    energy_j = obs.ledger.energy()  # the components and their fsum
    counts = obs.ledger.counts
    timeline = _timeline(assembly)
    maintenance = obs.wear.maintenance
    layout = chip.layout
    summary = {
        "schema_version": SCHEMA_VERSION,
        "scenario": {"name": scenario.name, "sha256": scenario.sha256()},
        "seed": scenario.seed,
        "policy": scenario.resolved_dict()["policy"],
        "duration_s": scenario.duration / SECOND,
        "duration_ns": scenario.duration,
        "digital_accuracy": assembly.digital_accuracy,
        "model_sha256": assembly.model_sha256,
        "accuracy": [{k: row[k] for k in ACCURACY_KEYS} for row in timeline],
        "energy_j": energy_j,
        "energy_maintenance_j": maintenance_energy(energy_j),
        "pulses": {"total": counts["partial_set"] + counts["reset"], "partial_set": counts["partial_set"],
                   "reset": counts["reset"], "max_per_device": int(maintenance.max()) if maintenance.size else 0},
        "initial_programming": {"duration_s": chip.deployed_at_ns / SECOND, "duration_ns": chip.deployed_at_ns,
                                "energy_j": energy_j["initial_programming"],
                                "partial_set": counts["initial_partial_set"], "reset": counts["initial_reset"]},
        "reads": {"probe_rows": counts["probe_row_reads"], "verify_rows": counts["verify_row_reads"]},
        "controller_steps": counts["controller_steps"],
        "campaigns": chip.campaigns,
        "misreads": obs.scoring.misreads(),
        "displaced_devices": obs.scoring.displaced_now(),
        "faulty_devices": int(sum(len(v) for v in chip.controller.faulty.values())),
        "availability": {"time": obs.availability.availability(chip.duration_ns),
                         "requests": None if chip.traffic is None else finite_or_null(
                             chip.traffic.figures["availability_requests"])},
        "longest_unavailability_s": obs.availability.longest_unavailability_ns(chip.duration_ns) / SECOND,
        "chip": {"tiles": layout.tiles, "mapped_tiles": layout.mapped_tiles, "rows": layout.rows,
                 "cols": layout.cols, "devices": layout.tiles * layout.devices_per_tile,
                 "used_devices": int(sum(u.numel() for u in layout.used)),
                 "weight_devices": obs.scoring.weight_devices},  # network's and synthetic ones
        "events": chip.env.events_processed,
        "versions": versions(),
        "wall_s": round(wall_s, 3),
    }
    if assembly.synthetic_devices is not None:  # chip.fill: synthetic (absent otherwise: older summaries hold)
        summary["chip"]["synthetic_devices"] = assembly.synthetic_devices
        summary["chip"]["network_weight_devices"] = obs.scoring.weight_devices - assembly.synthetic_devices
    faults = fault_summary(assembly)
    if faults is not None:
        summary["faults"] = faults
    service = None
    if chip.traffic is not None:
        summary["traffic"] = traffic_summary(chip, energy_j)
        service = service_rows(chip)
    trace = None
    if obs.trace is not None:
        trace = obs.trace.rows
        summary["trace"] = {"rows": len(trace), "dropped": obs.trace.dropped}  # dropped > 0: trace.csv is cut
    vcd = None
    if obs.waveforms is not None:  # outputs.vcd; summary.json vcd says what the window holds and what was dropped
        vcd, summary["vcd"] = obs.waveforms.vcd_file(None if chip.traffic is None else chip.traffic.records.simulated)
    device_pulses, histogram = device_pulse_tables(assembly)
    if histogram is not None:  # too many devices for a row each (DEVICE_ROWS_MAX)
        summary["device_pulse_histogram"] = {"devices": sum(row["initial_devices"] for row in histogram),
                                             "rows": len(histogram)}
    return Result(summary, timeline, campaign_rows(assembly), device_pulses, trace, service, histogram, vcd)
