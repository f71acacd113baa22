"""The run engine of ``compare``, ``optimize`` and ``sweep``: simulations as Dask tasks.

Each run is one task on a Dask distributed cluster: a ``LocalCluster`` of single-threaded worker
processes sized to the machine by default, or an existing scheduler (``tcp://host:port``) that a
user's own cluster (dask-jobqueue on Slurm or PBS, docs/sweeps.md) serves. A task carries
everything its worker needs: the validated scenario (file paths in it are absolute) and the bytes
of the trained network, which the worker installs into its own content-keyed model cache, so a
worker depends on neither the submitting machine's working directory nor its cache.

Failures stay with their run: an exception inside a simulation is caught on the worker and
returned as the run's error; a worker that dies has its run rescheduled by Dask on another
worker (a run that kills every worker it lands on ends as ``KilledWorker`` in its row). Results
are handed to ``on_result`` as they arrive, so a caller writes each one before the next.

``workers=1`` without a scheduler runs the tasks in this process, one after another (no cluster
to start: the fast path of tests and of single-core machines).
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from twin.scenario.schema import Scenario

__all__ = ["Engine", "RunTask", "RunOutcome", "run_tasks", "START_TOPIC", "network_files"]

START_TOPIC = "pcm-twin.run-started"
"""The Dask event topic a worker logs when it starts a run (a sweep turns it into a start marker)."""


@dataclass(frozen=True)
class RunTask:
    """One simulation: ``key`` is unique within a submission (a sweep's run folder name)."""

    key: str
    scenario: Scenario
    label: str
    seed: int
    want_files: bool = False  # return the run's output files (the sweep writes one folder per run)


@dataclass
class RunOutcome:
    key: str
    label: str
    seed: int
    summary: dict | None
    error: str | None
    files: dict[str, bytes] = field(default_factory=dict)  # output file name -> bytes (want_files)


def network_files(scenario: Scenario) -> dict[str, bytes]:
    """Train (or load from the cache) the scenario's network here and return its cache file, so
    a worker elsewhere loads the same bytes instead of training again (no quantization here: the
    worker quantizes for its own levels)."""
    from twin.scenario.build import network_spec
    from twin.toolchain.prepare import trained_network_file
    network, seed = network_spec(scenario)
    path = trained_network_file(network, seed)
    return {} if path is None else {path.name: path.read_bytes()}


def _install_network(files: dict[str, bytes]) -> None:
    """Put shipped network files into this worker's cache. The names are training-cache keys, not
    hashes of the bytes: a file of that name with other bytes (another torch, a damaged file) is
    replaced, so every worker runs exactly the submitting machine's weights."""
    from twin.atomic import atomic_write_bytes
    from twin.toolchain.cache import default_cache_dir
    cache = default_cache_dir()
    for name, data in files.items():
        path = cache / name
        try:
            same = path.read_bytes() == data
        except OSError:
            same = False
        if not same:
            atomic_write_bytes(path, data)


def _announce(task: RunTask, submission: str) -> None:
    """Tell the client that this run started here (when running on a Dask worker)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return  # in-process
    worker.log_event(START_TOPIC, {"submission": submission, "key": task.key, "worker": worker.name,
                                   "address": worker.address,
                                   "pid": os.getpid(), "time": time.time()})


def execute(task: RunTask, network: dict[str, bytes], submission: str = "") -> RunOutcome:
    """Run one task (on a worker, or in-process); a simulation's exception becomes the run's error."""
    import torch
    from twin.simulate import simulate, write_outputs
    _announce(task, submission)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # one single-threaded run per worker process: the outputs do not depend on cores
    try:
        _install_network(network)
        result = simulate(task.scenario)
        files: dict[str, bytes] = {}
        if task.want_files:
            with tempfile.TemporaryDirectory(prefix="pcm-twin-run-") as tmp:
                write_outputs(result, task.scenario, Path(tmp))
                files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir()) if p.is_file()}
        return RunOutcome(task.key, task.label, task.seed, result.summary, None, files)
    except Exception as exc:  # recorded in the run's row; the other runs go on
        return RunOutcome(task.key, task.label, task.seed, None, f"{type(exc).__name__}: {exc}")
    finally:
        torch.set_num_threads(previous)


@contextmanager
def _client(workers: int, scheduler: str | None) -> Iterator[object]:
    from distributed import Client, LocalCluster
    if scheduler is not None:
        with Client(scheduler, timeout="30s") as client:
            yield client
        return
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as client:
        yield client


class Engine:
    """Where runs go: this process (``workers == 1``, no scheduler) or one Dask client, started at
    the first submission and kept for the next ones (optimize submits once per candidate)."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None) -> None:
        self.workers = max(1, workers or os.cpu_count() or 1)
        self.scheduler = scheduler
        self._stack = ExitStack()
        self._client: object | None = None

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def run(self, tasks: Sequence[RunTask], on_result: Callable[[RunOutcome], None] | None = None,
            on_start: Callable[[dict], None] | None = None) -> list[RunOutcome]:
        """Run every task; outcomes in task order. ``on_result`` is called as each one arrives
        (in this thread), ``on_start`` with the worker's start event of each run attempt."""
        tasks = list(tasks)
        if not tasks:
            return []
        if len({t.key for t in tasks}) != len(tasks):
            raise ValueError("run keys must be unique within a submission")
        networks = _networks(tasks)
        if self.scheduler is None and self.workers == 1:
            outcomes = []
            for task in tasks:
                if on_start:
                    on_start({"key": task.key, "worker": "local", "pid": os.getpid(), "time": time.time()})
                outcomes.append(execute(task, networks[task.key]))
                if on_result:
                    on_result(outcomes[-1])
            return outcomes
        if self._client is None:
            self._client = self._stack.enter_context(_client(self.workers, self.scheduler))
        return _run_on_dask(self._client, tasks, networks, on_result, on_start)


def run_tasks(tasks: Sequence[RunTask], workers: int | None = None, scheduler: str | None = None,
              on_result: Callable[[RunOutcome], None] | None = None,
              on_start: Callable[[dict], None] | None = None) -> list[RunOutcome]:
    """One submission on its own engine (a local cluster no larger than the tasks need)."""
    tasks = list(tasks)
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks) or 1))
    with Engine(workers, scheduler) as engine:
        return engine.run(tasks, on_result, on_start)


