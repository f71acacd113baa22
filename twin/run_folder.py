"""Output folders that cannot lose or mix data: one writer at a time, an unfinished folder marked
as such, unique default names (``twin run``; meant for ``compare`` and ``sweep`` too).

- **Claim.** The process that writes a folder claims it: ``twin.claim`` holds its PID, host, start
  time and command, and the process keeps an exclusive ``flock`` on that file while it runs. The
  kernel drops the lock when the process ends in any way (SIGKILL too), so on the same host a
  claim whose lock is free was left by a process that is gone: it is *stale* (a reused PID cannot
  fool the lock). A live claim is never taken over; a stale one only with ``--resume`` or
  ``--force``. A claim made on another host cannot be checked from here: only ``--force`` takes it
  over. Where the file system has no ``flock``, a same-host claim is live while its PID is.
- **INCOMPLETE.** From the start of a run until its last output lands the folder holds an
  ``INCOMPLETE`` marker; a later run that finds it says so and suggests ``--resume`` or ``--force``.
- **Unique names.** :func:`unique_run_dir` makes ``<UTC time to the microsecond>-<pid>-<random>``
  with an exclusive ``mkdir``: two runs started in the same second never share a folder.

Every refusal here is an :class:`~twin.atomic.OutputExistsError` (exit 2, naming the flag).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from twin import atomic
from twin.atomic import OutputExistsError

__all__ = ["CLAIM", "INCOMPLETE", "ClaimInfo", "continue_hint", "FolderInUseError", "StaleClaimError", "RunFolder", "claim_folder",
           "open_run_folder", "unique_run_dir"]

CLAIM = "twin.claim"
INCOMPLETE = "INCOMPLETE"


class FolderInUseError(OutputExistsError):
    """Another process holds the folder (or may: a claim made on another host)."""


class StaleClaimError(OutputExistsError):
    """A claim left by a process that is gone; a plain run does not take it over."""


@dataclass(frozen=True)
class ClaimInfo:
    pid: int
    host: str
    started: str  # UTC, ISO 8601
    command: str

    def describe(self) -> str:
        return f"{self.command!r} (PID {self.pid} on {self.host}, started {self.started})"


def continue_hint(command: str, directory: Path) -> str:
    """How the command that wrote a folder continues an unfinished run there."""
    if command.startswith("twin sweep"):
        return "continue it by running the same twin sweep again"
    if command.startswith("twin run"):
        return f"continue it with --resume {directory}"
    return f"{command} cannot continue a stopped run"  # compare: start afresh


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _parse(text: bytes) -> ClaimInfo | None:
    """The claim a file holds; None for an empty file (created, never written); a claim of an
    unknown holder for anything unreadable (treated like a claim from another host)."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
        return ClaimInfo(int(data["pid"]), str(data["host"]), str(data["started"]), str(data["command"]))
    except (ValueError, KeyError, TypeError):
        return ClaimInfo(0, "an unknown host", "?", "?")


def _read(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _lock(fd: int) -> bool | None:
    """True: locked by us; False: another process holds it; None: no flock on this file system."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return None
        raise


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return pid > 0


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


class RunFolder:
    """A folder this process has claimed (a context manager: the claim is released on leaving,
    also on errors). :meth:`mark_incomplete` at the start, :meth:`complete` after the last output."""

    def __init__(self, path: Path, fd: int, info: ClaimInfo, flag: str) -> None:
        self.path = path
        self.info = info
        self.flag = flag
        self._fd: int | None = fd

    def mark_incomplete(self) -> None:
        atomic.atomic_write_text(self.path / INCOMPLETE,
                                 f"{self.info.describe()} writes this folder (or was stopped while it did).\n"
                                 f"{continue_hint(self.info.command, self.path).capitalize()}, or start afresh "
                                 "with --force.\n")

    def complete(self, *leftovers: str) -> None:
        """The last output has landed: drop the marker, then files only an unfinished run needs."""
        (self.path / INCOMPLETE).unlink(missing_ok=True)
        for name in leftovers:
            (self.path / name).unlink(missing_ok=True)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path / CLAIM):  # never someone else's claim
                (self.path / CLAIM).unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # drops the lock
            self._fd = None

    def __enter__(self) -> RunFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_folder(directory: Path, *, force: bool = False, resume: bool = False, flag: str = "--out",
                 command: str = "twin run") -> RunFolder:
    """Claim the existing folder ``directory`` for this process (see the module's rules)."""
    directory = Path(directory)
    path = directory / CLAIM
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            locked = _lock(fd)
            if locked is False:
                holder = _parse(_read(fd))
                raise FolderInUseError(f"{flag} {directory} is in use: "
                                       f"{holder.describe() if holder else 'another run'} is writing it; "
                                       f"wait for it to end or choose another {flag}")
        except BaseException:
            os.close(fd)
            raise
        if _same_file(fd, path):
            break
        os.close(fd)  # released (removed) between our open and our lock: claim the new file
    try:
        previous = _parse(_read(fd))
        if previous is not None:
            _check_previous(previous, locked, directory, force, resume, flag, command)
        info = ClaimInfo(os.getpid(), socket.gethostname(), _now(), command)
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(asdict(info)) + "\n").encode(), 0)
        os.fsync(fd)
    except BaseException:
        if _parse(_read(fd)) is None:
            path.unlink(missing_ok=True)  # ours, empty: leave nothing behind
        os.close(fd)
        raise
    return RunFolder(directory, fd, info, flag)


