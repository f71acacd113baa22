"""Speed figures of pcm-twin (``make bench``), issue 11. This machine is shared and noisy, so every
figure is a ratio against a baseline measured in the same run; none is asserted in tests.

    .venv/bin/python bench/run.py [--quick] [--full] [--chip64-days N] [--experiments]
                                  [--only default,reads,...] [--out bench/results/bench.json]

Sections (modules of bench/; bench/README.md says what each measures and how):

  micro      machine baseline (fixed numpy workload), SA quantizer, traffic engine   bench/micro.py
  default    default scenario: wall from process start, compute, floor ratio,
             peak memory, SimPy's own share                                          bench/default_scenario.py
  reads      DeviceArray.read against numpy of the same correlated math, 2^21      bench/reads.py
  accuracy   accuracy evaluation: the twin against aihwkit's analog forward          bench/accuracy_eval.py
  chip64     scenarios/chip64.yaml: wall, peak memory, floor ratio; SimPy share      bench/chip64.py
  sweep      runs/min through the Dask engine (+ make experiments, --experiments)    bench/sweep_throughput.py
  scaling    time against devices and against campaigns, log-log, exponents         bench/scaling.py

The floor (bench/floor.py) is the run's own work sequence, recorded from the chip's event bus
(bench/workload.py), replayed as bare numpy and plain torch in the same process, best of 3.
JSON (atomic, rewritten after every section) and the scaling plots go to --out's folder.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench.* and twin.* from the repository root

from bench.common import ROOT, Skip, machine_baseline, machine_facts  # noqa: E402
from bench.table import print_table  # noqa: E402

SECTIONS = ("micro", "default", "reads", "accuracy", "chip64", "sweep", "scaling")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench.json",
                   help="JSON file (or a folder: bench.json in it); plots beside it (default bench/results/bench.json)")
    p.add_argument("--quick", action="store_true", help="reduced sizes: a smoke test of every section (minutes)")
    p.add_argument("--full", action="store_true", help="chip64 for its whole year, scaling up to 1e4 campaigns")
    p.add_argument("--chip64-days", type=float, default=None,
                   help="simulated days of chip64 (default 7, --quick 2); a year is extrapolated linearly "
                        "(--full: the whole year)")
    p.add_argument("--experiments", action="store_true",
                   help="also time `make experiments` into a temporary folder (long: tens of minutes)")
    p.add_argument("--only", help=f"comma-separated sections to run, of {','.join(SECTIONS)}")
    p.add_argument("--scenario", default="scenarios/default.yaml", help="the default section's scenario")
    p.add_argument("--torch-threads", type=int, default=int(os.environ.get("PCM_TWIN_TORCH_THREADS", "1")),
                   help="torch threads here and in every child process, `twin run` included (default: as twin's "
                        "CLI, PCM_TWIN_TORCH_THREADS or 1)")
    p.add_argument("--timed-repeats", type=int, default=1,
                   help="default scenario: best of this many timed runs after the warm-up (default 1)")
    return p


def sizes(args) -> dict:
    quick = args.quick
    days = args.chip64_days if args.chip64_days is not None else (2 if quick else 7)
    return {
        "default_overrides": ["duration=30 d", "checkpoints.count=10"] if quick else [],
        "reads": {"n": 1 << 18, "repeats": 3} if quick else {"n": 1 << 21, "repeats": 5},
        "accuracy": {"programmings": 3, "repeats": 3} if quick else {"programmings": 8, "repeats": 5},
        "chip64_days": None if args.full else days,
        "chip64_profile_days": 1 if quick else 2,
        "sweep": ({"runs": 4, "workers": 2, "overrides": ("duration=10 d", "checkpoints.count=4")} if quick else
                  {"runs": 8, "workers": 2, "overrides": ("duration=30 d", "checkpoints.count=8")}),
        "scaling": ({"max_devices": 4e4, "max_campaigns": 30, "timeout_s": 600} if quick else
                    {"max_devices": 1e7, "max_campaigns": 10000 if args.full else 1000,
                     "timeout_s": 3600 if args.full else 600}),
        "micro": {"anneal_repeats": 2, "traffic_requests": 50_000, "traffic_repeats": 2} if quick else
                 {"anneal_repeats": 5, "traffic_requests": 200_000, "traffic_repeats": 3},
    }


def guarded(fn) -> dict:
    """``fn()``, or what stopped it: ``skipped`` (a reason) or ``error`` (so that a section keeps its other parts)."""
    try:
        return fn()
    except Skip as reason:
        print(f"[bench]   skipped: {reason}", file=sys.stderr)
        return {"skipped": str(reason)}
    except Exception as exc:  # noqa: BLE001
        print(f"[bench]   failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-4000:]}


def run_section(name: str, args, size: dict, out_path: Path) -> dict:
    threads = args.torch_threads
    if name == "micro":
        from bench.micro import anneal_figures, traffic_figures
        return {"baseline_s": machine_baseline(), "anneal": anneal_figures(repeats=size["micro"]["anneal_repeats"]),
                "traffic": traffic_figures(size["micro"]["traffic_requests"], size["micro"]["traffic_repeats"])}
    if name == "default":
        from bench.default_scenario import default_figures
        return default_figures(args.scenario, size["default_overrides"], torch_threads=threads,
                               timed_repeats=args.timed_repeats)
    if name == "reads":
        from bench.reads import read_figures
        return read_figures(size["reads"]["n"], size["reads"]["repeats"])
    if name == "accuracy":
        from bench.accuracy_eval import accuracy_figures
        return accuracy_figures(size["accuracy"]["programmings"], size["accuracy"]["repeats"])
    if name == "chip64":
        from bench.chip64 import SCENARIO, chip64_figures, chip64_profile
        if not (ROOT / SCENARIO).exists():
            raise Skip(f"{SCENARIO} does not exist (yet)")
        return {"run": guarded(lambda: chip64_figures(size["chip64_days"], timeout_s=7200 if args.full else 1800,
                                                      torch_threads=threads, floor_repeats=1 if args.quick else 3)),
                "profile": guarded(lambda: chip64_profile(size["chip64_profile_days"], torch_threads=threads))}
    if name == "sweep":
        from bench.sweep_throughput import experiments_figures, sweep_figures
        s = size["sweep"]
        return {"sweep": guarded(lambda: sweep_figures(s["runs"], s["workers"], s["overrides"])),
                "experiments": guarded(experiments_figures) if args.experiments else {"skipped": "off (--experiments)"}}
    if name == "scaling":
        from bench.scaling import plot, scaling_figures
        s = size["scaling"]
        figures = scaling_figures(s["max_devices"], s["max_campaigns"], s["timeout_s"], threads)
        figures["plots"] = plot(figures, out_path.with_name(out_path.stem + "-scaling"))
        return figures
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # a SIGTERM (make interrupted, a job killed) unwinds like Ctrl-C: the child processes, each in its
    # own session, are ended with it (bench/common.py spawn) and temporary folders removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    out_path = args.out / "bench.json" if args.out.is_dir() or args.out.suffix != ".json" else args.out
    out_path.parent.mkdir(parents=True, exist_ok=True)
    chosen = SECTIONS if not args.only else tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = set(chosen) - set(SECTIONS)
    if unknown:
        print(f"--only: unknown section(s) {', '.join(sorted(unknown))}; known: {', '.join(SECTIONS)}", file=sys.stderr)
        return 2
    size = sizes(args)
    # one torch setting for the whole bench: here (reads, accuracy, micro), the bench's child processes,
    # and `twin run` (it reads the variable)
    os.environ["PCM_TWIN_TORCH_THREADS"] = str(args.torch_threads)
    import torch
    torch.set_num_threads(args.torch_threads)
    from twin.atomic import atomic_write_json
    report = {"started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "command": " ".join(["bench/run.py"] + (argv if argv is not None else sys.argv[1:])),
              "quick": args.quick, "full": args.full, "sizes": size, "machine": machine_facts(),
              "sections": {}, "section_wall_s": {}}
    started = time.perf_counter()
    for name in chosen:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            report["sections"][name] = run_section(name, args, size, out_path)
        except Skip as reason:
            report["sections"][name] = {"skipped": str(reason)}
            print(f"[bench] {name} skipped: {reason}", file=sys.stderr)
        except Exception as exc:  # noqa: BLE001 (one section failing must not lose the others)
            report["sections"][name] = {"error": f"{type(exc).__name__}: {exc}",
                                        "traceback": traceback.format_exc()[-4000:]}
            print(f"[bench] {name} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        report["section_wall_s"][name] = time.perf_counter() - t
        report["total_wall_s"] = time.perf_counter() - started
        report["machine"]["loadavg_end"] = list(os.getloadavg())
        atomic_write_json(out_path, report)
        print(f"[bench] {name} done in {report['section_wall_s'][name]:.0f} s", file=sys.stderr, flush=True)
    end = machine_facts()  # others may commit while the bench runs: say so
    report["machine"]["git_commit_end"], report["machine"]["git_dirty_end"] = end["git_commit"], end["git_dirty"]
    atomic_write_json(out_path, report)
    print_table(report)
    print(f"figures: {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
