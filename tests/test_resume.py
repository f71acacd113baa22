"""Resumable runs: checkpoints change nothing, a killed run resumed gives the same results, and a
full disk exits 4 (ENVIRONMENT_ERROR) leaving a checkpoint that --resume continues from (docs/runs.md)."""

import copy
import json
import os
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import ENVIRONMENT_ERROR, main
from twin.report.records import collect
from twin.resume import CHECKPOINT_FILE, Checkpointer, CheckpointSchedule, load_checkpoint
from twin.run_folder import CLAIM, INCOMPLETE
from twin.scenario.schema import load_scenario
from twin.simulate import build

from polling import wait_for

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "default.yaml"
# Small, fast chips: 64 x 64 tiles (an eighth of the devices), a quick quantizer, few evaluations.
FAST = ["checkpoints.count=3", "evaluation.accuracy_samples=1", "network.sa_iterations=200", "network.sa_restarts=0",
        "evaluation.test_images=50", "chip.rows=64", "chip.cols=64"]
SHORT = ["duration=4 d", *FAST]  # 3 daily campaigns
LONG = ["duration=20 d", *FAST]  # 19: seconds of simulation after the first checkpoint, to kill it in


def _sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def _comparable(summary: dict) -> dict:
    summary = copy.deepcopy(summary)
    summary.pop("wall_s")  # everything else, SimPy's event count included, must match
    return summary


def _summary(folder: Path) -> dict:
    return _comparable(json.loads((folder / "summary.json").read_text()))


def _uninterrupted(folder: Path, overrides: list[str]) -> dict:
    """summary.json of a run without checkpoints (the CLI, in-process)."""
    assert main(["run", str(DEFAULT), "--out", str(folder), "--quiet", "--checkpoint-every-seconds", "0",
                 *_sets(overrides)]) == 0
    return _summary(folder)


@pytest.fixture(scope="module")
def short(tmp_path_factory) -> dict:
    return _uninterrupted(tmp_path_factory.mktemp("reference") / "short", SHORT)


@pytest.fixture(scope="module")
def long(tmp_path_factory) -> dict:
    return _uninterrupted(tmp_path_factory.mktemp("reference") / "long", LONG)


def test_checkpoints_change_nothing_and_each_resumes_to_the_same_results(short):
    scenario = load_scenario(DEFAULT, SHORT)
    watched, blobs, timed = build(scenario), [], []
    # write serialises at once, as the real writer: the payload shares the live device memory
    Checkpointer(watched, CheckpointSchedule(every_campaigns=1, every_seconds=0),
                 lambda payload: blobs.append(pickle.dumps(payload)))
    # The wall-time rule, on a clock that reads 10 "seconds" per simulated day: due at day 2, then not.
    Checkpointer(watched, CheckpointSchedule(every_campaigns=0, every_seconds=15),
                 lambda payload: timed.append(pickle.dumps(payload)),
                 clock=lambda: watched.chip.env.now / 86_400e9 * 10)
    watched.run()
    expected = collect(watched, 0.0)
    assert _comparable(expected.summary) == short  # as without checkpoints
    assert [pickle.loads(b)["campaigns"] for b in blobs] == [1, 2, 3]  # one after each campaign
    assert [pickle.loads(b)["campaigns"] for b in timed] == [2]
    for blob in (blobs[0], blobs[-1]):
        resumed = build(scenario)
        resumed.restore(pickle.loads(blob)["state"])
        resumed.resume()
        got = collect(resumed, 0.0)
        assert _comparable(got.summary) == short  # SimPy's event count too
        assert (got.timeline, got.campaigns, got.device_pulses) == (expected.timeline, expected.campaigns,
                                                                    expected.device_pulses)


