"""``twin sweep``: many runs of one base scenario, on the run engine (Dask), resumable.

A sweep file (docs/sweeps.md)::

    scenario: ../scenarios/default.yaml     # the base, relative to this file
    set: ["duration=30 d"]                  # overrides for every run (optional)
    grid:                                   # factorial: every combination (optional)
      chip.levels: [4, 8]
      policy.interval: [12 h, 1 d]
    list:                                   # override sets (optional), each crossed with the grid
      - {policy.name: periodic}
      - {policy.name: threshold, policy.threshold: 0.3}
    seeds: 3                                # seeds base.seed .. base.seed + 2, or a list [0, 7]

Runs = grid combinations x list entries x seeds. Seeds vary the chip only (independent
programmings of the same trained network, as in ``twin compare``). Each run gets a folder named
by a readable slug of its overrides, its seed and a short hash of its resolved scenario, so a
second ``twin sweep`` into the same folder finds and skips the runs already finished.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twin.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text, remove_output
from twin.log import get_logger
from twin.report.columns import table_text
from twin.report.report_files import REPORT_FILE, REPORT_FILES
from twin.scenario.loader import ScenarioError, did_you_mean, parse_yaml, read_input_file
from twin.scenario.schema import Scenario, load_scenario
from twin.study.compare import RUN_FIGURES, TRAFFIC_METRICS
from twin.study.engine import RunOutcome, RunTask, run_tasks

__all__ = ["SweepRun", "Sweep", "load_sweep_file", "run_sweep", "SWEEP_FILES", "MAX_SWEEP_RUNS", "START_MARKER"]

SWEEP_FILES = ["sweep.csv", "sweep.json"]
MAX_SWEEP_RUNS = 10_000  # each run is validated up front (a few ms each) and gets a folder
START_MARKER = ".started"  # in a run's folder: one JSON line per attempt (worker, pid, time)
_KEYS = {"scenario", "set", "grid", "list", "seeds", "description"}


@dataclass(frozen=True)
class SweepRun:
    key: str  # the run's folder name
    overrides: dict[str, str]  # the sweep's own overrides of this run (grid and list), as given
    seed: int
    scenario: Scenario


@dataclass(frozen=True)
class Sweep:
    path: Path
    base: Scenario
    factors: list[str]  # every override key that varies, in file order: the CSV's override columns
    runs: list[SweepRun]


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _override_sets(raw: dict) -> list[dict[str, str]]:
    grid = raw.get("grid") or {}
    entries = raw.get("list")
    if not isinstance(grid, dict):
        raise ScenarioError([("grid", "expected a mapping {key.path: [values]}")])
    for key, values in grid.items():
        if not isinstance(key, str) or not isinstance(values, list) or not values:
            raise ScenarioError([(f"grid.{key}", "expected a non-empty list of values")])
    if entries is not None and (not isinstance(entries, list) or not entries
                                or not all(isinstance(e, dict) for e in entries)):
        raise ScenarioError([("list", "expected a non-empty list of mappings {key.path: value}")])
    entries = entries or [{}]
    seeds = raw.get("seeds", 1)
    n_seeds = seeds if isinstance(seeds, int) else len(seeds) if isinstance(seeds, list) else 1
    total = math.prod(len(v) for v in grid.values()) * len(entries) * max(n_seeds, 1)
    if total > MAX_SWEEP_RUNS:
        raise ScenarioError([("grid", f"the sweep has {total:,} runs (grid x list x seeds), more than the "
                                      f"{MAX_SWEEP_RUNS:,} one sweep may hold; split it")])
    for key in list(grid) + [k for entry in entries for k in entry]:
        if key in ("seed", "network.seed"):
            where = f"grid.{key}" if key in grid else f"list.{key}"
            raise ScenarioError([(where, "seeds are set by seeds: (a count or a list); the network keeps the base "
                                         "scenario's seed")])
    combos = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    sets = []
    for combo in combos:
        for i, entry in enumerate(entries):
            clash = set(combo) & set(entry)
            if clash:
                raise ScenarioError([(f"list[{i}].{sorted(clash)[0]}", "also a grid key: set it in one place")])
            sets.append({str(k): _value_text(v) for k, v in (combo | entry).items()})
    return sets


def _seeds(raw: dict, base: Scenario) -> list[int]:
    seeds = raw.get("seeds", 1)
    if isinstance(seeds, bool) or not isinstance(seeds, (int, list)):
        raise ScenarioError([("seeds", "expected a count >= 1 or a list of seeds")])
    if isinstance(seeds, int):
        if seeds < 1:
            raise ScenarioError([("seeds", f"must be >= 1, got {seeds}")])
        return list(range(base.seed, base.seed + seeds))
    if not seeds or len(set(map(repr, seeds))) != len(seeds) \
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ScenarioError([("seeds", "a list of seeds must be non-empty, distinct integers")])
    return seeds


def run_key(overrides: dict[str, str], seed: int, scenario: Scenario) -> str:
    """A readable, stable folder name: the overrides and seed as a slug, then a hash of the
    resolved scenario (so a changed base or value never reuses a folder)."""
    parts = [f"{key}-{value}" for key, value in overrides.items()] or ["base"]
    slug = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts)).strip("-.")[:80] or "run"
    return f"{slug}_seed{seed}_{scenario.sha256()[:10]}"


def load_sweep_file(path: Path) -> Sweep:
    """Read and validate a sweep file and every run it makes (errors name the field)."""
    path = Path(path)
    raw = parse_yaml(read_input_file(path, "sweep file"), str(path))
    if not isinstance(raw, dict) or "scenario" not in raw:
        raise ScenarioError([(str(path), "expected a mapping with scenario: FILE (and grid:, list:, seeds:, set:)")])
    unknown = set(raw) - _KEYS
    if unknown:
        raise ScenarioError([(str(k), f"unknown key{did_you_mean(str(k), _KEYS)}; expected one of "
                                      f"{', '.join(sorted(_KEYS))}") for k in sorted(unknown)])
    if not isinstance(raw["scenario"], str):
        raise ScenarioError([("scenario", "expected the path of the base scenario file")])
    common = raw.get("set", [])
    if not isinstance(common, list) or not all(isinstance(x, str) for x in common):
        raise ScenarioError([("set", "expected a list of key.path=value strings")])
    base = load_scenario(path.parent / raw["scenario"], common)
    sets = _override_sets(raw)
    seeds = _seeds(raw, base)
    pin = [] if base.network.seed is not None else [f"network.seed={base.seed}"]  # seeds vary the chip only
    runs = []
    for overrides in sets:
        try:
            varied = base.with_overrides([f"{k}={v}" for k, v in overrides.items()] + pin)
        except ScenarioError as exc:
            origin = ", ".join(f"{k}={v}" for k, v in overrides.items())
            raise ScenarioError([(field, f"{message} (in the run {origin})") for field, message in exc.errors]) from None
        for seed in seeds:
            scenario = varied.with_overrides([f"seed={seed}"])
            runs.append(SweepRun(run_key(overrides, seed, scenario), overrides, seed, scenario))
    seen: dict[str, SweepRun] = {}
    for run in runs:
        if run.key in seen:
            raise ScenarioError([("grid" if raw.get("grid") else "list",
                                  f"two runs are the same ({', '.join(f'{k}={v}' for k, v in run.overrides.items())}, "
                                  f"seed {run.seed}): list each value once")])
        seen[run.key] = run
    factors = list(dict.fromkeys(k for run in runs for k in run.overrides))
    return Sweep(path, base, factors, runs)


def finished_summary(folder: Path, scenario: Scenario) -> dict | None:
    """The summary of a finished run of ``scenario`` in ``folder`` (summary.json lands last), or None."""
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if summary.get("scenario", {}).get("sha256") == scenario.sha256() else None


def _figure(get: Callable[[dict], Any], summary: dict) -> str:
    try:
        value = get(summary)
    except (KeyError, TypeError, ZeroDivisionError):  # a figure the run does not have (no traffic)
        return ""
    if value is None:
        return ""
    return str(int(value)) if isinstance(value, int) else repr(float(value))  # numpy scalars print plainly


def csv_text(sweep: Sweep, rows: dict[str, dict]) -> str:
    """One row per run in sweep order: its overrides, status (ok, failed, pending) and figures;
    columns and their order: the data dictionary's (twin/report/columns.py), one per factor."""
    figures = RUN_FIGURES | TRAFFIC_METRICS
    table = []
    for run in sweep.runs:
        row = rows.get(run.key, {"status": "pending"})
        summary = row.get("summary")
        table.append({"run": run.key, "seed": run.seed} | {f: run.overrides.get(f, "") for f in sweep.factors}
                     | {"status": row["status"], "error": row.get("error") or ""}
                     | {name: _figure(get, summary) if summary else "" for name, get in figures.items()}
                     | {"wall_s": repr(summary["wall_s"]) if summary else ""})
    return table_text("sweep.csv", table, factor=sweep.factors)


