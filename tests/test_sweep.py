"""twin sweep: the sweep file, one folder per run, sweep.csv after every result, resume, failures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from twin.cli import RUNS_FAILED, main
from twin.scenario.loader import ScenarioError
from twin.study import engine
from twin.study.sweep import MAX_SWEEP_RUNS, START_MARKER, load_sweep_file, run_sweep

ROOT = Path(__file__).resolve().parents[1]
FAST = ["duration=2 d", "checkpoints.count=2", "evaluation.accuracy_samples=1", "evaluation.test_images=200",
        "network.sa_iterations=200", "network.sa_restarts=1", "outputs.per_device_pulses=false"]


def write_sweep(folder: Path, body: str, common: list[str] = FAST) -> Path:
    path = folder / "sweep.yaml"
    path.write_text(f"scenario: {ROOT / 'scenarios/default.yaml'}\nset: {json.dumps(common)}\n{body}")
    return path


def rows(out: Path) -> list[dict]:
    with open(out / "sweep.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_grid_times_list_times_seeds(tmp_path):
    sweep = load_sweep_file(write_sweep(tmp_path, """
grid: {chip.levels: [4, 8], policy.gdc: [true, false]}
list: [{policy.name: none}, {policy.name: periodic, policy.interval: 12 h}]
seeds: [3, 9]
"""))
    assert len(sweep.runs) == 2 * 2 * 2 * 2
    assert sweep.factors == ["chip.levels", "policy.gdc", "policy.name", "policy.interval"]
    assert len({r.key for r in sweep.runs}) == len(sweep.runs)
    run = sweep.runs[-1]
    assert (run.scenario.chip.levels, run.scenario.policy.gdc, run.scenario.policy.name, run.seed) == (8, False, "periodic", 9)
    assert run.scenario.policy.interval == 12 * 3600 * 10**9
    assert run.key.startswith("chip.levels-8_policy.gdc-false_policy.name-periodic_policy.interval-12-h_seed9_")
    # seeds vary the chip only: the network keeps the base seed
    assert {r.scenario.network.seed for r in sweep.runs} == {0}
    # the same file gives the same folder names (resume finds them)
    assert [r.key for r in load_sweep_file(sweep.path).runs] == [r.key for r in sweep.runs]


@pytest.mark.parametrize("body, field", [
    ("grid: {chip.levels: 4}", "grid.chip.levels"),
    ("grid: {chip.levels: [4, 100000]}", "chip.levels"),
    ("list: [{policy.name: nonsense}]", "policy"),
    ("seeds: 0", "seeds"),
    ("seeds: true", "seeds"),
    ("seeds: [1, 1]", "seeds"),
    ("grid: {chip.levels: [4]}\nlist: [{chip.levels: 8}]", "list[0].chip.levels"),
    ("grids: {chip.levels: [4]}", "grids"),
    (f"grid: {{seed: {list(range(MAX_SWEEP_RUNS + 1))}}}", "grid"),
])
def test_bad_sweep_files_name_the_field(tmp_path, body, field):
    with pytest.raises(ScenarioError) as info:
        load_sweep_file(write_sweep(tmp_path, body))
    assert field in str(info.value)


def test_sweep_writes_runs_and_resumes(tmp_path, capsys):
    path = write_sweep(tmp_path, "grid: {chip.levels: [4, 8]}\nseeds: 2\n")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    table = rows(out)
    assert [r["status"] for r in table] == ["ok"] * 4
    assert [r["chip.levels"] for r in table] == ["4", "4", "8", "8"] and [r["seed"] for r in table] == ["0", "1"] * 2
    for row in table:
        summary = json.loads((out / row["run"] / "summary.json").read_text())
        assert float(row["accuracy_final"]) == summary["accuracy"][-1]["accuracy"]
        assert int(row["pulses"]) == summary["pulses"]["total"]
        assert (out / row["run"] / "scenario.resolved.yaml").exists()
    # resume: only the run whose summary went missing runs again
    lost = table[1]["run"]
    (out / lost / "summary.json").unlink()
    starts = {r["run"]: len((out / r["run"] / START_MARKER).read_text().splitlines()) for r in table}
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1"]) == 0  # not -q: its summary line
    again = {r["run"]: len((out / r["run"] / START_MARKER).read_text().splitlines()) for r in table}
    assert {k for k in again if again[k] != starts[k]} == {lost}
    assert [r["status"] for r in rows(out)] == ["ok"] * 4
    assert "(3 found done)" in capsys.readouterr().err


def test_a_failing_run_is_recorded_and_the_sweep_goes_on(tmp_path, capsys):
    path = write_sweep(tmp_path, """
list:
  - {policy.name: none}
  - {policy: {class: "exploding_policy:ExplodesAtFirstCampaign"}}
