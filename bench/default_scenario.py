"""Figures 1 and 2 (default part): the default scenario's wall time from process start, its compute
time after a warm-up, the floor ratio, peak memory, and SimPy's own share of a profile.

- **wall from process start**: ``python -m twin.cli run SCENARIO --out TMP --quiet --no-report``
  timed from spawn to exit (imports, network preparation from the model cache, simulation, output
  files); its peak RSS from ``wait4``. The report (``twin report TMP``) is timed apart.
- **compute**: in one child process (bench/child.py), a warm-up run recorded by
  bench/workload.py, then ``simulate(scenario)`` timed; then cProfile of another ``simulate``
  (tottime of functions in simpy/*.py over the profile's total); then the floor (bench/floor.py) of
  the recorded sequence, best of 3. compute / floor is the floor ratio.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from bench.common import run_child, spawn

__all__ = ["default_figures"]


def cli_wall(scenario: str, overrides: list[str], timeout_s: float) -> dict:
    """``twin run --no-report`` from spawn to exit, then ``twin report`` of its folder timed apart
    (reading the folder's files, plotting, writing report.html): the report is no simulation."""
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        out = str(Path(tmp) / "run")
        cmd = [sys.executable, "-m", "twin.cli", "run", scenario, "--out", out, "--quiet", "--no-report"]
        for o in overrides:
            cmd += ["--set", o]
        proc = spawn(cmd, timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"twin run exited {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
        report = spawn([sys.executable, "-m", "twin.cli", "report", out, "--quiet"], timeout_s)
    if report.returncode != 0:
        raise RuntimeError(f"twin report exited {report.returncode}: {report.stderr.strip().splitlines()[-1:]}")
    return {"command": " ".join(["twin run", scenario, "--no-report"] + [f"--set {o}" for o in overrides]),
            "wall_s": proc.wall_s, "peak_rss_mb": proc.peak_rss_mb,
            "report_wall_s": report.wall_s, "report_peak_rss_mb": report.peak_rss_mb}


def default_figures(scenario: str, overrides: list[str], timeout_s: float = 1800, profile: bool = True,
                    torch_threads: int | None = None, timed_repeats: int = 1) -> dict:
    cli = cli_wall(scenario, overrides, timeout_s)
    report, proc = run_child({"mode": "scenario", "scenario": scenario, "overrides": overrides, "warmup": True,
                              "record_in": "warmup", "profile": profile, "floor_repeats": 3,
                              "timed_repeats": timed_repeats},
                             timeout_s, torch_threads)
    if report.get("timed_out"):
        raise RuntimeError(f"the default scenario's child ran past {timeout_s:.0f} s")
    compute = report["timed"]["compute_s"]
    floor = report.get("floor", {})
    out = {"scenario": scenario, "overrides": overrides, "cli": cli, "wall_s": cli["wall_s"],
           "report_wall_s": cli["report_wall_s"],
           "peak_rss_mb": cli["peak_rss_mb"], "compute_s": compute,
           "compute_times_s": report["timed"].get("compute_times_s"),
           "warmup_build_s": report["warmup"].get("build_s"), "warmup_run_s": report["warmup"].get("run_s"),
           "floor_s": floor.get("floor_s"), "floor": floor,
           "compute_over_floor": compute / floor["floor_s"] if floor.get("floor_s") else None,
           "work": report.get("work"), "summary": report["timed"]["summary"],
           "child_peak_rss_mb": proc.peak_rss_mb}
    if "profile" in report:
        out["profile"] = report["profile"]
        out["simpy_share"] = report["profile"]["simpy_share"]
    return out
