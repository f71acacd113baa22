"""Waiting for something another process does: poll with a hang guard, never sleep a fixed time."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], what: str, deadline_s: float = 120.0,
             process: subprocess.Popen | None = None) -> T:
    """Poll ``predicate`` until it returns a true value, and return it. Fails when ``process``
    (the one expected to bring it about) ends first, or after ``deadline_s``: a hang guard far
    beyond the expected time, not a timing assertion."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise AssertionError(f"{process.args[0]} exited ({process.returncode}) before {what}")
        time.sleep(0.01)
    raise AssertionError(f"hang guard: no {what} after {deadline_s:.0f} s")
