"""The data dictionary: every column of every CSV file the twin writes, defined once.

The writers build their headers from these definitions (:func:`table_text`), in this order, and
refuse a row with a column that is not defined here or without one that is, so the files and
docs/data-dictionary.md (:func:`data_dictionary_markdown`) cannot drift apart. Meanings come from
docs/chip.md, docs/traffic.md, docs/faults.md, docs/policies.md and docs/sweeps.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twin.chip.ledger import ENERGY_COMPONENTS
from twin.chip.events import TRACE_MAX_ROWS

__all__ = ["Column", "CsvFile", "ColumnError", "FILES", "TYPES", "RUN_FIGURES", "TRAFFIC_FIGURES",
           "COMPARE_FIGURE_STATS", "table_text", "data_dictionary_markdown"]

TYPES = ("float", "int", "bool", "str")
"""A column's type as pandas reads it (bool cells are ``True``/``False``)."""


class ColumnError(ValueError):
    """A row that does not match its file's columns (a bug in a row builder, not bad input)."""


@dataclass(frozen=True)
class Column:
    """One column, or with ``family`` one column per value of that family (``<component>`` in
    ``name`` stands for the value)."""

    name: str
    unit: str
    type: str
    meaning: str
    nullable: bool = False  # a cell may be empty (a missing value: NaN in pandas)
    family: str | None = None  # "component" (fixed values) or "factor" (the writer names them)

    def names(self, families: Mapping[str, Sequence[str]]) -> list[str]:
        if self.family is None:
            return [self.name]
        if self.family not in families:
            raise ColumnError(f"column {self.name!r}: the values of {self.family!r} were not given")
        return [self.name.replace(f"<{self.family}>", value) for value in families[self.family]]


@dataclass(frozen=True)
class CsvFile:
    """One file: when it is written, what one row is, and its columns in order."""

    name: str
    about: str
    columns: tuple[Column, ...]

    def resolved(self, **families: Sequence[str]) -> list[tuple[str, Column]]:
        """(header name, definition) of every column, in order; patterned ones expanded."""
        values = {"component": CAMPAIGN_ENERGY_COMPONENTS} | families
        out = [(name, column) for column in self.columns for name in column.names(values)]
        names = [name for name, _ in out]
        if len(set(names)) != len(names):
            raise ColumnError(f"{self.name}: a patterned column repeats another column's name: {names}")
        return out

    def names(self, **families: Sequence[str]) -> list[str]:
        return [name for name, _ in self.resolved(**families)]


CAMPAIGN_ENERGY_COMPONENTS = tuple(c for c in ENERGY_COMPONENTS if c != "static")
"""campaigns.csv's energy columns: static power is charged to no campaign."""


def _c(name: str, unit: str, type_: str, meaning: str, **kw: Any) -> Column:
    assert type_ in TYPES, type_
    return Column(name, unit, type_, meaning, **kw)


_TIME_S = "in seconds (float, for plotting)"
_TIME_NS = "in integer nanoseconds (exact)"

DEVICE_ROWS_MAX = 100_000
"""The most rows device_pulses.csv holds (one per device that took a pulse, about 4 MB). A run
with more such devices writes device_pulses_histogram.csv instead (devices per pulse count), so
outputs stay proportionate on a full chip (8.4 M devices)."""

TIMELINE = CsvFile("timeline.csv", "One row per accuracy checkpoint (`checkpoints`), in time order.", (
    _c("t_s", "s", "float", f"Checkpoint time since the start of the run, {_TIME_S}."),
    _c("t_ns", "ns", "int", f"Checkpoint time, {_TIME_NS}."),
    _c("accuracy", "fraction", "float", "Test accuracy of this chip (replica 0), mean over the "
       "`evaluation.accuracy_samples` reads."),
    _c("accuracy_std", "fraction", "float", "Standard deviation of the test accuracy over those reads."),
    _c("accuracy_left_alone", "fraction", "float", "Test accuracy of the same programming never corrected, "
       "without GDC (mean over the accuracy samples): the baseline of doing nothing."),
    _c("accuracy_gdc_only", "fraction", "float", "Test accuracy of the same programming never corrected, "
       "with GDC (mean over the accuracy samples)."),
    _c("campaigns", "count", "int", "Correction campaigns that probed a tile so far."),
    _c("pulses", "pulses", "int", "Maintenance programming pulses (partial SET and RESET) so far."),
    _c("energy_j", "J", "float", "Total energy so far (static power and inference energy are booked at the "
       "end of the run, after the last row)."),
))

