"""Writing a run's results: every file atomically, summary.json last (its presence marks a
complete folder), never over earlier results unless asked."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import yaml

from twin.atomic import atomic_write_json, atomic_write_text, prepare_output_dir
from twin.report.records import Result

__all__ = ["OUTPUT_FILES", "SCENARIO_FILE", "csv_text", "write_outputs", "write_scenario"]

SCENARIO_FILE = "scenario.resolved.yaml"
OUTPUT_FILES = ["summary.json", SCENARIO_FILE, "timeline.csv", "campaigns.csv", "device_pulses.csv",
                "trace.csv", "service.csv", "device_pulses_histogram.csv"]


def csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_scenario(scenario, out_dir: Path) -> None:
    """The fully resolved scenario (what ``twin run --resume`` rebuilds the run from)."""
    atomic_write_text(Path(out_dir) / SCENARIO_FILE, yaml.safe_dump(scenario.resolved_dict(), sort_keys=False))


def write_outputs(result: Result, scenario, out_dir: Path, force: bool = False, *, prepared: bool = False) -> Path:
    """Write every output atomically; refuse to overwrite earlier results unless ``force``
    (``outputs.per_device_pulses`` of the scenario says whether device_pulses.csv, or on a chip with
    more pulsed devices than ``DEVICE_ROWS_MAX`` device_pulses_histogram.csv, is written).
    ``prepared``: the caller holds the folder (``twin.run_folder``) and cleared it at the start;
    files are then replaced in place, never removed first, so a failure here (a full disk) leaves
    the resolved scenario a resume needs."""
    out_dir = Path(out_dir) if prepared else prepare_output_dir(Path(out_dir), OUTPUT_FILES, force)
    write_scenario(scenario, out_dir)
    atomic_write_text(out_dir / "timeline.csv", csv_text(result.timeline))
    atomic_write_text(out_dir / "campaigns.csv", csv_text(result.campaigns))
    if scenario.outputs.per_device_pulses and result.device_pulses is not None:
        atomic_write_text(out_dir / "device_pulses.csv", csv_text(result.device_pulses))
    if scenario.outputs.per_device_pulses and result.device_pulse_histogram is not None:
        atomic_write_text(out_dir / "device_pulses_histogram.csv", csv_text(result.device_pulse_histogram))
    if result.trace is not None:
        atomic_write_text(out_dir / "trace.csv", csv_text(result.trace))
    if result.service is not None:
        atomic_write_text(out_dir / "service.csv", csv_text(result.service))
    atomic_write_json(out_dir / "summary.json", result.summary)
    return out_dir
