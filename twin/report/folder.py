"""Reading an output folder for the HTML report: which kind it is (run, compare, sweep) and its
files as plain Python values. Nothing is re-run; only the files the twin wrote are read.

Column and key meanings: docs/chip.md ("Outputs"), docs/traffic.md, docs/faults.md, docs/sweeps.md.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from twin.report.columns import FILES
from twin.report.report_files import REPORT_FILE
from twin.scenario.loader import ScenarioError

__all__ = ["ReportInputError", "Table", "RunFiles", "campaign_totals", "folder_kind", "read_json", "read_table",
           "read_run", "wear_histogram"]


class ReportInputError(ScenarioError):
    """A folder the report cannot be built from (bad input: exit 2, naming the folder or file)."""

    def __init__(self, where: Path | str, message: str) -> None:
        super().__init__([(str(where), message)])


@dataclass(frozen=True)
class Table:
    """A CSV file as columns of strings (header order kept); numbers are parsed on demand, once."""

    columns: dict[str, list[str]]
    _parsed: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()), []))

    def has(self, name: str) -> bool:
        return name in self.columns

    def floats(self, name: str) -> np.ndarray:
        """The column as float64; an empty cell (a missing value) is NaN, True/False are 1/0."""
        if name not in self._parsed:
            cells = self.columns[name]
            try:
                values = np.array(cells, dtype=np.float64)  # numpy parses the decimal strings itself: fast
            except ValueError:  # empty cells or booleans: cell by cell
                values = np.array([_number(c) for c in cells], dtype=np.float64)
            self._parsed[name] = values
        return self._parsed[name]

    def strings(self, name: str) -> list[str]:
        return self.columns[name]


def _number(cell: str) -> float:
    if cell == "":
        return math.nan
    if cell in ("True", "False"):
        return 1.0 if cell == "True" else 0.0
    return float(cell)


def read_table(path: Path) -> Table:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = list(reader)
        for line, row in enumerate(rows, start=2):
            if len(row) != len(header):
                raise ReportInputError(path, f"line {line} has {len(row)} cells, the header {len(header)}")
        cells = list(zip(*rows)) if rows else [() for _ in header]
        columns = {name: list(column) for name, column in zip(header, cells)}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ReportInputError(path, f"cannot read it: {exc}") from None
    table = Table(columns)
    for name in columns:  # a cell that is not a number would break a plot later: say where now
        if name not in _TEXT_COLUMNS:
            try:
                table.floats(name)
            except ValueError as exc:
                raise ReportInputError(path, f"column {name!r}: {exc}") from None
    return table


_TEXT_COLUMNS = {column.name for file in FILES.values() for column in file.columns if column.type == "str"}
"""Columns that hold text, not numbers (from the data dictionary)."""


def read_json(path: Path) -> dict:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ReportInputError(path, f"cannot read it as JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ReportInputError(path, "expected a JSON object")
    return value


def folder_kind(folder: Path) -> str:
    """``run``, ``compare`` or ``sweep``; a clear error for anything else (the files that mark each kind)."""
    folder = Path(folder)
    if not folder.exists():
        raise ReportInputError(folder, "no such folder")
    if not folder.is_dir():
        raise ReportInputError(folder, "is a file, not an output folder of twin run, compare or sweep")
    if (folder / "summary.json").is_file():
        return "run"
    if (folder / "compare.json").is_file():
        return "compare"
    if (folder / "sweep.json").is_file() or (folder / "sweep.csv").is_file():
        if not (folder / "sweep.csv").is_file():
            raise ReportInputError(folder, "holds sweep.json but no sweep.csv: the sweep has written no results yet")
        return "sweep"
    if any((folder / name).exists() for name in ("INCOMPLETE", "scenario.resolved.yaml", "timeline.csv")):
        raise ReportInputError(folder, "an unfinished run (no summary.json): finish it with twin run --resume "
                                       f"{folder}, then build the report")
    raise ReportInputError(folder, "not an output folder of twin run, compare or sweep (no summary.json, "
                                   "compare.json or sweep.json)")


@dataclass(frozen=True)
class RunFiles:
    """The files of a finished run folder (None: the file is absent)."""

    path: Path
    summary: dict
    timeline: Table | None
    campaigns: Table | None
    wear: Table | None  # per pulse count: initial_devices, maintenance_devices (either source file)
    wear_source: str | None  # the file ``wear`` came from
    service: Table | None
    scenario_text: str | None

    @property
    def files(self) -> list[str]:
        return sorted(p.name for p in self.path.iterdir() if p.is_file() and not p.name.startswith(".")
                      and p.name not in DERIVED_FILES)


DERIVED_FILES = (REPORT_FILE,)
"""What the report itself writes: never listed as the folder's results (the page would change with
the second build)."""

REQUIRED_SUMMARY_KEYS = ("scenario", "seed", "policy", "duration_s", "accuracy", "energy_j", "campaigns", "pulses")


def read_run(folder: Path) -> RunFiles:
    folder = Path(folder)
    summary = read_json(folder / "summary.json")
    missing = [key for key in REQUIRED_SUMMARY_KEYS if key not in summary]
    if missing:
        raise ReportInputError(folder / "summary.json", f"lacks {', '.join(missing)}: not a summary twin run wrote")

    def optional(name: str) -> Table | None:
        return read_table(folder / name) if (folder / name).is_file() else None

    wear, source = None, None
    if (folder / "device_pulses_histogram.csv").is_file():
        wear, source = optional("device_pulses_histogram.csv"), "device_pulses_histogram.csv"
    elif (folder / "device_pulses.csv").is_file():
        wear, source = wear_histogram(read_table(folder / "device_pulses.csv")), "device_pulses.csv"
    scenario_path = folder / "scenario.resolved.yaml"
    try:
        scenario_text = scenario_path.read_text(encoding="utf-8") if scenario_path.is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ReportInputError(scenario_path, f"cannot read it: {exc}") from None
    return RunFiles(folder, summary, optional("timeline.csv"), optional("campaigns.csv"), wear, source,
                    optional("service.csv"), scenario_text)


def wear_histogram(pulses: Table) -> Table:
    """device_pulses.csv (one row per pulsed device) as device_pulses_histogram.csv holds it: per
    pulse count, the devices with that many initial and that many maintenance pulses (the rule of
    twin.report.records.device_pulse_tables, so both files plot alike)."""
    if len(pulses) == 0:
        return Table({"pulses": [], "initial_devices": [], "maintenance_devices": []})
    initial = np.bincount(pulses.floats("initial_pulses").astype(np.int64))
    maintenance = np.bincount(pulses.floats("maintenance_pulses").astype(np.int64))
    size = max(initial.size, maintenance.size)
    initial, maintenance = np.pad(initial, (0, size - initial.size)), np.pad(maintenance, (0, size - maintenance.size))
    keep = np.flatnonzero((initial > 0) | (maintenance > 0))
    return Table({"pulses": [str(p) for p in keep.tolist()], "initial_devices": [str(int(initial[p])) for p in keep],
                  "maintenance_devices": [str(int(maintenance[p])) for p in keep]})


def campaign_totals(campaigns: Table, components: tuple[str, ...]) -> dict[str, np.ndarray]:
    """campaigns.csv (one row per campaign and tile) summed per campaign: ``campaign``,
    ``start_s`` (its first tile's start), ``end_s`` (its last tile's end), ``tiles``, and the sums
    of the count, time and ``energy_<component>_j`` columns (``energy_j``: their total). A column
    that is empty in every row (``misread`` of analog weights) sums to NaN."""
    if len(campaigns) == 0:
        return {"campaign": np.zeros(0)}
    numbers, index = np.unique(campaigns.floats("campaign"), return_inverse=True)
    out: dict[str, np.ndarray] = {"campaign": numbers, "tiles": np.bincount(index).astype(float)}
    start, end = campaigns.floats("start_s"), campaigns.floats("end_s")
    out["start_s"] = np.full(numbers.size, np.inf)
    np.minimum.at(out["start_s"], index, start)
    out["end_s"] = np.full(numbers.size, -np.inf)
    np.maximum.at(out["end_s"], index, end)
    summed = ["reads", "partial_set", "reset", "devices_corrected", "misread", "displaced", "unavailable_s",
              "network_unavailable_ns"] + [f"energy_{c}_j" for c in components]
    for name in summed:
        if not campaigns.has(name):
            continue
        values = campaigns.floats(name)
        total = np.bincount(index, weights=np.nan_to_num(values), minlength=numbers.size)
        seen = np.bincount(index, weights=~np.isnan(values), minlength=numbers.size)
        out[name] = np.where(seen > 0, total, np.nan)
    energies = [out[f"energy_{c}_j"] for c in components if f"energy_{c}_j" in out]
    out["energy_j"] = np.sum(energies, axis=0) if energies else np.full(numbers.size, np.nan)
    return out