def _write_run(folder: Path, outcome: RunOutcome) -> None:
    """The run's files, summary.json last (its presence marks the run finished)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "error.txt").unlink(missing_ok=True)
    for name in REPORT_FILES:  # an earlier result's report describes that result, not this one
        remove_output(folder / name)
    if outcome.error is not None:
        (folder / "summary.json").unlink(missing_ok=True)  # a forced re-run that failed: no older result stays
        atomic_write_text(folder / "error.txt", outcome.error + "\n")
        return
    for name, data in outcome.files.items():
        if name != "summary.json":
            atomic_write_bytes(folder / name, data)
    atomic_write_bytes(folder / "summary.json", outcome.files["summary.json"])


def _run_report(folder: Path) -> None:
    """A run's report.html (``--run-reports``): a failure is said and the sweep goes on (the run's
    results are complete; ``twin report FOLDER`` builds it later)."""
    from twin.report.html import write_report
    try:
        write_report(folder)
    except Exception as exc:  # noqa: BLE001  (a report is derived: it never stops the runs)
        get_logger("twin.sweep").warning("no report for this run", folder=str(folder),
                                         error=f"{type(exc).__name__}: {exc}")


def run_sweep(sweep: Sweep, out: Path, workers: int | None = None, scheduler: str | None = None,
              force: bool = False, progress: Callable[[int, int], None] | None = None,
              run_reports: bool = False) -> dict[str, dict]:
    """Run every unfinished run of ``sweep`` into ``out``; returns each run's row (status, error, summary).
    ``run_reports``: also build each finished run's report.html in its folder (here, as results arrive)."""
    out.mkdir(parents=True, exist_ok=True)
    spec = {"sweep_file": str(sweep.path), "base": {"name": sweep.base.name, "sha256": sweep.base.sha256()},
            "factors": sweep.factors,
            "runs": [{"key": r.key, "seed": r.seed, "overrides": r.overrides, "sha256": r.scenario.sha256()}
                     for r in sweep.runs]}
    atomic_write_json(out / "sweep.json", spec)
    rows: dict[str, dict] = {}
    for run in sweep.runs:
        summary = None if force else finished_summary(out / run.key, run.scenario)
        if summary is not None:
            rows[run.key] = {"status": "ok", "summary": summary, "resumed": True}
    atomic_write_text(out / "sweep.csv", csv_text(sweep, rows))
    if run_reports:  # runs found done get theirs too
        for key in rows:
            if not (out / key / REPORT_FILE).is_file():
                _run_report(out / key)
    todo = [RunTask(r.key, r.scenario, r.key, r.seed, want_files=True) for r in sweep.runs if r.key not in rows]
    lock = threading.Lock()  # start events arrive on the Dask client's thread

    def started(event: dict) -> None:
        with lock:
            folder = out / event["key"]
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / START_MARKER, "a", encoding="utf-8") as handle:
                handle.write(json.dumps({k: event.get(k) for k in ("worker", "address", "pid", "time")}) + "\n")

    def arrived(outcome: RunOutcome) -> None:
        _write_run(out / outcome.key, outcome)
        rows[outcome.key] = ({"status": "ok", "summary": outcome.summary} if outcome.error is None
                             else {"status": "failed", "error": outcome.error})
        atomic_write_text(out / "sweep.csv", csv_text(sweep, rows))  # after every result, not only at the end
        if run_reports and outcome.error is None:
            _run_report(out / outcome.key)
        if progress:
            progress(len(rows), len(sweep.runs))

    if progress:
        progress(len(rows), len(sweep.runs))
    run_tasks(todo, workers, scheduler, on_result=arrived, on_start=started)
    return rows

