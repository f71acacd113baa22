"""The command line: exit codes, messages, overrides and output safety."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from twin.cli import ENVIRONMENT_ERROR, main

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "scenarios" / "default.yaml"


def test_validate_default_succeeds(capsys):
    assert main(["validate", str(DEFAULT)]) == 0
    assert "valid" in capsys.readouterr().out


@pytest.mark.parametrize("text, field", [
    ("chip:\n  rowz: 3\n", "chip.rowz"),
    ("chip:\n  rows: -1\n", "chip.rows"),
    ("policy:\n  name: periodic\n  interval: 3\n", "policy.interval"),
    ("policy:\n  name: sometimes\n", "policy"),
    ("duration: forever\n", "duration"),
    ("seed: 4294967296\n", "seed"),  # seeds lie in 0 .. 2^32 - 1
    ("network:\n  seed: -1\n", "network.seed"),
    ("chip:\n  levels: 40000\n", "chip.levels"),  # levels are int16
    ("checkpoints:\n  count: 100000001\n", "checkpoints.count"),  # validate must not hang building the list
    # work bounded at validate time, the estimate named (a 1 ns interval would never finish)
    ("policy:\n  name: periodic\n  interval: 1 ns\n", "policy.interval"),
    ("policy:\n  name: drift_aware\n  interval: 1 ns\n  max_interval: 1 ns\n", "policy.interval"),
    ("evaluation:\n  accuracy_samples: 100000000\n", "evaluation.accuracy_samples"),
    ("network:\n  sa_iterations: 1000000000\n", "network.sa_iterations"),
])
def test_invalid_scenarios_exit_2_naming_the_field(tmp_path, capsys, text, field):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err


def test_yaml_syntax_error_names_the_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nchip:\n  rows: [1, 2\n")
    assert main(["validate", str(path)]) == 2
    assert "line" in capsys.readouterr().err


def test_missing_scenario_file_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml" in capsys.readouterr().err


def test_paper_mnist_without_data_explains_how_to_point_at_it(capsys):
    assert main(["validate", str(ROOT / "scenarios" / "paper_mnist.yaml")]) == 2
    err = capsys.readouterr().err
    assert "network.data_path" in err and "--set network.data_path" in err


def test_set_overrides_are_validated_like_the_file(capsys):
    assert main(["validate", str(DEFAULT), "--set", "chip.levels=4", "--set", "policy.interval=12 h"]) == 0
    out = capsys.readouterr().out
    assert "K = 4" in out and "12 h" in out
    assert main(["validate", str(DEFAULT), "--set", "chip.levels=zero"]) == 2
    assert "chip.levels" in capsys.readouterr().err


def test_existing_output_folder_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "summary.json").write_text("{}")
    assert main(["run", str(DEFAULT), "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert json.loads((tmp_path / "summary.json").read_text()) == {}


@pytest.mark.parametrize("name, folder", [("../../escape", "_.._escape"), ("/etc/passwd", "_etc_passwd"),
                                          ("..", "scenario"), ("my run", "my_run"), ("default", "default")])
def test_a_scenario_name_never_leads_a_run_folder_out_of_runs(name, folder):
    from twin.cli import path_name
    safe = path_name(name)
    assert safe == folder
    assert (Path("runs") / safe).resolve().parent == Path("runs").resolve()


@pytest.mark.parametrize("command", ["compare", "optimize"])
def test_zero_seeds_is_refused_naming_the_flag(tmp_path, capsys, command):
    extra = ["--policies", "none"] if command == "compare" else ["--accuracy-floor", "0.9"]
    assert main([command, str(DEFAULT), "--seeds", "0", *extra, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "--seeds" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_compare_file_seeds_must_be_a_positive_integer(tmp_path, capsys):
    spec = tmp_path / "cmp.yaml"
    spec.write_text(f"scenario: {DEFAULT}\nseeds: true\npolicies:\n  - {{name: none}}\n")
    assert main(["compare", str(spec), "--out", str(tmp_path / "out")]) == 2
    assert "seeds" in capsys.readouterr().err


def _fifo(tmp_path: Path) -> Path:
    import os
    path = tmp_path / "fifo.yaml"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("make, words", [
    (lambda tmp: tmp.joinpath("deep.yaml").write_text("a: " + "[" * 5000 + "]" * 5000) and tmp / "deep.yaml",
     "nested more than"),
    (lambda tmp: tmp.joinpath("latin1.yaml").write_bytes(b"name: x\n\xff\xfe\n") and tmp / "latin1.yaml", "not UTF-8"),
    (lambda tmp: tmp.joinpath("huge.yaml").write_text("# " + "x" * (1 << 20) + "\n") and tmp / "huge.yaml",
     "more than the 1,048,576"),
    (lambda tmp: _fifo(tmp), "not a regular file"),  # reading it would block forever
    (lambda tmp: Path("/dev/zero"), "not a regular file"),  # reading it would never end
])
@pytest.mark.parametrize("command", ["validate", "compare"])
def test_files_that_are_not_scenario_files_exit_2_at_once(tmp_path, capsys, make, words, command):
    path = make(tmp_path)
    extra = ["--policies", "none", "--out", str(tmp_path / "out")] if command == "compare" else []
    assert main([command, str(path), *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and str(path) in err and "Traceback" not in err


def test_out_that_is_a_file_is_bad_input_and_an_uncreatable_one_an_environment_failure(tmp_path, capsys,
                                                                                        monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    assert main(["run", str(DEFAULT), "--out", str(afile)]) == 2
    assert "--out" in capsys.readouterr().err and afile.read_text() == "keep me"
    blocked = afile / "below"  # a folder cannot be created under a file
    assert main(["run", str(DEFAULT), "--out", str(blocked)]) == 2  # the path is bad input too: it says so
    def refuse(directory, names, force):  # what mkdir does on a read-only or full file system
        import errno
        raise PermissionError(errno.EACCES, "Permission denied", str(directory))
    monkeypatch.setattr("twin.atomic.prepare_output_dir", refuse)
    assert main(["run", str(DEFAULT), "--out", str(tmp_path / "run")]) == ENVIRONMENT_ERROR  # the machine, not the input
    err = capsys.readouterr().err
    assert "Permission denied" in err and "Traceback" not in err


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "twin.cli", "validate", str(DEFAULT)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_force_removes_every_file_the_twin_writes_and_leftover_temporaries(tmp_path):
    """A stale device_pulses.csv of an earlier seed must not survive beside a new summary."""
    from twin.atomic import prepare_output_dir
    from twin.simulate import OUTPUT_FILES
    (tmp_path / "device_pulses.csv").write_text("stale")
    (tmp_path / ".summary.json.abc123.tmp").write_text("half a file")
    (tmp_path / "notes.txt").write_text("the user's")  # not the twin's: kept
    prepare_output_dir(tmp_path, OUTPUT_FILES, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    assert "device_pulses.csv" in OUTPUT_FILES


def test_torch_threads_default_to_one_and_a_bad_value_names_the_variable(tmp_path, monkeypatch, capsys):
    import torch
    from twin.cli import TORCH_THREADS_VARIABLE, _set_torch_threads
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv(TORCH_THREADS_VARIABLE, raising=False)
        torch.set_num_threads(2)
        _set_torch_threads()
        assert torch.get_num_threads() == 1
        monkeypatch.setenv(TORCH_THREADS_VARIABLE, "2")
        _set_torch_threads()
        assert torch.get_num_threads() == 2
        monkeypatch.setenv(TORCH_THREADS_VARIABLE, "two")
        assert main(["run", "scenarios/default.yaml", "--out", str(tmp_path / "out")]) == 2
        assert TORCH_THREADS_VARIABLE in capsys.readouterr().err
        assert not (tmp_path / "out").exists()
    finally:
        torch.set_num_threads(before)