def _networks(tasks: list[RunTask]) -> dict[str, dict[str, bytes]]:
    """Each task's network files, each distinct network trained once, here."""
    from twin.scenario.build import network_spec
    by_network: dict[str, dict[str, bytes]] = {}
    out = {}
    for task in tasks:
        network, seed = network_spec(task.scenario)
        key = repr((network, seed))  # the trained weights do not depend on the levels
        if key not in by_network:
            by_network[key] = network_files(task.scenario)
        out[task.key] = by_network[key]
    return out


def _run_on_dask(client, tasks: list[RunTask], networks: dict[str, dict[str, bytes]],
                 on_result: Callable[[RunOutcome], None] | None,
                 on_start: Callable[[dict], None] | None) -> list[RunOutcome]:
    from distributed import as_completed
    by_key = {t.key: t for t in tasks}
    outcomes: dict[str, RunOutcome] = {}
    # Dask shares a task whose key it already holds: keys unique to this submission keep two
    # users' runs on one scheduler apart, and their start events too (the topic is scheduler-wide).
    submission = uuid.uuid4().hex

    def started(event: tuple) -> None:
        if event[1].get("submission") == submission:
            on_start(event[1])

    if on_start is not None:
        client.subscribe_topic(START_TOPIC, started)
    shared = {}  # one scattered copy of each distinct network, not one per task
    for task in tasks:
        blob = networks[task.key]
        ident = tuple(sorted(blob))
        if ident not in shared:
            shared[ident] = client.scatter(blob, broadcast=True) if blob else {}
    futures = {client.submit(execute, t, shared[tuple(sorted(networks[t.key]))], submission,
                             key=f"run-{submission}-{t.key}", pure=False): t.key for t in tasks}
    for future in as_completed(futures):
        key = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # the run's worker died too often (KilledWorker) or the scheduler went
            task = by_key[key]
            outcome = RunOutcome(key, task.label, task.seed, None, f"{type(exc).__name__}: {exc}")
        outcomes[key] = outcome
        if on_result:
            on_result(outcome)
    if on_start is not None:
        client.unsubscribe_topic(START_TOPIC)
    return [outcomes[t.key] for t in tasks]
