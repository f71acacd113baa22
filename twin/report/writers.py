"""Writing a run's results: every file atomically, summary.json last (its presence marks a
complete folder), never over earlier results unless asked."""

from __future__ import annotations

from pathlib import Path

import yaml

from twin.atomic import atomic_write_json, atomic_write_text, prepare_output_dir
from twin.report.columns import table_text
from twin.report.records import Result
from twin.report.report_files import REPORT_FILES

__all__ = ["OUTPUT_FILES", "SCENARIO_FILE", "csv_text", "write_outputs", "write_scenario"]

SCENARIO_FILE = "scenario.resolved.yaml"
OUTPUT_FILES = ["summary.json", SCENARIO_FILE, "timeline.csv", "campaigns.csv", "device_pulses.csv",
                "trace.csv", "service.csv", "device_pulses_histogram.csv", "waveform.vcd", *REPORT_FILES]
"""Everything a run writes in its folder (what ``--force`` clears): the results, and the report
(twin.report.html) that ``twin run`` builds from them."""


def csv_text(file: str, rows: list[dict]) -> str:
    """``file``'s text, its columns those of the data dictionary (twin/report/columns.py), in its
    order; a row that does not match them raises ``ColumnError``."""
    return table_text(file, rows)


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
    atomic_write_text(out_dir / "timeline.csv", csv_text("timeline.csv", result.timeline))
    atomic_write_text(out_dir / "campaigns.csv", csv_text("campaigns.csv", result.campaigns))
    if scenario.outputs.per_device_pulses and result.device_pulses is not None:
        atomic_write_text(out_dir / "device_pulses.csv", csv_text("device_pulses.csv", result.device_pulses))
    if scenario.outputs.per_device_pulses and result.device_pulse_histogram is not None:
        atomic_write_text(out_dir / "device_pulses_histogram.csv",
                          csv_text("device_pulses_histogram.csv", result.device_pulse_histogram))
    if result.trace is not None:
        atomic_write_text(out_dir / "trace.csv", csv_text("trace.csv", result.trace))
    if result.service is not None:
        atomic_write_text(out_dir / "service.csv", csv_text("service.csv", result.service))
    if result.vcd is not None:  # outputs.vcd (docs/waveforms.md)
        atomic_write_text(out_dir / "waveform.vcd", result.vcd)
    atomic_write_json(out_dir / "summary.json", result.summary)
    return out_dir