CAMPAIGNS = CsvFile("campaigns.csv", "One row per correction campaign and tile it probed, in campaign order; "
                    "empty but for the header when no campaign ran.", (
    _c("campaign", "-", "int", "The campaign's number, from 1."),
    _c("tile", "-", "int", "The tile probed."),
    _c("start_s", "s", "float", f"The probe command's start, {_TIME_S}."),
    _c("end_s", "s", "float", f"The end of the tile's last command in this campaign, {_TIME_S}."),
    _c("start_ns", "ns", "int", f"The probe command's start, {_TIME_NS}."),
    _c("end_ns", "ns", "int", f"The end of the tile's last command, {_TIME_NS}."),
    _c("reads", "row reads", "int", "Probe and verify row reads."),
    _c("partial_set", "pulses", "int", "Partial SET pulses (failed pulses included, docs/faults.md)."),
    _c("reset", "pulses", "int", "RESET pulses (failed pulses included)."),
    _c("unavailable_s", "s", "float", "Time the tile was held from inference in this campaign (its probe and "
       f"program-and-verify busy intervals, controller steps between them excluded), {_TIME_S}."),
    _c("unavailable_ns", "ns", "int", f"The same time, {_TIME_NS}."),
    _c("network_unavailable_ns", "ns", "int", "The part of that time when no complete replica could serve: "
       "`unavailable_ns` with one replica, 0 while another replica serves."),
    _c("replica", "-", "int", "The replica the tile belongs to (tile // tiles per replica; 0 without traffic)."),
    _c("corrected", "-", "bool", "The policy's verdict on the tile: sent to program-and-verify."),
    _c("devices_corrected", "devices", "int", "Devices sent to program-and-verify (first attempt)."),
    _c("misread", "devices", "int", "Weight devices whose decoded level differs from the level they were last "
       "programmed to (the simulator's score; empty for analog weights, which have no levels).", nullable=True),
    _c("displaced", "devices", "int", "Used devices the firmware holds, after this campaign's decision, at a "
       "level other than their original one (the errors accumulated so far)."),
    _c("drift_metric", "level spacings", "float", "The decoder's mean distance of the read conductances from "
       "the nominal levels."),
    _c("energy_<component>_j", "J", "float", "Energy of that ledger component charged to this campaign and "
       f"tile, for every component but static ({', '.join(CAMPAIGN_ENERGY_COMPONENTS)}); `energy_mvm_j` and "
       "`energy_digital_j` stay 0: inference is charged to no campaign.", family="component"),
))

DEVICE_PULSES = CsvFile("device_pulses.csv", "One row per device that took a pulse (initial programming or "
                        f"maintenance), at most {DEVICE_ROWS_MAX:,} rows (`twin.report.records.DEVICE_ROWS_MAX`; above that "
                        "device_pulses_histogram.csv is written instead); with `outputs.per_device_pulses`.", (
    _c("tile", "-", "int", "The device's tile."),
    _c("array", "-", "str", "The device's array of the differential pair: `G+` or `G-`."),
    _c("row", "-", "int", "The device's row in the tile."),
    _c("col", "-", "int", "The device's column in the tile."),
    _c("initial_pulses", "pulses", "int", "Pulses it took in the initial programming."),
    _c("maintenance_pulses", "pulses", "int", "Pulses it took in maintenance over the run (wear; a stuck "
       "reference device shows `(max_retries + 1) x max_iterations` from the campaign that gave it up)."),
))

HISTOGRAM = CsvFile("device_pulses_histogram.csv", "Written instead of device_pulses.csv when more than "
                    f"{DEVICE_ROWS_MAX:,} devices took a pulse (a full 64-tile chip: 8.4 M rows, about 300 MB, would be written "
                    "otherwise); one row per pulse count that any of those devices has, ascending.", (
    _c("pulses", "pulses", "int", "Pulses per device."),
    _c("initial_devices", "devices", "int", "Devices that took exactly `pulses` pulses in the initial "
       "programming."),
    _c("maintenance_devices", "devices", "int", "Devices that took exactly `pulses` maintenance pulses over the "
       "run (0: never corrected); each column sums to the devices that took a pulse."),
))

