"""twin sweep on a real Dask scheduler with two workers, one of them SIGKILLed mid-run.

The test starts ``dask scheduler`` and two ``dask worker`` processes (no nanny, so a killed
worker stays dead) on 127.0.0.1, runs a four-run sweep through ``--scheduler``, waits for the
first run's start marker (written when the worker reports the start, never a sleep), kills that
run's worker with SIGKILL while the run is in flight, and checks that the sweep finishes every
run on the surviving worker and that each run's summary.json is byte-identical, apart from
``wall_s``, to ``twin run`` of the same resolved scenario in this process. Everything the test
starts is stopped by its PID. About a minute on two cores.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path


from twin.cli import main
from twin.study.sweep import START_MARKER

from polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SWEEP = """scenario: {base}
set: ["duration=12 d", "checkpoints.count=3", "evaluation.accuracy_samples=1", "evaluation.test_images=300",
      "network.sa_iterations=200", "network.sa_restarts=1", "outputs.per_device_pulses=false"]
grid: {{chip.levels: [4, 8]}}
seeds: 2
"""


def start(args: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env, cwd=log.parent)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def without_wall(path: Path) -> bytes:
    """summary.json's bytes without its one ``wall_s`` line (the file is indented JSON, a key a line)."""
    lines = path.read_bytes().splitlines(keepends=True)
    kept = [line for line in lines if not line.lstrip().startswith(b'"wall_s"')]
    assert len(kept) == len(lines) - 1
    return b"".join(kept)


def test_a_killed_worker_loses_no_run_and_the_results_match_local_runs(tmp_path):
    env = dict(os.environ, PCM_TWIN_CACHE=str(tmp_path / "worker-cache"),  # workers get the network from the tasks
               PYTHONPATH=str(ROOT / "tests"))
    address_file = tmp_path / "scheduler.json"
    processes: list[subprocess.Popen] = []
    try:
        processes.append(start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", "0",
                                "--no-dashboard", "--scheduler-file", str(address_file)], tmp_path / "scheduler.log", env))
        address = wait_for(lambda: address_file.exists() and json.loads(address_file.read_text() or "{}").get("address"),
                           "the scheduler's address", process=processes[0])
        workers = {}
        for name in ("w0", "w1"):
            worker = start([str(BIN / "dask"), "worker", address, "--name", name, "--nthreads", "1", "--no-nanny",
                            "--host", "127.0.0.1", "--no-dashboard"], tmp_path / f"{name}.log", env)
            processes.append(worker)
            workers[name] = worker
        sweep_file = tmp_path / "sweep.yaml"
        sweep_file.write_text(SWEEP.format(base=ROOT / "scenarios/default.yaml"))
        out = tmp_path / "out"
        twin = start([sys.executable, "-m", "twin.cli", "sweep", str(sweep_file), "--out", str(out),
                      "--scheduler", address, "--quiet"], tmp_path / "sweep.log", env)
        processes.append(twin)

        def first_start():
            for marker in out.glob(f"*/{START_MARKER}"):
                complete = marker.read_text().split("\n")[:-1]  # a line still being appended is not read
                if complete:
                    return marker.parent.name, json.loads(complete[0])
            return None

        killed_run, event = wait_for(first_start, "a run's start marker", deadline_s=180, process=twin)
        # no nanny: the process that reported the start is one of the two we started
        victim = next(w for w in workers.values() if w.pid == event["pid"])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)
        assert twin.wait(timeout=600) == 0, (tmp_path / "sweep.log").read_text()
    finally:
        for process in reversed(processes):
            stop(process)

    with open(out / "sweep.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    attempts = [json.loads(line) for line in (out / killed_run / START_MARKER).read_text().splitlines()]
    assert len(attempts) >= 2 and attempts[-1]["pid"] != event["pid"]  # it was in flight, and rerun elsewhere
    for row in rows:
        folder = out / row["run"]
        local = tmp_path / "local" / row["run"]
        assert main(["run", str(folder / "scenario.resolved.yaml"), "--out", str(local), "--quiet"]) == 0
        assert without_wall(folder / "summary.json") == without_wall(local / "summary.json")
        for name in ("timeline.csv", "campaigns.csv", "scenario.resolved.yaml"):
            assert (folder / name).read_bytes() == (local / name).read_bytes(), name