def test_a_killed_run_resumes_to_the_results_of_an_uninterrupted_one(tmp_path, long, capsys):
    out = tmp_path / "run"
    log = (tmp_path / "stderr.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "twin.cli", "run", str(DEFAULT), "--out", str(out), "--quiet",
                             "--checkpoint-every-campaigns", "1", *_sets(LONG)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        # written atomically: once there, it is whole
        wait_for((out / CHECKPOINT_FILE).exists, "first checkpoint", deadline_s=300, process=proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it was killed: lengthen LONG"
    assert not (out / "summary.json").exists()
    assert (out / INCOMPLETE).exists() and (out / CLAIM).exists()  # a stale claim: its process is gone

    assert main(["run", str(DEFAULT), "--out", str(out), *_sets(LONG)]) == 2  # a plain run does not mix in
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err and "--force" in err

    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert f"resuming from {out / CHECKPOINT_FILE}" in err  # from the checkpoint, not from the start
    assert _summary(out) == long
    assert not {INCOMPLETE, CLAIM, CHECKPOINT_FILE} & {p.name for p in out.iterdir()}

    assert main(["run", "--resume", str(out)]) == 2  # finished: nothing to resume
    assert "nothing to resume" in capsys.readouterr().err


def _full_disk_for(name: str, after: int, monkeypatch) -> None:
    """Writes of ``name`` after the first ``after`` ones go to /dev/full: the kernel's own ENOSPC,
    through the real atomic writer (its temporary file is created as usual, and must go)."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system to inject a full disk with")
    import twin.atomic
    create, calls = twin.atomic._create_temporary, {"n": 0}

    def create_temporary(path: Path):
        fd, tmp = create(path)
        if path.name == name:
            calls["n"] += 1
            if calls["n"] > after:
                os.close(fd)
                return os.open("/dev/full", os.O_WRONLY), tmp
        return fd, tmp

    monkeypatch.setattr(twin.atomic, "_create_temporary", create_temporary)


@pytest.mark.parametrize("name, after, campaigns_kept", [("summary.json", 0, 3), (CHECKPOINT_FILE, 1, 1)])
def test_a_full_disk_exits_4_and_keeps_a_checkpoint_to_resume_from(tmp_path, short, capsys, monkeypatch,
                                                                    name, after, campaigns_kept):
    out = tmp_path / "run"
    old_umask = os.umask(0o027)  # the outputs honour it (0o640), also after a resume
    try:
        with monkeypatch.context() as patch:
            _full_disk_for(name, after, patch)
            assert main(["run", str(DEFAULT), "--out", str(out), "--quiet", "--checkpoint-every-campaigns", "1",
                         *_sets(SHORT)]) == ENVIRONMENT_ERROR
        err = capsys.readouterr().err
        assert "No space left on device" in err and str(out / name) in err
        assert f"twin run --resume {out}" in err and "Traceback" not in err
        assert (out / INCOMPLETE).exists() and not (out / CLAIM).exists()  # marked unfinished; claim released
        assert not list(out.glob(".*.tmp")) and not (out / "summary.json").exists()
        payload = load_checkpoint(out / CHECKPOINT_FILE)  # the last good one survived, and it loads
        assert payload["campaigns"] == campaigns_kept
        build(load_scenario(out / "scenario.resolved.yaml")).restore(payload["state"])

        assert main(["run", "--resume", str(out), "--quiet"]) == 0
    finally:
        os.umask(old_umask)
    assert "resuming from" in capsys.readouterr().err
    assert _summary(out) == short
    assert {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_file()} == {"0o640"}
    assert {oct(p.stat().st_mode & 0o777) for p in out.rglob("*") if p.is_dir()} == {"0o750"}  # the report's plots/


def test_runs_with_traffic_take_no_checkpoints_and_cannot_be_resumed(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / INCOMPLETE).write_text("a traffic run was killed here\n")
    (out / "scenario.resolved.yaml").write_text((ROOT / "scenarios" / "traffic.yaml").read_text())
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "inference traffic" in err and "Traceback" not in err
    assert not (out / CLAIM).exists()


def test_traffic_run_says_once_that_it_takes_no_checkpoints(tmp_path, capsys, monkeypatch):
    import twin.resume

    def stop(*args, **kwargs):  # the note comes before the run: no need to simulate one
        raise KeyboardInterrupt
    monkeypatch.setattr(twin.resume, "build", stop)
    assert main(["run", str(ROOT / "scenarios" / "traffic.yaml"), "--out", str(tmp_path / "run")]) == 130
    err = capsys.readouterr().err
    assert err.count("no checkpoints") == 1 and "inference traffic" in err


@pytest.mark.parametrize("argv, words", [
    (["--resume", "{out}", str(DEFAULT)], "do not pass SCENARIO"),
    (["--resume", "{out}", "--force"], "do not pass --force"),
    (["--resume", "{out}", "--set", "seed=3"], "do not pass --set"),
    (["--resume", "{out}", "--seed", "0"], "do not pass --seed"),
    (["--resume", "{out}/nope"], "no such run folder"),
    ([str(DEFAULT), "--checkpoint-every-campaigns", "-1"], "--checkpoint-every-campaigns"),
    ([str(DEFAULT), "--checkpoint-every-seconds", "nan"], "--checkpoint-every-seconds"),
    ([], "--resume DIR"),
])
def test_resume_and_checkpoint_usage_errors_exit_2(tmp_path, capsys, argv, words):
    out = tmp_path / "run"
    out.mkdir()
    assert main(["run", *[a.replace("{out}", str(out)) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("blob, words", [(b"not a pickle", "cannot be read"),
                                         (pickle.dumps({"format": 0}), "not a checkpoint of this version")])
def test_an_unusable_checkpoint_is_refused_naming_resume(tmp_path, capsys, blob, words):
    out = tmp_path / "run"
    out.mkdir()
    (out / INCOMPLETE).write_text("")
    (out / "scenario.resolved.yaml").write_text(DEFAULT.read_text())
    (out / CHECKPOINT_FILE).write_bytes(blob)
    assert main(["run", "--resume", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and words in err and "--force" in err and "Traceback" not in err
    assert (out / CHECKPOINT_FILE).read_bytes() == blob and (out / INCOMPLETE).exists()  # nothing lost


def test_resume_without_a_checkpoint_starts_from_the_beginning(tmp_path, capsys, short, monkeypatch):
    """Killed before its first checkpoint: the folder holds the scenario and the marker only."""
    import twin.resume
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(twin.resume, "build", killed)
        assert main(["run", str(DEFAULT), "--out", str(out), *_sets(SHORT)]) == 130
    assert "twin run --resume" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {INCOMPLETE, "scenario.resolved.yaml"}
    assert main(["run", "--resume", str(out), "--quiet"]) == 0
    assert "starts again from the beginning" in capsys.readouterr().err
    assert _summary(out) == short