TRACE = CsvFile("trace.csv", "With `outputs.trace: true`: every controller state change, command, busy "
                "interval, program-and-verify round, power change and fault, in the order the chip emitted "
                "them (a `Busy` row when its interval ends, with its start time; a session's rounds when it is "
                f"charged, with their own start times; sort by `t_ns` for time order); the first "
                f"{TRACE_MAX_ROWS:,} (summary.json `trace.dropped` counts the rest).", (
    _c("t_ns", "ns", "int", "When the event happened (a `Busy` interval: its start)."),
    _c("scope", "-", "str", "The block it concerns (`chip.controller`, `chip.tile3`, ...)."),
    _c("event", "-", "str", "The event type: `StateChange`, `Command`, `Busy`, `ProgramRound`, `Power`, "
       "`Fault`."),
    _c("detail", "-", "str", "The event's fields as space-separated `key=value` (docs/faults.md for `Fault` "
       "and `state=FAULT`)."),
))

SERVICE = CsvFile("service.csv", "With a `traffic` section: one row per tile of replica 0 and its layer, "
                  "what one inference costs there (`twin/report/traffic.py`, `service_rows`).", (
    _c("layer", "-", "str", "The crossbar layer the tile holds (part of)."),
    _c("tile", "-", "int", "The tile (its number on the chip)."),
    _c("mvms", "MVMs", "int", "MVMs per inference on this tile (the layer's output positions)."),
    _c("row_blocks", "tiles", "int", "The layer's tiles along its input dimension (partial sums added "
       "digitally)."),
    _c("analog_s", "s", "float", "The whole layer's MVM time per inference."),
    _c("digital_s", "s", "float", "The whole layer's digital time per inference."),
    _c("layer_time_s", "s", "float", "The layer's time per inference: `analog_s + digital_s`."),
    _c("mvm_energy_j", "J", "float", "MVM energy per inference on this tile."),
    _c("layer_digital_energy_j", "J", "float", "The layer's digital energy per inference (repeated on each of "
       "its tiles)."),
    _c("ops", "ops", "int", "The layer's useful operations per inference (repeated on each of its tiles)."),
    _c("run_mvm_energy_j", "J", "float", "`mvm_energy_j` x inferences served: this tile position over the run, "
       "summed over every replica's copy (work lost to preemption not included)."),
))

RUN_FIGURES: tuple[Column, ...] = (
    _c("accuracy_start", "fraction", "float", "Test accuracy at the first checkpoint."),
    _c("accuracy_final", "fraction", "float", "Test accuracy at the last checkpoint."),
    _c("accuracy_min", "fraction", "float", "The lowest test accuracy over the checkpoints."),
    _c("accuracy_time_weighted", "fraction", "float", "Mean accuracy over deployment time (trapezoids between "
       "checkpoints, the first value held from 0)."),
    _c("accuracy_final_left_alone", "fraction", "float", "Test accuracy at the last checkpoint of the same "
       "programming never corrected, without GDC (empty for runs before summary schema 3).", nullable=True),
    _c("accuracy_final_gdc_only", "fraction", "float", "The same with GDC: what the policy is compared with "
       "(empty for runs before summary schema 3).", nullable=True),
    _c("energy_total_j", "J", "float", "All energy of the run, static power and the initial programming "
       "included."),
    _c("energy_maintenance_j", "J", "float", "Maintenance energy: probe and verify reads, pulses, off-chip "
       "transfers and controller steps of the corrections."),
    _c("energy_maintenance_per_day_j", "J/day", "float", "The same per day of deployment."),
    _c("pulses", "pulses", "int", "Programming pulses of the corrections."),
    _c("campaigns", "count", "int", "Correction campaigns."),
    _c("misreads", "devices", "int", "Weight devices decoded at the wrong level, summed over campaigns "
       "(empty for analog weights).", nullable=True),
    _c("misread_rate_per_campaign", "fraction", "float", "Misreads per weight device per campaign (as if every "
       "campaign probes every tile; empty for analog weights).", nullable=True),
    _c("displaced_devices", "devices", "int", "Used devices (weights and reference cells) at a level other than "
       "their original one at the end of the run."),
    _c("availability_time", "fraction", "float", "Share of the deployment during which a complete replica could "
       "serve."),
    _c("longest_unavailability_s", "s", "float", "The longest stretch without a complete replica."),
)
"""The figures of one run from its summary.json, in ``twin.study.compare.RUN_FIGURES``'s order:
sweep.csv's figure columns and, aggregated over seeds, compare.csv's."""

