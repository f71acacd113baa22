"""Benchmarks (``make bench``): figures reported as ratios against baselines measured in the
same run, because this machine is shared and noisy. Never asserted in tests.

1. The default scenario: wall time and peak memory (in a child process), and the share of
   wall time spent inside SimPy's own machinery (scheduler, process switching) from a profile.
2. Device read throughput (drift + 1/f read noise, devices per second) of ``DeviceArray.read``
   against a bare numpy expression of the same math over the same number of float32 devices.
3. A fixed numpy workload as the machine-speed baseline for the wall time.
4. SA step tuning (``anneal_steps`` with its default schedule) on 3,000 Gaussian weights: CPU
   and wall seconds (this used to be a ``process_time() < 2 s`` assertion in tests/test_quantize.py).
5. The traffic engine: requests per second of wall time at rho = 0.8, no maintenance, against the
   floor: a bare SimPy single-server loop (one arrival timeout, one resource request, one service
   timeout per request) over the same arrivals count.
"""

from __future__ import annotations

import argparse
import json
import platform
import pstats
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import cProfile, sys, time
from twin.scenario.schema import load_scenario
from twin.simulate import simulate
scenario = load_scenario(sys.argv[1])
simulate(scenario)  # warm caches: trained network, imports
if sys.argv[2] == "profile":
    cProfile.run("simulate(scenario)", sys.argv[3])
else:
    start = time.perf_counter(); simulate(scenario); print(time.perf_counter() - start)
