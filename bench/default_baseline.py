"""The default scenario's statistics over 20 programmings, recorded before the speed work of
issue 11 (tests/fixtures/default_baseline.json): a faster simulator may draw its random numbers in
another order, so bytes may change, but these means may not move beyond their standard errors.

    .venv/bin/python bench/default_baseline.py [--seeds 20] [--workers N] [--out tests/fixtures/default_baseline.json]

Seeds 0 .. N-1 are independent programmings of the same trained network (the network keeps the
scenario's seed, as in ``twin compare``). About 5 minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np

from twin.atomic import atomic_write_text
from twin.chip.ledger import maintenance_energy
from twin.scenario.schema import load_scenario
from twin.study.engine import RunTask, run_tasks

ROOT = Path(__file__).resolve().parents[1]
FIGURES = {
    "accuracy_min": lambda s: min(a["accuracy"] for a in s["accuracy"]),
    "accuracy_final": lambda s: s["accuracy"][-1]["accuracy"],
    "pulses_total": lambda s: s["pulses"]["total"],
    "energy_maintenance_j": lambda s: maintenance_energy(s["energy_j"]),
    "energy_total_j": lambda s: s["energy_j"]["total"],
}
"""Each figure's unit is in its name (accuracies are fractions, pulses a count, energies J)."""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/fixtures/default_baseline.json")
    args = parser.parse_args()
    base = load_scenario(ROOT / "scenarios/default.yaml")
    pin = [] if base.network.seed is not None else [f"network.seed={base.seed}"]
    tasks = [RunTask(f"seed{s}", base.with_overrides(pin + [f"seed={s}"]), f"seed{s}", s) for s in range(args.seeds)]
    outcomes = run_tasks(tasks, args.workers, on_result=lambda o: print(f"  seed {o.seed} done", file=sys.stderr))
    failed = [o for o in outcomes if o.error]
    if failed:
        print(f"{len(failed)} runs failed: {failed[0].error}", file=sys.stderr)
        return 1
    summaries = [o.summary for o in outcomes]
    figures = {}
    for name, get in FIGURES.items():
        values = np.array([get(s) for s in summaries], dtype=float)
        figures[name] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)),
                         "se": float(values.std(ddof=1) / math.sqrt(values.size)), "values": values.tolist()}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    payload = {"scenario": "scenarios/default.yaml", "scenario_sha256": base.sha256(), "seeds": list(range(args.seeds)),
               "code_commit": commit, "python": platform.python_version(),
               "command": "python bench/default_baseline.py --seeds %d" % args.seeds, "figures": figures}
    atomic_write_text(args.out, json.dumps(payload, indent=2, sort_keys=True) + "\n")
    for name, f in figures.items():
        print(f"{name:24s} {f['mean']:.6g} +- {f['se']:.3g} (se, {args.seeds} seeds)")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
