"""Atomic output files: a reader never sees half a file, and nothing is silently overwritten."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["OutputExistsError", "atomic_write_bytes", "atomic_write_text", "prepare_output_dir"]


class OutputExistsError(FileExistsError):
    """An output would overwrite earlier results and ``force`` was not given."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def prepare_output_dir(directory: Path, names: list[str], force: bool) -> Path:
    """Create ``directory``; refuse if any of ``names`` already exists there unless ``force``.

    With ``force`` every one of ``names`` (the files the twin writes there) and any temporary
    file an interrupted atomic write left beside them is removed first, so a run never leaves a
    stale file of an earlier run (a ``device_pulses.csv`` of another seed) beside its own."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputExistsError(f"--out {directory} is a file, not a folder; choose another --out")
    existing_parent = next((p for p in directory.parents if p.exists()), None)
    if existing_parent is not None and not existing_parent.is_dir():
        raise OutputExistsError(f"--out {directory}: {existing_parent} is a file, so no folder can be made below it")
    existing = [name for name in names if (directory / name).exists()]
    if existing and not force:
        raise OutputExistsError(f"{directory} already holds {', '.join(existing)}; "
                                "pass --force to overwrite or choose another --out")
    directory.mkdir(parents=True, exist_ok=True)
    if force:
        for name in names:
            (directory / name).unlink(missing_ok=True)
            for leftover in directory.glob(f".{name}.*.tmp"):
                leftover.unlink(missing_ok=True)
    return directory