"""


def best(fn, repeats: int) -> float:
    """Best-of-``repeats`` wall seconds of ``fn()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine_baseline() -> float:
    """Seconds for a fixed numpy workload (best of 5)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 400))
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            a = np.tanh(a @ a.T / 400)
        best = min(best, time.perf_counter() - start)
    return best


def scenario_figures(scenario: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    timed = subprocess.run([sys.executable, "-c", CHILD, scenario, "time"], capture_output=True, text=True,
                           cwd=ROOT, check=True)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    wall = float(timed.stdout.strip().splitlines()[-1])
    with tempfile.TemporaryDirectory() as tmp:
        prof = str(Path(tmp) / "profile.out")
        subprocess.run([sys.executable, "-c", CHILD, scenario, "profile", prof], capture_output=True, cwd=ROOT,
                       check=True)
        stats = pstats.Stats(prof)
    total = stats.total_tt
    simpy_own = sum(tt for (filename, _, _), (_, _, tt, _, _) in stats.stats.items() if "/simpy/" in filename)
    return {"wall_s": wall, "peak_rss_mb": max(peak_kb, before) / 1024, "simpy_share": simpy_own / total,
            "profiled_total_s": total}


def read_throughput(n: int = 1 << 21, repeats: int = 7) -> dict:
    from twin.device.pcm import DeviceArray, PCMStatistics
    from twin.units import DAY
    devices = DeviceArray(8, PCMStatistics(), torch.randint(0, 9, (n,), generator=torch.Generator().manual_seed(0)))
    devices.program(0, torch.Generator().manual_seed(1))
    devices.t_prog_ns[: n // 2] = DAY // 2  # mixed ages, as on a corrected chip
    generator = torch.Generator().manual_seed(2)
    g = devices.g_prog.numpy().copy()
    nu = devices.nu.numpy().copy()
    age = devices.age_s(DAY).numpy().copy()
    rng = np.random.default_rng(3)
    t0, t_read, g_max = 20.0, 250e-9, 25.0

    def bare_numpy() -> np.ndarray:
        g_drift = g * np.exp(-nu * np.log1p(age / t0)).astype(np.float32)
        q = np.minimum(0.0088 / np.maximum((np.abs(g) / g_max) ** 0.65, 1e-3), 0.2)
        sigma = q * np.sqrt(np.log((age + t0 + t_read) / (2 * t_read))).astype(np.float32)
        return np.maximum(g_drift + np.abs(g_drift) * sigma * rng.standard_normal(n, dtype=np.float32), 0)

    twin_s = best(lambda: devices.read(DAY, generator), repeats)
    numpy_s = best(bare_numpy, repeats)
    return {"devices": n, "twin_devices_per_s": n / twin_s, "numpy_devices_per_s": n / numpy_s,
            "ratio": numpy_s / twin_s}


def anneal_figures(n: int = 3000, repeats: int = 5) -> dict:
    """Best-of-``repeats`` CPU (process) and wall seconds of one default-schedule ``anneal_steps``."""
    from twin.toolchain.quantize import anneal_steps
    w = np.random.default_rng(9).normal(0.0, 0.1, n)  # the data of test_anneal_default_schedule_lowers_the_error
    cpu, wall = float("inf"), float("inf")
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        result = anneal_steps(w)
        cpu = min(cpu, time.process_time() - cpu_start)
        wall = min(wall, time.perf_counter() - wall_start)
    return {"weights": n, "cpu_s": cpu, "wall_s": wall,
            "error_ratio": result.final_error / result.initial_error}


def traffic_throughput(n: int = 200_000, repeats: int = 3) -> dict:
    """Best-of-``repeats`` requests/s of the twin's engine and of a bare SimPy M/D/1 loop."""
    import collections

    import simpy

    from twin.toolchain.specs import TileGeometry
    from twin.traffic.engine import TrafficEngine
    from twin.traffic.parameters import PowerSchedule, Windowing, Workload
    from twin.traffic.service import LayerShape, service_model
    service = service_model([LayerShape("l", 8, 8, 10, 0)], TileGeometry(16, 8, 8), 100, 1e-9, 1, 0.0, 256)
    s = service.sequential_ns
    rate = 0.8 * 1e9 / s
    duration = int(n / rate * 1e9)

    def twin_engine() -> None:
        env = simpy.Environment()
        engine = TrafficEngine(env, service, Workload(rate=rate), PowerSchedule(), Windowing(), duration,
                               service.n_tiles, np.random.default_rng(1))
        engine.start()
        env.run(until=duration)
        engine.finish()

    def bare_simpy() -> None:
        env = simpy.Environment()
        server = simpy.Resource(env, capacity=1)
        gaps = np.random.default_rng(1).exponential(1e9 / rate, n).astype(np.int64)
        queue: collections.deque = collections.deque()
        waiting: list = [None]

        def source():
            for gap in gaps.tolist():
                yield env.timeout(gap)
                queue.append(env.now)
                if waiting[0] is not None and not waiting[0].triggered:
                    waiting[0].succeed()

        def serve():
            while True:
                if not queue:
                    waiting[0] = env.event()
                    yield waiting[0]
                queue.popleft()
                with server.request() as request:
                    yield request
                    yield env.timeout(s)

        env.process(source())
        env.process(serve())
        env.run(until=duration)

    twin_s, bare_s = best(twin_engine, repeats), best(bare_simpy, repeats)
    return {"requests": n, "twin_requests_per_s": n / twin_s, "bare_simpy_requests_per_s": n / bare_s,
            "ratio": bare_s / twin_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", default="scenarios/default.yaml")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args()
    baseline = machine_baseline()
    scenario = scenario_figures(args.scenario)
    reads = read_throughput()
    anneal = anneal_figures()
    traffic = traffic_throughput()
    figures = {"machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count(),
                           "torch_threads": torch.get_num_threads(), "baseline_s": baseline},
               "scenario": {**scenario, "wall_over_baseline": scenario["wall_s"] / baseline},
               "device_reads": reads,
               "anneal": {**anneal, "wall_over_baseline": anneal["wall_s"] / baseline},
               "traffic": traffic}
    print(f"machine baseline (fixed numpy workload): {baseline:.3f} s")
    print(f"default scenario: {scenario['wall_s']:.1f} s wall ({scenario['wall_s'] / baseline:.0f} x baseline), "
          f"peak {scenario['peak_rss_mb']:.0f} MB, SimPy's own share {100 * scenario['simpy_share']:.1f}%")
    print(f"device reads: twin {reads['twin_devices_per_s'] / 1e6:.1f} M/s, bare numpy "
          f"{reads['numpy_devices_per_s'] / 1e6:.1f} M/s, ratio {reads['ratio']:.2f}")
    print(f"SA step tuning (anneal_steps, default schedule, {anneal['weights']} weights): "
          f"{anneal['cpu_s']:.2f} s CPU, {anneal['wall_s']:.2f} s wall ({anneal['wall_s'] / baseline:.0f} x baseline)")
    print(f"traffic engine: {traffic['twin_requests_per_s'] / 1e3:.0f} k requests/s, bare SimPy loop "
          f"{traffic['bare_simpy_requests_per_s'] / 1e3:.0f} k/s, ratio {traffic['ratio']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