def _check_previous(previous: ClaimInfo, locked: bool | None, directory: Path, force: bool, resume: bool,
                    flag: str, command: str) -> None:
    """Whether a claim found in the folder (its lock free, or no locks) may be taken over."""
    if previous.host != socket.gethostname():
        if force:
            return
        raise FolderInUseError(
            f"{flag} {directory} is claimed by {previous.describe()}, and whether that run still runs cannot "
            f"be checked from this host; if it does not, start afresh with --force, or delete "
            f"{directory / CLAIM} and {continue_hint(command, directory)}")
    if locked is None and _pid_alive(previous.pid):  # no flock here: the PID is all there is
        raise FolderInUseError(f"{flag} {directory} is in use: {previous.describe()} is writing it; "
                               f"wait for it to end or choose another {flag}")
    if not (force or resume):
        raise StaleClaimError(f"{flag} {directory} was being written by {previous.describe()}, which is gone "
                              f"(killed or crashed): {continue_hint(command, directory)}, or start afresh "
                              "with --force")


def open_run_folder(directory: Path, names: list[str], *, force: bool = False, resume: bool = False,
                    keep: tuple[str, ...] = (), flag: str = "--out", command: str = "twin run") -> RunFolder:
    """Create (or, with ``resume``, find) ``directory``, claim it, and make it ready: ``names`` are
    every file the command writes there. A plain run refuses a folder holding any of them or an
    unfinished run; ``force`` removes them (and leftover temporaries) instead; ``resume`` keeps
    ``keep`` (the scenario, the checkpoint) and removes the rest. Marks the folder INCOMPLETE."""
    directory = Path(directory)
    if resume and not directory.is_dir():
        raise OutputExistsError(f"{flag} {directory}: no such run folder")
    atomic.prepare_output_dir(directory, [], False)  # the path is a folder (made if need be), before any claim
    folder = claim_folder(directory, force=force, resume=resume, flag=flag, command=command)
    try:
        every = [*names, INCOMPLETE]
        if resume:
            if not (directory / INCOMPLETE).exists():
                raise OutputExistsError(f"{flag} {directory}: nothing to resume: it holds no unfinished run "
                                        f"(no {INCOMPLETE} marker)")
            for name in every:
                if name not in keep and name != INCOMPLETE:
                    atomic.remove_output(directory / name)  # a part of the outputs a killed run wrote
                for leftover in atomic.temporary_files(directory, name):
                    leftover.unlink(missing_ok=True)
        else:
            if (directory / INCOMPLETE).exists() and not force:
                raise OutputExistsError(f"{flag} {directory} holds an unfinished run ({INCOMPLETE}): "
                                        f"{continue_hint(command, directory)}, or start afresh with --force")
            atomic.prepare_output_dir(directory, every, force)
        folder.mark_incomplete()
    except BaseException:
        folder.release()
        raise
    return folder


def _stamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")


def _suffix() -> str:
    return secrets.token_hex(3)


def unique_run_dir(parent: Path, prefix: str = "") -> Path:
    """A new, empty folder ``parent/<prefix><UTC time, microseconds>-<pid>-<random>``, made with
    an exclusive ``mkdir`` (a name taken meanwhile is not shared: another is drawn)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = parent / f"{prefix}{_stamp()}-{os.getpid()}-{_suffix()}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free run folder name", str(parent))
