"""Runs ``twin`` command lines for tests/test_bad_scenarios.py: one forked child per case, measured.

A fresh interpreter spends about two seconds importing torch and the twin, which would make the
corpus cost minutes on two cores. This runner imports them once and then forks one child per case.
The child is a ``twin`` process in all that matters: it enters the case's working directory, its
stdout and stderr go to files, it gets the case's PYTHONPATH and calls ``twin.cli.main`` with the
case's arguments, and exits with its exit code (an exception that escapes prints a traceback and
exits 1, as the interpreter would). The runner waits for it with ``os.wait4``, kills it (and any
process it started) when it runs past its timeout or its resident memory passes ``kill_rss_kb``
(so a blow-up is stopped before it takes the machine), and reports per case: the exit code, the
output, the child's own peak resident memory (``ru_maxrss``, which includes the ~200 MB of
imports it shares with the runner, as a fresh ``twin`` would hold them too) and the wall time.

Protocol: one JSON request per line on stdin,
``{"argv": [...], "cwd": DIR, "pythonpath": [DIR, ...], "timeout": s, "kill_rss_kb": kB}``,
one JSON answer per line on stdout,
``{"rc": int, "stdout": str, "stderr": str, "maxrss_kb": int, "wall_s": float, "killed": null | "timeout" | "memory"}``.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback
from typing import Any, NoReturn

PRELOAD = ("torch", "sklearn.datasets", "twin.cli", "twin.scenario.schema", "twin.study.compare", "twin.simulate",
           "twin.scenario.build", "twin.toolchain.data", "twin.toolchain.prepare")
"""Imported once here so that each child starts warm. A module that fails to import is left to the
child, which then meets the failure itself, as a fresh process would."""
MAX_CAPTURE = 1 << 20
"""Bytes of stdout and of stderr returned per case."""


def _child(request: dict[str, Any], out_path: str, err_path: str, protocol_fds: tuple[int, ...]) -> NoReturn:
    code = 1
    try:
        os.setsid()  # its own process group: a timeout kills whatever it started too
        for fd in protocol_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, path in ((1, out_path), (2, err_path)):
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(handle, fd)
            os.close(handle)
        os.chdir(request["cwd"])
        extra = [str(p) for p in request.get("pythonpath", [])]
        sys.path[:0] = extra
        os.environ["PYTHONPATH"] = os.pathsep.join(extra + [p for p in [os.environ.get("PYTHONPATH")] if p])
        sys.dont_write_bytecode = True  # a user module imported here leaves no __pycache__ beside it
        sys.argv = ["twin", *request["argv"]]
        from twin.cli import main
        code = main(list(request["argv"]))
    except SystemExit as exc:  # argparse, or a user module: what the interpreter does with it
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # escaped the CLI: the interpreter would print a traceback and exit 1
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
    os._exit(code if isinstance(code, int) and 0 <= code <= 255 else 1)


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _kill(pid: int) -> None:
    for kill, target in ((os.killpg, pid), (os.kill, pid)):
        try:
            kill(target, signal.SIGKILL)
        except OSError:
            pass


def _read(path: str) -> str:
    with open(path, "rb") as handle:
        return handle.read(MAX_CAPTURE).decode("utf-8", errors="replace")


def run_case(request: dict[str, Any], scratch: str, protocol_fds: tuple[int, ...]) -> dict[str, Any]:
    out_path, err_path = os.path.join(scratch, "stdout"), os.path.join(scratch, "stderr")
    timeout, kill_rss_kb = float(request["timeout"]), int(request["kill_rss_kb"])
    sys.stdout.flush()
    sys.stderr.flush()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request, out_path, err_path, protocol_fds)
    killed, pause = None, 0.002
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done == pid:
            break
        if killed is None and time.monotonic() - start > timeout:
            killed = "timeout"
            _kill(pid)
        elif killed is None and _rss_kb(pid) > kill_rss_kb:
            killed = "memory"
            _kill(pid)
        time.sleep(pause)
        pause = min(pause * 1.5, 0.05)
    try:
        os.killpg(pid, signal.SIGKILL)  # anything the case left running in its group
    except OSError:
        pass
    return {"rc": os.waitstatus_to_exitcode(status), "stdout": _read(out_path), "stderr": _read(err_path),
            "maxrss_kb": usage.ru_maxrss, "wall_s": time.monotonic() - start, "killed": killed}


def main() -> None:
    protocol_in = os.fdopen(os.dup(0), "r")
    protocol_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever an import prints goes to stderr, never into the protocol
    for module in PRELOAD:
        try:
            importlib.import_module(module)
        except Exception:
            pass
    protocol_fds = (protocol_in.fileno(), protocol_out.fileno())
    with tempfile.TemporaryDirectory(prefix="twin-bad-scenarios-") as scratch:
        for line in protocol_in:
            answer = run_case(json.loads(line), scratch, protocol_fds)
            protocol_out.write(json.dumps(answer) + "\n")
            protocol_out.flush()


if __name__ == "__main__":
    main()
