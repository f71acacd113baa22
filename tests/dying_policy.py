"""A user policy whose construction kills the Dask worker process building it, once: the first
attempt leaves a marker file and exits the process; the rerun (on a restarted or other worker)
finds the marker and runs normally. Used to check that a comparison survives a dead worker."""

from __future__ import annotations

import os

from firmware_model.policies import Periodic


def _on_a_dask_worker() -> bool:
    try:
        from distributed import get_worker
        get_worker()
        return True
    except (ImportError, ValueError):
        return False


class DiesOnceOnAWorker(Periodic):
    def __init__(self, marker: str = "", **params) -> None:
        super().__init__(**params)
        if marker and _on_a_dask_worker() and not os.path.exists(marker):
            with open(marker, "w") as handle:
                handle.write(f"{os.getpid()}\n")
            os._exit(1)  # as a segfault or the OOM killer would: no exception, no cleanup
