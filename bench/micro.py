"""The figures kept from the earlier bench: the simulated-annealing quantizer's time, and the
traffic engine's throughput against a bare SimPy loop (docs/performance.md, issues 8 and 11).

- **SA step tuning**: ``anneal_steps`` with its default schedule on 3,000 Gaussian weights, CPU
  (process) and wall seconds, best of ``repeats`` (it used to be a ``process_time() < 2 s``
  assertion in tests/test_quantize.py).
- **traffic engine**: requests per second of wall time at rho = 0.8 (no maintenance, best of
  ``repeats``) against a bare SimPy single-server loop over the same arrivals (one arrival
  timeout, one resource request, one service timeout per request).
"""

from __future__ import annotations

import collections
import time

import numpy as np

from bench.common import best

__all__ = ["anneal_figures", "traffic_figures"]


def anneal_figures(n: int = 3000, repeats: int = 5) -> dict:
    from twin.toolchain.quantize import anneal_steps
    w = np.random.default_rng(9).normal(0.0, 0.1, n)  # the data of test_anneal_default_schedule_lowers_the_error
    cpu, wall = float("inf"), float("inf")
    result = None
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        result = anneal_steps(w)
        cpu = min(cpu, time.process_time() - cpu_start)
        wall = min(wall, time.perf_counter() - wall_start)
    return {"weights": n, "cpu_s": cpu, "wall_s": wall, "error_ratio": result.final_error / result.initial_error}


def traffic_figures(n: int = 200_000, repeats: int = 3) -> dict:
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
