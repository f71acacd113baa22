"""The bench's child process: runs a scenario (or several) in a fresh interpreter and writes JSON.

    python -m bench.child SPEC.json OUT.json      (from the repository root; bench/common.py spawns it)

SPEC (JSON) ``mode``:

- ``scenario``: load ``scenario`` with ``overrides``; optionally a warm-up run (``warmup``, with
  ``warmup_overrides`` if given), recorded by :class:`bench.workload.WorkRecorder` when
  ``record_in`` is ``warmup``; the timed ``simulate(scenario)`` (recorded instead when
  ``record_in`` is ``timed``: build, attach, run, collect, each timed); optionally cProfile of one
  more ``simulate`` (``profile``: SimPy's own share); then the floor (bench/floor.py, best of
  ``floor_repeats``) of the recorded sequence. ``time.monotonic()`` when the timed run ends is
  reported, so the parent gets the wall time from its spawn.
- ``scaling``: ``points`` (each ``label`` and ``overrides``), one timed ``simulate`` each after a
  warm-up on the first; the JSON is rewritten after every point, so a timeout keeps the points done.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import resource
import sys
import time
from pathlib import Path
from typing import Any

START = time.monotonic()


def _write(path: Path, value: dict) -> None:
    from twin.atomic import atomic_write_json
    atomic_write_json(path, value)


def simpy_share(profile: cProfile.Profile) -> dict:
    """Time inside simpy's own modules (tottime of functions in simpy/*.py) over the profile's total."""
    stats: Any = pstats.Stats(profile)
    total = stats.total_tt
    own: dict[str, float] = {}
    for (filename, line, name), (_, _, tt, _, _) in stats.stats.items():
        if f"{os.sep}simpy{os.sep}" in filename:
            key = f"simpy/{filename.rsplit(os.sep + 'simpy' + os.sep, 1)[1]}:{name}"
            own[key] = own.get(key, 0.0) + tt
    top = sorted(((tt, f"{Path(f).name}:{ln}({n})") for (f, ln, n), (_, _, tt, _, _) in stats.stats.items()),
                 reverse=True)[:12]
    simpy_s = sum(own.values())
    return {"profiled_total_s": total, "simpy_own_s": simpy_s, "simpy_share": simpy_s / total if total else None,
            "simpy_top": dict(sorted(own.items(), key=lambda kv: -kv[1])[:6]),
            "top_tottime": [{"function": name, "tottime_s": tt} for tt, name in top]}


def _summary_figures(summary: dict) -> dict:
    chip = summary.get("chip", {})
    return {"devices": chip.get("devices"), "used_devices": chip.get("used_devices"),
            "tiles": chip.get("tiles"), "campaigns": summary.get("campaigns"), "events": summary.get("events"),
            "pulses": summary.get("pulses", {}).get("total"),
            "initial_pulses": (summary.get("initial_programming", {}).get("partial_set", 0)
                               + summary.get("initial_programming", {}).get("reset", 0)),
            "duration_s": summary.get("duration_s")}


def recorded_run(scenario, timing: bool = False) -> tuple[dict, Any, tuple[Any, Any]]:
    """build, attach a WorkRecorder, run, collect; each phase timed."""
    from bench.workload import WorkRecorder
    from twin.report.records import collect
    from twin.scenario.build import build
    t0 = time.perf_counter()
    assembly = build(scenario)
    t1 = time.perf_counter()
    recorder = WorkRecorder.for_assembly(assembly, timing=timing)
    t2 = time.perf_counter()
    assembly.run()
    t3 = time.perf_counter()
    result = collect(assembly, t3 - t0)
    t4 = time.perf_counter()
    phases = {"build_s": t1 - t0, "run_s": t3 - t2, "collect_s": t4 - t3, "compute_s": (t1 - t0) + (t4 - t2),
              "run_end_monotonic": time.monotonic()}
    if timing:
        # the initial programming: up to the first probe, less the checkpoints evaluated before it
        end = recorder.deployed_at_s if recorder.deployed_at_s is not None else t3
        before = recorder.checkpoint_s_at_deploy if recorder.deployed_at_s is not None else recorder.checkpoint_s
        phases["deploy_s"] = end - t2 - before
        phases["checkpoint_s"] = recorder.checkpoint_s
    return phases, recorder, (assembly, result)


def scenario_mode(spec: dict, out: Path) -> dict:
    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate
    root = Path(spec.get("root", "."))
    path = root / spec["scenario"]
    scenario = load_scenario(path, spec.get("overrides", []))
    report: dict = {"mode": "scenario", "scenario": spec["scenario"], "overrides": spec.get("overrides", []),
                    "imports_s": time.monotonic() - START}
    recorder: Any = None
    assembly: Any = None
    if spec.get("warmup", True):
        warm = load_scenario(path, spec["warmup_overrides"]) if "warmup_overrides" in spec else scenario
        if spec.get("record_in", "warmup") == "warmup":
            phases, recorder, (assembly, result) = recorded_run(warm)
            report["warmup"] = phases | {"summary": _summary_figures(result.summary)}
        else:
            t = time.perf_counter()
            simulate(warm)
            report["warmup"] = {"compute_s": time.perf_counter() - t}
    if not spec.get("timed", True):
        pass
    elif spec.get("record_in", "warmup") == "timed":
        phases, recorder, (assembly, result) = recorded_run(scenario, timing=spec.get("timing", False))
        report["timed"] = phases | {"summary": _summary_figures(result.summary)}
    else:  # best of timed_repeats (1 by default): each a whole simulate(scenario)
        times = []
        for _ in range(max(1, int(spec.get("timed_repeats", 1)))):
            t = time.perf_counter()
            result = simulate(scenario)
            times.append(time.perf_counter() - t)
        report["timed"] = {"compute_s": min(times), "compute_times_s": times, "run_end_monotonic": time.monotonic(),
                           "summary": _summary_figures(result.summary)}
    report["peak_rss_mb_after_run"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _write(out, report)
    if spec.get("profile"):
        prof_scenario = load_scenario(path, spec["profile_overrides"]) if "profile_overrides" in spec else scenario
        profile = cProfile.Profile()
        profile.enable()
        simulate(prof_scenario)
        profile.disable()
        report["profile"] = simpy_share(profile) | {"overrides": spec.get("profile_overrides",
                                                                           spec.get("overrides", []))}
        _write(out, report)
    if recorder is not None and spec.get("floor_repeats", 3) > 0:
        from bench.floor import floor_seconds
        from twin.toolchain.networks import build_network
        sequence = recorder.sequence()
        accuracy = assembly.observers.accuracy
        model = build_network(scenario.network.architecture, seed=0)
        floor = floor_seconds(sequence, model, accuracy.x_test, accuracy.y_test, spec.get("floor_repeats", 3))
        report["work"] = sequence.totals
        report["floor"] = floor.as_dict()
    return report


def scaling_mode(spec: dict, out: Path) -> dict:
    from twin.scenario.schema import load_scenario
    from twin.simulate import simulate
    path = Path(spec.get("root", ".")) / spec["scenario"]
    report: dict = {"mode": "scaling", "axis": spec.get("axis"), "points": []}
    points = spec["points"]
    if points and spec.get("warmup", True):
        simulate(load_scenario(path, points[0]["overrides"] + spec.get("warmup_overrides", [])))
    from twin.report.records import collect
    from twin.scenario.build import build
    for point in points:  # simulate(), phase by phase: build (network preparation, deployment plan), run, collect
        scenario = load_scenario(path, point["overrides"])
        t0 = time.perf_counter()
        assembly = build(scenario)
        t1 = time.perf_counter()
        assembly.run()
        t2 = time.perf_counter()
        result = collect(assembly, t2 - t0)
        elapsed = time.perf_counter() - t0
        report["points"].append({"label": point["label"], "overrides": point["overrides"], "compute_s": elapsed,
                                 "build_s": t1 - t0, "run_s": t2 - t1,
                                 **_summary_figures(result.summary),
                                 "peak_rss_mb_so_far": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
        _write(out, report)
    return report


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text())
    out = Path(argv[2])
    if spec.get("torch_threads"):
        import torch
        torch.set_num_threads(int(spec["torch_threads"]))
    modes = {"scenario": scenario_mode, "scaling": scaling_mode}
    report = modes[spec["mode"]](spec, out)
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report["child_wall_s"] = time.monotonic() - START
    _write(out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
