"""The chip twin against aihwkit over many programmings: the table in docs/analog.md.

Runs twin.study.crosscheck on scenarios/analog_hwa_gdc.yaml (network.seed 0, one accuracy sample
per checkpoint: the spread that matters is the one between programmings) and writes
docs/results/crosscheck.md and .json: per time and GDC setting, each side's mean, standard error
over programmings and spread of one programming, and z. tests/test_crosscheck.py runs the same
with 150 programmings per side.

    .venv/bin/python bench/crosscheck.py [--programmings 150] [--out docs/results]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from twin.atomic import atomic_write_text  # noqa: E402
from twin.scenario.schema import load_scenario  # noqa: E402
from twin.study.crosscheck import crosscheck  # noqa: E402
from twin.units import duration_label  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--programmings", type=int, default=150)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results")
    args = parser.parse_args()
    scenario = load_scenario(ROOT / "scenarios" / "analog_hwa_gdc.yaml",
                             ["network.seed=0", "evaluation.accuracy_samples=1", "outputs.progress=false"])
    start = time.perf_counter()
    rows = crosscheck(scenario, args.programmings)
    wall = time.perf_counter() - start
    lines = [f"# Chip twin (analog, HWA) against aihwkit: {args.programmings} programmings per side",
             "", f"`bench/crosscheck.py --programmings {args.programmings}`, {wall:.0f} s on this machine. "
             "Accuracy in %, mean ± standard error over programmings; std: the spread of one programming.", "",
             "| time | GDC | twin | twin std | aihwkit | aihwkit std | z |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {duration_label(r.t_ns)} | {'on' if r.gdc else 'off'} | {100 * r.twin_mean:.2f} ± "
                     f"{100 * r.twin_se:.2f} | {100 * r.twin_std:.2f} | {100 * r.aihwkit_mean:.2f} ± "
                     f"{100 * r.aihwkit_se:.2f} | {100 * r.aihwkit_std:.2f} | {r.z:+.2f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "crosscheck.md", "\n".join(lines) + "\n")
    atomic_write_text(args.out / "crosscheck.json", json.dumps(
        {"programmings": args.programmings, "wall_s": wall,
         "rows": [asdict(r) | {"z": r.z} for r in rows]}, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