TRAFFIC_FIGURES: tuple[Column, ...] = tuple(
    _c(name, unit, "float", meaning + " (docs/traffic.md).", nullable=True)
    for name, unit, meaning in (
        ("availability_requests", "fraction", "Share of arriving requests (dropped ones included) served without "
         "being affected by maintenance or power-off"),
        ("latency_mean_s", "s", "Mean latency of the served requests, arrival to departure"),
        ("latency_p50_s", "s", "Median latency of the served requests"),
        ("latency_p99_s", "s", "99th-percentile latency of the served requests"),
        ("throughput_rps", "requests/s", "Requests served per second of the run (time off included)"),
        ("dropped_share", "fraction", "Share of arriving requests dropped (full queue or power-off)"),
        ("energy_per_inference_j", "J", "Energy per inference served: inference, maintenance and static "
         "(the initial programming not included)"),
        ("maintenance_per_inference_j", "J", "Maintenance energy per inference served"),
        ("tops_per_w", "TOPS/W", "Useful operations per joule, maintenance and static power included"),
    ))
"""The traffic figures of one run, in ``twin.study.compare.TRAFFIC_METRICS``'s order."""

_FIGURES = {column.name: column for column in RUN_FIGURES + TRAFFIC_FIGURES}

COMPARE_FIGURE_STATS: tuple[tuple[str, str], ...] = (
    ("accuracy_start", "mean"), ("accuracy_final", "mean"), ("accuracy_final", "std"), ("accuracy_min", "mean"),
    ("accuracy_min", "min"), ("accuracy_time_weighted", "mean"), ("accuracy_time_weighted", "std"),
    ("accuracy_final_left_alone", "mean"), ("accuracy_final_gdc_only", "mean"),
    ("energy_total_j", "mean"), ("energy_maintenance_j", "mean"), ("energy_maintenance_per_day_j", "mean"),
    ("pulses", "mean"), ("campaigns", "mean"), ("misreads", "mean"), ("misread_rate_per_campaign", "mean"),
    ("displaced_devices", "mean"), ("availability_time", "mean"), ("longest_unavailability_s", "max"),
) + tuple((column.name, "mean") for column in TRAFFIC_FIGURES)
"""compare.csv's figure columns, ``<figure>_<stat>``: which statistic over seeds of which figure."""

_STATS = {"mean": "mean over the policy's seeds", "std": "standard deviation over the policy's seeds (ddof 1; "
          "0 with one seed)", "min": "lowest over the policy's seeds", "max": "highest over the policy's seeds"}


def _compare_column(figure: str, stat: str) -> Column:
    base = _FIGURES[figure]
    return _c(f"{figure}_{stat}", base.unit, "float", f"{base.meaning.rstrip('.')}: {_STATS[stat]}; empty when "
              "no run of the policy finished or the figure does not apply (no levels, no traffic).", nullable=True)


COMPARE = CsvFile("compare.csv", "`twin compare` (and `--format csv` on stdout): one row per policy, in the "
                  "order given.", (
    _c("policy", "-", "str", "The policy's label (`periodic+gdc`, or a compare file's `label`)."),
    *(_compare_column(figure, stat) for figure, stat in COMPARE_FIGURE_STATS),
    _c("errors", "count", "int", "Runs of this policy that failed (their errors are in compare.json)."),
))

SWEEP = CsvFile("sweep.csv", "`twin sweep`: one row per run in sweep order, rewritten after every result.", (
    _c("run", "-", "str", "The run's folder name (a slug of its overrides, its seed and a hash of its scenario)."),
    _c("seed", "-", "int", "The chip's seed."),
    _c("<factor>", "as written in the sweep file", "str", "One column per key the sweep varies (`chip.levels`, "
       "`policy.name`, ...), in file order: the run's value, empty where the run does not set it.",
       nullable=True, family="factor"),
    _c("status", "-", "str", "`ok`, `failed` or `pending` (not finished yet)."),
    _c("error", "-", "str", "A failed run's error (`RuntimeError: ...`; `KilledWorker: ...` when its workers "
       "died too often); empty otherwise.", nullable=True),
    *(Column(c.name, c.unit, c.type, c.meaning.rstrip(".") + "; empty until the run finished.", nullable=True)
      for c in RUN_FIGURES),
    *(Column(c.name, c.unit, c.type, c.meaning.rstrip(".") + "; empty until the run finished and without a "
             "`traffic` section.", nullable=True) for c in TRAFFIC_FIGURES),
    _c("wall_s", "s", "float", "The run's own wall time on its worker; empty until it finished.", nullable=True),
))