""")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == RUNS_FAILED
    table = rows(out)
    assert [r["status"] for r in table] == ["ok", "failed"]
    assert "boom at the first campaign" in table[1]["error"] and table[1]["accuracy_final"] == ""
    assert "boom" in (out / table[1]["run"] / "error.txt").read_text()
    assert not (out / table[1]["run"] / "summary.json").exists()
    assert "1 failed" in capsys.readouterr().err


def test_a_worker_needs_no_training_and_no_cache_of_its_own(tmp_path, monkeypatch):
    """The task ships the trained network: a worker with an empty cache loads it, never trains."""
    scenario = load_sweep_file(write_sweep(tmp_path, "")).runs[0].scenario
    files = engine.network_files(scenario)
    assert len(files) == 1 and next(iter(files)).endswith(".pt")
    monkeypatch.setenv("PCM_TWIN_CACHE", str(tmp_path / "empty-worker-cache"))
    import twin.toolchain.training as training

    def no_training(*args, **kwargs):
        raise AssertionError("the worker trained a network")

    monkeypatch.setattr(training, "_train_digital", no_training)
    outcome = engine.execute(engine.RunTask("k", scenario, "k", 0), files)
    assert outcome.error is None, outcome.error
    assert (tmp_path / "empty-worker-cache" / "models" / next(iter(files))).read_bytes() == next(iter(files.values()))
    # without the shipped file the same worker would have to train
    (tmp_path / "empty-worker-cache" / "models" / next(iter(files))).unlink()
    assert "trained a network" in engine.execute(engine.RunTask("k", scenario, "k", 0), {}).error


def test_the_example_sweep_file_is_valid():
    sweep = load_sweep_file(ROOT / "docs/examples/sweep.yaml")
    assert len(sweep.runs) == 8
    assert {(r.scenario.chip.levels, r.scenario.policy.name, r.seed) for r in sweep.runs} == {
        (k, p, s) for k in (4, 8) for p in ("none", "periodic") for s in (0, 1)}
    faults = load_sweep_file(ROOT / "docs/examples/faults_sweep.yaml")  # docs/faults.md's study
    assert sorted({(r.scenario.policy.name, r.seed) for r in faults.runs}) == [
        (p, s) for p in ("full_refresh", "periodic") for s in range(5)]
    assert all(r.scenario.faults is not None for r in faults.runs)


def test_sweep_csv_is_rewritten_after_every_result(tmp_path):
    sweep = load_sweep_file(write_sweep(tmp_path, "grid: {chip.levels: [4, 8]}\nseeds: 2\n"))
    out = tmp_path / "out"
    seen = []
    run_sweep(sweep, out, workers=1,
              progress=lambda done, total: seen.append((done, [r["status"] for r in rows(out)])))
    assert seen == [(0, ["pending"] * 4), (1, ["ok"] + ["pending"] * 3), (2, ["ok", "ok", "pending", "pending"]),
                    (3, ["ok"] * 3 + ["pending"]), (4, ["ok"] * 4)]


@pytest.mark.parametrize("body, field", [
    ("grid: {chip.levels: [4, 4]}", "grid"),
    ("list: [{chip.levels: 4}, {chip.levels: 4}]", "list"),
    ("grid: {seed: [5, 6]}", "grid.seed"),
    ("list: [{network.seed: 3}]", "list.network.seed"),
])
def test_duplicate_runs_and_seed_factors_are_refused(tmp_path, body, field, capsys):
    path = write_sweep(tmp_path, body)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--workers", "1", "--quiet"]) == 2
    assert field in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_a_forced_rerun_that_fails_leaves_no_older_result(tmp_path, monkeypatch):
    path = write_sweep(tmp_path, "")
    out = tmp_path / "out"
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    folder = out / rows(out)[0]["run"]
    assert (folder / "summary.json").exists()
    import twin.simulate

    def broken(scenario, progress=None):
        raise RuntimeError("the disk of this worker is gone")

    monkeypatch.setattr(twin.simulate, "simulate", broken)
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet", "--force"]) == RUNS_FAILED
    assert not (folder / "summary.json").exists() and "disk" in (folder / "error.txt").read_text()
    assert rows(out)[0]["status"] == "failed"


def test_a_sweep_folder_in_use_is_refused_and_a_killed_sweeps_folder_resumed(tmp_path, capsys):
    from twin.run_folder import INCOMPLETE, claim_folder
    path = write_sweep(tmp_path, "")
    out = tmp_path / "out"
    out.mkdir()
    with claim_folder(out, command="another twin sweep"):  # a live claim: that sweep still runs
        assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 2
        assert "in use" in capsys.readouterr().err
        assert not (out / "sweep.csv").exists()
    # a claim left by a sweep that was killed (its lock is gone) is taken over: the sweep resumes
    (out / "twin.claim").write_text('{"pid": 999999, "host": "%s", "started": "x", "command": "twin sweep"}\n'
                                    % __import__("socket").gethostname())
    (out / INCOMPLETE).write_text("killed\n")
    assert main(["sweep", str(path), "--out", str(out), "--workers", "1", "--quiet"]) == 0
    assert [r["status"] for r in rows(out)] == ["ok"]
    assert not (out / INCOMPLETE).exists() and not (out / "twin.claim").exists()
