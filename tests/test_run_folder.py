"""Output folders that cannot lose or mix data: claims, the INCOMPLETE marker, --force, unique
default names, a writable --out checked first, the umask honoured (docs/runs.md). None of these
simulates: a run that got past the folder checks is stopped at ``build``."""

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import twin.resume
import twin.run_folder
from twin.atomic import atomic_write_text
from twin.cli import ENVIRONMENT_ERROR, main
from twin.run_folder import CLAIM, INCOMPLETE, FolderInUseError, StaleClaimError, open_run_folder, unique_run_dir
from twin.simulate import OUTPUT_FILES

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "default.yaml"
NAMES = [*OUTPUT_FILES, "checkpoint.pkl"]


class Built(BaseException):
    """The run got past every folder check and started to build (a BaseException: main does not
    turn it into an exit code, so the test sees it)."""


@pytest.fixture
def no_simulation(monkeypatch):
    def built(*args, **kwargs):
        raise Built
    monkeypatch.setattr(twin.resume, "build", built)


def _claim_text(pid: int, host: str | None = None) -> str:
    return json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": "2026-01-01T00:00:00+00:00",
                       "command": "twin run"})


def _gone_pid() -> int:
    """The PID of a process that has ended."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(proc.stdout)


@pytest.fixture
def holder(tmp_path):
    """Another process that claims ``tmp_path / 'run'`` and holds it until killed."""
    out = tmp_path / "run"
    code = ("import sys; from pathlib import Path; from twin.run_folder import open_run_folder\n"
            f"folder = open_run_folder(Path(sys.argv[1]), {NAMES!r})\n"
            "print('claimed', flush=True); sys.stdin.read()")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "claimed"  # blocks until the claim is held
        yield out, proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()


def test_two_runs_into_one_folder_never_both_proceed(holder, capsys, no_simulation):
    out, proc = holder
    for extra in ([], ["--force"]):  # a live claim is not taken over, not even with --force
        assert main(["run", str(DEFAULT), "--out", str(out), *extra]) == 2
        err = capsys.readouterr().err
        assert "--out" in err and "in use" in err and f"PID {proc.pid}" in err
    assert main(["run", "--resume", str(out)]) == 2
    assert "in use" in capsys.readouterr().err
    with pytest.raises(FolderInUseError):
        open_run_folder(out, NAMES)
    assert json.loads((out / CLAIM).read_text())["pid"] == proc.pid  # the holder's claim is untouched


def test_a_claim_of_a_killed_run_is_stale_resume_or_force_take_it_over(holder, capsys, no_simulation):
    out, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert main(["run", str(DEFAULT), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and "gone" in err and "--resume" in err and "--force" in err
    (out / "scenario.resolved.yaml").write_text(DEFAULT.read_text())
    with pytest.raises(Built):  # --resume takes the stale claim over and goes on to build
        main(["run", "--resume", str(out)])
    assert not (out / CLAIM).exists()  # released on the way out
    (out / CLAIM).write_text(_claim_text(_gone_pid()))
    with pytest.raises(Built):
        main(["run", str(DEFAULT), "--out", str(out), "--force"])


def test_the_lock_not_the_pid_decides_on_one_host(tmp_path):
    """A claim naming a live PID (reused, say) whose lock nobody holds is stale all the same."""
    out = tmp_path / "run"
    out.mkdir()
    (out / CLAIM).write_text(_claim_text(os.getppid()))
    with pytest.raises(StaleClaimError, match="--resume"):
        open_run_folder(out, NAMES)
    with open_run_folder(out, NAMES, force=True) as folder:
        assert json.loads((out / CLAIM).read_text())["pid"] == os.getpid() == folder.info.pid
    assert not (out / CLAIM).exists()


def test_a_claim_from_another_host_is_taken_over_only_with_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / CLAIM).write_text(_claim_text(1, "elsewhere.example"))
    (out / INCOMPLETE).write_text("")
    for kwargs in ({}, {"resume": True}):
        with pytest.raises(FolderInUseError, match="cannot be checked"):
            open_run_folder(out, NAMES, **kwargs)
    assert "elsewhere.example" in (out / CLAIM).read_text()
    open_run_folder(out, NAMES, force=True).release()


def test_an_unfinished_folder_is_named_and_resume_or_force_suggested(tmp_path, capsys, no_simulation):
    out = tmp_path / "run"
    out.mkdir()
    (out / INCOMPLETE).write_text("")
    assert main(["run", str(DEFAULT), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(out) in err and INCOMPLETE in err and "--resume" in err and "--force" in err
    assert not (out / CLAIM).exists()  # a refused run releases its claim


def test_force_removes_every_file_of_an_earlier_run_and_its_temporaries(tmp_path, capsys, no_simulation):
    out = tmp_path / "run"
    out.mkdir()
    for name in [*NAMES, INCOMPLETE, ".checkpoint.pkl.0a1b2c.tmp", ".summary.json.abc.tmp"]:
        (out / name).write_text("stale")
    (out / CLAIM).write_text(_claim_text(_gone_pid()))
    (out / "notes.txt").write_text("the user's")
    with pytest.raises(Built):
        main(["run", str(DEFAULT), "--out", str(out), "--force"])
    # what is left: the user's file, the new run's marker and its resolved scenario (written first)
    assert sorted(p.name for p in out.iterdir()) == [INCOMPLETE, "notes.txt", "scenario.resolved.yaml"]
    assert "stale" not in (out / "scenario.resolved.yaml").read_text()


def test_resume_keeps_the_scenario_and_the_checkpoint_and_drops_partial_outputs(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    for name in ["scenario.resolved.yaml", "checkpoint.pkl", "timeline.csv", INCOMPLETE, ".timeline.csv.x.tmp"]:
        (out / name).write_text("x")
    with open_run_folder(out, NAMES, resume=True, keep=("scenario.resolved.yaml", "checkpoint.pkl")):
        assert sorted(p.name for p in out.iterdir()) == [INCOMPLETE, "checkpoint.pkl", "scenario.resolved.yaml",
                                                         CLAIM]


def test_default_run_folders_are_unique_even_within_one_microsecond(tmp_path, monkeypatch):
    monkeypatch.setattr(twin.run_folder, "_stamp", lambda: "20260101T000000.000000Z")
    draws = iter(["aaaaaa", "aaaaaa", "bbbbbb"])  # the second draw collides: mkdir is exclusive, a third is drawn
    monkeypatch.setattr(twin.run_folder, "_suffix", lambda: next(draws))
    first, second = unique_run_dir(tmp_path), unique_run_dir(tmp_path)
    assert first != second and second.name.endswith("-bbbbbb") and first.is_dir() and second.is_dir()


def test_runs_without_out_start_in_separate_folders(tmp_path, monkeypatch, no_simulation):
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        with pytest.raises(Built):
            main(["run", str(DEFAULT)])
    folders = list((tmp_path / "runs" / "default").iterdir())
    assert len(folders) == 2 and all((f / INCOMPLETE).exists() for f in folders)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into folders whose mode denies it: see the test below")
def test_a_read_only_out_fails_with_exit_4_before_simulating(tmp_path, capsys, no_simulation):
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    try:
        assert main(["run", str(DEFAULT), "--out", str(out)]) == ENVIRONMENT_ERROR  # not Built: checked before the build
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert "Permission denied" in err and str(out) in err and "Traceback" not in err
    assert list(out.iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the immutable flag needs root; other users: the test above")
def test_a_read_only_out_fails_with_exit_4_before_simulating_as_root(tmp_path, capsys, no_simulation):
    """Root writes into any folder its mode denies, but not into an immutable one (chattr +i)."""
    out = tmp_path / "readonly"
    out.mkdir()
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available on this file system")
    try:
        assert main(["run", str(DEFAULT), "--out", str(out)]) == ENVIRONMENT_ERROR  # not Built: checked before the build
        assert list(out.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    err = capsys.readouterr().err
    assert "Operation not permitted" in err and str(out / CLAIM) in err and "Traceback" not in err


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o002, 0o664)],
                         ids=["022", "027", "002"])
def test_atomic_writes_honour_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "first")
        atomic_write_text(tmp_path / "a.txt", "second")  # replacing keeps to the umask too
        with open_run_folder(tmp_path / "run", NAMES):
            modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "run").iterdir()}
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode and (tmp_path / "a.txt").read_text() == "second"
    assert modes == {CLAIM: mode, INCOMPLETE: mode}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_force_clears_an_earlier_report_but_leaves_a_users_own_file(tmp_path):
    from twin.atomic import prepare_output_dir
    (tmp_path / "plots").mkdir()
    for name in ("accuracy.png", "accuracy.svg", ".wear.png.123.tmp"):
        (tmp_path / "plots" / name).write_bytes(b"old")
    (tmp_path / "report.html").write_text("old report")
    prepare_output_dir(tmp_path, NAMES, force=True)
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "plots").exists()
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "accuracy.png").write_bytes(b"old")
    (tmp_path / "plots" / "notes.txt").write_text("mine")
    prepare_output_dir(tmp_path, NAMES, force=True)
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["notes.txt"]
