"""Figure 6: sweep throughput through the Dask run engine (twin/study/sweep.py, docs/sweeps.md),
and optionally the time of ``make experiments`` (the three comparisons of docs/experiments/).

- **single run**: a child process (bench/child.py) runs the sweep's scenario (seed 0) once to warm
  up and once timed, with one torch thread as the engine's workers run: seconds per run with
  imports and the model cache already warm.
- **sweep**: ``twin sweep`` of ``runs`` seeds of the same scenario on a local cluster of
  ``workers`` worker processes, timed from spawn to exit (start-up, the cluster, shipping the
  network, every run, writing every run folder and sweep.csv).
  runs/min = runs / sweep wall x 60; ideal runs/min = workers x 60 / single run;
  engine overhead = 1 - runs/min / ideal. On a shared machine the ideal assumes ``workers`` free
  cores; the load average is in the JSON.
- **experiments** (``--experiments``, off by default: about half an hour on two cores before the
  speed work): ``twin compare`` of docs/experiments/{policies-1y,intervals,policies-10y}.yaml and
  ``python -m twin.study.experiments.policy_study``, as ``make experiments`` does, in a temporary
  folder (copies of the comparison files, the scenarios linked), timed from spawn to exit.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import ROOT, run_child, spawn

__all__ = ["sweep_figures", "experiments_figures"]

EXPERIMENTS = ("policies-1y", "intervals", "policies-10y")


def sweep_figures(runs: int = 8, workers: int = 2, overrides: tuple[str, ...] = ("duration=30 d",
                  "checkpoints.count=8"), scenario: str = "scenarios/default.yaml", timeout_s: float = 1800) -> dict:
    # one torch thread, as the engine runs each run on its worker (twin/study/engine.py)
    single, _ = run_child({"mode": "scenario", "scenario": scenario, "overrides": list(overrides), "warmup": True,
                           "record_in": "none", "profile": False, "floor_repeats": 0}, timeout_s, 1)
    single_s = single["timed"]["compute_s"]
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        sweep_file = Path(tmp) / "sweep.yaml"
        lines = [f"scenario: {ROOT / scenario}", "set:"] + [f"  - {o!r}" for o in overrides] + [f"seeds: {runs}"]
        sweep_file.write_text("\n".join(lines) + "\n")
        out = Path(tmp) / "out"
        proc = spawn([sys.executable, "-m", "twin.cli", "sweep", str(sweep_file), "--out", str(out),
                      "--workers", str(workers), "--quiet"], timeout_s)
        if proc.returncode != 0:
            tail = proc.stderr.strip().splitlines()[-2:]
            raise RuntimeError(f"twin sweep exited {proc.returncode}: {' | '.join(tail)}")
        with open(out / "sweep.csv", newline="") as f:
            rows = list(csv.DictReader(f))
    ok = [r for r in rows if r.get("status") == "ok"]
    worker_run_s = [float(r["wall_s"]) for r in ok if r.get("wall_s")]
    per_min = len(ok) / proc.wall_s * 60
    ideal = workers * 60 / single_s
    return {"scenario": scenario, "overrides": list(overrides), "runs": runs, "runs_ok": len(ok),
            "workers": workers, "single_run_s": single_s, "sweep_wall_s": proc.wall_s,
            "runs_per_min": per_min, "ideal_runs_per_min": ideal, "engine_overhead": 1 - per_min / ideal,
            "worker_run_wall_s_mean": sum(worker_run_s) / len(worker_run_s) if worker_run_s else None,
            "loadavg_after": list(os.getloadavg()),
            "note": "engine overhead = 1 - (runs/min) / (workers x 60 / single run s); the sweep is timed from "
                    "spawn of `twin sweep` (start-up and the local cluster included)"}


def experiments_figures(timeout_s: float = 7200, seeds: int | None = None, overrides: tuple[str, ...] = ()) -> dict:
    """``make experiments`` into a temporary folder, each step timed from spawn (``seeds`` and
    ``overrides``: a cut-down version, to check the mechanics; None and () as ``make experiments``)."""
    steps = []
    with tempfile.TemporaryDirectory(prefix="bench-experiments-") as tmp:
        here = Path(tmp)
        exp = here / "docs" / "experiments"
        exp.mkdir(parents=True)
        for name in EXPERIMENTS:
            shutil.copy(ROOT / "docs" / "experiments" / f"{name}.yaml", exp / f"{name}.yaml")
        (here / "scenarios").symlink_to(ROOT / "scenarios")  # the comparisons name ../../scenarios/...
        total = 0.0
        for name in EXPERIMENTS:
            extra = ([] if seeds is None else ["--seeds", str(seeds)]) + [a for o in overrides for a in ("--set", o)]
            proc = spawn([sys.executable, "-m", "twin.cli", "compare", f"docs/experiments/{name}.yaml", "--out",
                          f"docs/experiments/results/{name}", "--force", *extra], timeout_s - total, cwd=here)
            total += proc.wall_s
            steps.append({"step": f"twin compare docs/experiments/{name}.yaml", "wall_s": proc.wall_s,
                          "returncode": proc.returncode})
            if proc.returncode != 0:
                raise RuntimeError(f"{steps[-1]['step']} exited {proc.returncode}: "
                                   f"{proc.stderr.strip().splitlines()[-1:]}")
        proc = spawn([sys.executable, "-m", "twin.study.experiments.policy_study"], max(timeout_s - total, 60),
                     cwd=here)
        total += proc.wall_s
        steps.append({"step": "python -m twin.study.experiments.policy_study", "wall_s": proc.wall_s,
                      "returncode": proc.returncode})
    return {"total_s": total, "steps": steps, "target_s": 480, "seeds": seeds, "overrides": list(overrides),
            "note": "make experiments' commands into a temporary folder (docs/ untouched)"}
