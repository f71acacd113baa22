"""What the bench modules share: child processes timed from spawn, best-of timing, machine facts."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["ROOT", "Spawned", "spawn", "run_child", "best", "machine_baseline", "machine_facts", "Skip"]


class Skip(Exception):
    """A figure that cannot be measured here; the message says why (printed, kept in the JSON)."""


@dataclass(frozen=True)
class Spawned:
    wall_s: float  # from spawn to exit (or to the kill at the timeout)
    peak_rss_mb: float  # the child's own ru_maxrss (os.wait4), not its children's
    returncode: int | None  # None: killed at the timeout
    spawned_monotonic: float
    stdout: str
    stderr: str


def spawn(cmd: list[str], timeout_s: float | None = None, cwd: Path = ROOT, env: dict | None = None) -> Spawned:
    """Run ``cmd`` as a child process, timed from spawn; its peak RSS from ``wait4``; killed with its
    process group (its own session) after ``timeout_s``. Output goes to temporary files (no pipe to
    fill up)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.monotonic()
        # its own session: at the timeout the child and whatever it started (Dask workers) go together
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=err, env=env, start_new_session=True)
        status = rusage = None
        try:
            while True:
                pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if timeout_s is not None and time.monotonic() - start > timeout_s:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group of the child started here, by its id
                    _, status, rusage = os.wait4(proc.pid, 0)
                    status = None
                    break
                time.sleep(0.02)
        except BaseException:  # Ctrl-C: the child is in its own session, so it is ended here
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            proc.returncode = -1
            raise
        wall = time.monotonic() - start
        proc.returncode = -1 if status is None else os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        return Spawned(wall, rusage.ru_maxrss / 1024, None if status is None else proc.returncode, start,
                       out.read()[-20000:], err.read()[-20000:])


def run_child(spec: dict, timeout_s: float | None = None, torch_threads: int | None = None) -> tuple[dict, Spawned]:
    """``python -m bench.child`` with ``spec``; returns its JSON (what it wrote, even when killed at the
    timeout: then ``timed_out`` is set) and how the process went."""
    with tempfile.TemporaryDirectory(prefix="bench-child-") as tmp:
        spec_path, out_path = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_path.write_text(json.dumps({"root": str(ROOT), "torch_threads": torch_threads, **spec}))
        proc = spawn([sys.executable, "-m", "bench.child", str(spec_path), str(out_path)], timeout_s)
        report = json.loads(out_path.read_text()) if out_path.exists() else {}
    if proc.returncode is None:
        report["timed_out"] = True
    elif proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        raise RuntimeError(f"bench child exited {proc.returncode}: {' | '.join(tail)}")
    return report, proc


def best(fn, repeats: int) -> float:
    """Best-of-``repeats`` wall seconds of ``fn()``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine_baseline() -> float:
    """Seconds for a fixed numpy workload (best of 5): the machine's speed today."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((400, 400))
    fastest = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(20):
            a = np.tanh(a @ a.T / 400)
        fastest = min(fastest, time.perf_counter() - start)
    return fastest


def machine_facts() -> dict:
    import torch
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "numpy": np.__version__, "platform": platform.platform(),
            "git_commit": commit, "git_dirty": bool(dirty), "loadavg_start": list(os.getloadavg())}
