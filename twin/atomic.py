"""Atomic output files: a reader never sees half a file, and nothing is silently overwritten."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
from pathlib import Path
from collections.abc import Callable
from typing import Any, BinaryIO

__all__ = ["OutputExistsError", "atomic_write_bytes", "atomic_write_with", "atomic_write_json", "atomic_write_text", "finite_or_null", "prepare_output_dir", "temporary_files"]


class OutputExistsError(FileExistsError):
    """An output would overwrite earlier results and ``force`` was not given."""


def _create_temporary(path: Path) -> tuple[int, Path]:
    """A new, empty temporary file beside ``path`` (``.NAME.<random>.tmp``), open for writing.

    Created with mode 0o666 so that the kernel applies the process's umask (and a default ACL of
    the folder) exactly as for any file the user creates; ``tempfile.mkstemp`` would make every
    output 0o600. The umask is never read: ``os.umask`` can only be read by setting it, which
    races with other threads."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems cannot sync a folder)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path``, fsync, then rename over it; the file ends with
    mode ``0o666 & ~umask``. On any failure (a full disk) ``path`` keeps its earlier content and
    the temporary file is removed."""
    atomic_write_with(path, lambda handle: handle.write(data))


def atomic_write_with(path: Path, fill: Callable[[BinaryIO], object]) -> None:
    """:func:`atomic_write_bytes` with the content written by ``fill(handle)`` (a stream: e.g.
    ``pickle.dump`` of a large state, never held in memory as one bytes object)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temporary(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            fill(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # a failed write() names no file: say which output it was
        raise
    _fsync_folder(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def finite_or_null(value: Any) -> Any:
    """NaN and infinities (nothing served, a figure not measured) become null, in nested dicts and
    lists: JSON has no literal for them."""
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def atomic_write_json(path: Path, value: Any) -> None:
    """``value`` as strict JSON (non-finite floats as null, never ``NaN``/``Infinity``), indented,
    keys sorted, written atomically: every JSON file the twin writes goes through here."""
    text = json.dumps(finite_or_null(value), indent=2, sort_keys=True, allow_nan=False) + "\n"
    atomic_write_text(path, text)


def temporary_files(directory: Path, name: str) -> list[Path]:
    """Temporary files an interrupted atomic write of ``directory / name`` left behind."""
    return list(Path(directory).glob(f".{name}.*.tmp"))


DERIVED_FILE_PATTERNS = ("*.png", "*.svg", ".*.tmp")
"""What the twin writes in a folder of its outputs (a report's ``plots/``): the only files removed there."""


def remove_output(path: Path) -> None:
    """Remove one output of an earlier run; nothing if absent. A folder (a report's ``plots/``)
    loses only the files the twin writes there (:data:`DERIVED_FILE_PATTERNS`), and then itself
    if nothing else is left: a user's own file in it stays. A symbolic link is removed, never followed."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    for pattern in DERIVED_FILE_PATTERNS:
        for child in path.glob(pattern):
            if child.is_file() or child.is_symlink():
                child.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: what is left is not ours
        path.rmdir()


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
            remove_output(directory / name)
            for leftover in temporary_files(directory, name):
                leftover.unlink(missing_ok=True)
    return directory