FILES: dict[str, CsvFile] = {f.name: f for f in (TIMELINE, CAMPAIGNS, DEVICE_PULSES, HISTOGRAM, TRACE, SERVICE,
                                                 COMPARE, SWEEP)}
"""Every CSV file the twin writes, by name: the run's folder first, then compare's and sweep's."""


def _empty(value: object) -> bool:
    return value is None or value == ""


def table_text(file: str, rows: Iterable[Mapping[str, Any]], **families: Sequence[str]) -> str:
    """``file``'s CSV text: the dictionary's header (patterned columns expanded from ``families``,
    e.g. ``factor=[...]`` for sweep.csv), then one line per row. Raises :class:`ColumnError` for a
    row with a column the dictionary does not define, without one it does, or with an empty
    value in a column that may not be empty. The header is written also when there are no rows."""
    resolved = FILES[file].resolved(**families)
    names = [name for name, _ in resolved]
    known = set(names)
    required = [name for name, column in resolved if not column.nullable]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(rows):
        if row.keys() != known:
            extra, missing = sorted(row.keys() - known), sorted(known - row.keys())
            raise ColumnError(f"{file}, row {i}: " + "; ".join(
                ([f"columns {extra} are not in the data dictionary (twin/report/columns.py)"] if extra else [])
                + ([f"columns {missing} are missing"] if missing else [])))
        for name in required:
            if _empty(row[name]):
                raise ColumnError(f"{file}, row {i}: column {name!r} may not be empty")
        writer.writerow(row)
    return buffer.getvalue()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def data_dictionary_markdown() -> str:
    """docs/data-dictionary.md: every file, every column with unit, type and meaning."""
    lines = [
        "# Data dictionary: every CSV column",
        "",
        "<!-- Generated from twin/report/columns.py (data_dictionary_markdown); edit the definitions there. -->",
        "",
        "Every CSV file the twin writes, column by column, in the order of the files' headers. The writers "
        "build their headers from the same definitions (`twin/report/columns.py`) and refuse a row that does "
        "not match them, so this page and the files cannot disagree.",
        "",
        "- **Reading**: `import pandas as pd; pd.read_csv(path)`; each file has one header line, "
        "comma-separated, UTF-8, "
        "`\\n` line ends. Every file has its header even when it has no rows (a run without campaigns).",
        "- **Missing values**: an empty cell is a missing value (NaN in pandas); only columns marked "
        "*may be empty* have them.",
        "- **Times are given twice** where both matter: in seconds (`_s`, float, for plotting) and in integer "
        "nanoseconds (`_ns`, int, exact: a float second loses nanoseconds after months of simulated time).",
        "- **Types**: `float` (written as Python's shortest round-tripping repr), `int`, `bool` (`True` or "
        "`False`), `str`. Units are SI (`s`, `ns`, `J`); `fraction` is 0 to 1; counts name what they count "
        "(`pulses`, `devices`); `-` is an identifier or a label.",
        "- **Patterned columns**: a name with `<...>` stands for one column per value (listed in its meaning).",
        "",
        "A run's folder (`twin run`) holds timeline.csv, campaigns.csv, device_pulses.csv (or "
        "device_pulses_histogram.csv), with `outputs.trace: true` trace.csv, and with a `traffic` section "
        "service.csv; `twin compare` writes compare.csv, `twin sweep` sweep.csv. What else the folders hold "
        "(summary.json and its keys): [chip.md](chip.md#outputs-a-contract-other-tools-read), "
        "[sweeps.md](sweeps.md), [policies.md](policies.md).",
    ]
    for spec in FILES.values():
        lines += ["", f"## {spec.name}", "", spec.about, ""]
        lines += ["| column | unit | type | meaning |", "|---|---|---|---|"]
        for column in spec.columns:
            meaning = column.meaning + (" *May be empty.*" if column.nullable else "")
            lines.append(f"| `{column.name}` | {_cell(column.unit)} | {column.type} | {_cell(meaning)} |")
    return "\n".join(lines) + "\n"
